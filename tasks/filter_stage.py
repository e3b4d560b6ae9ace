"""filter: URL blocklist, Gopher quality and repetition rules, a trained quality classifier, PII redaction.

Rules run in that order and the first failing rule names the removal; kept documents carry their
quality score and have their PII replaced by typed placeholders.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from tasks import STAGE_VERSIONS
from tasks.config import FilterConfig
from tasks.documents import FILTER_COLUMNS, count_words, removed_row, write_shard
from tasks.filters.gopher import GopherQuality, GopherRepetition
from tasks.filters.url import UrlFilter, read_blocklist
from tasks.pii import redact
from tasks.quality import quality_score, train_classifier
from tasks.stage import StageInput, StageOutcome, map_shards, sum_stats

VERSION = STAGE_VERSIONS["filter"]
STAGE = "filter"


def build_url_filter(cfg: FilterConfig) -> UrlFilter:
    domains = set(cfg.blocklist_domains)
    if cfg.blocklist_file:
        domains |= read_blocklist(cfg.blocklist_file)
    return UrlFilter(domains, cfg.banned_url_words)


def filter_document(doc: dict[str, Any], checks: list, model_path: str | None, min_score: float):
    """Return (rule, value) of the first failing check, or None; sets doc['quality_score']."""
    url_filter, gopher_quality, gopher_repetition = checks
    if verdict := url_filter.check(doc["url"] or "", doc["host"] or ""):
        return verdict
    for check in (gopher_quality, gopher_repetition):
        if verdict := check.check(doc["text"]):
            return verdict
    if model_path is not None:
        doc["quality_score"] = score = quality_score(model_path, doc["text"])
        if score < min_score:
            return "quality_classifier", score
    return None


def process_shard(in_path: str, out: Path, params: tuple[FilterConfig, str | None], index: int) -> dict[str, Any]:
    cfg, model_path = params
    checks = [build_url_filter(cfg), GopherQuality(cfg.gopher_quality), GopherRepetition(cfg.gopher_repetition)]
    kept, removed = [], []
    stats: dict[str, Any] = {"pii.email": 0, "pii.phone": 0, "pii.ip": 0, "pii.docs": 0}
    for doc in pq.read_table(in_path).to_pylist():
        doc["quality_score"] = None
        verdict = filter_document(doc, checks, model_path, cfg.quality.min_score)
        if verdict is not None:
            removed.append(removed_row(doc, STAGE, verdict[0], verdict[1]))
            continue
        if cfg.redact_pii:
            doc["text"], counts = redact(doc["text"])
            for kind, n in counts.items():
                stats[f"pii.{kind}"] += n
            stats["pii.docs"] += any(counts.values())
            doc["n_chars"], doc["n_words"] = len(doc["text"]), count_words(doc["text"])
        kept.append(doc)
    return {**stats, **write_shard(out, index, kept, removed, FILTER_COLUMNS)}


def run(inputs: dict[str, StageInput], cfg: FilterConfig, out: Path) -> StageOutcome:
    docs = inputs["extract"].files("docs")
    model_path = None
    info: dict[str, Any] = {}
    if cfg.quality.enabled:
        model_file = out / "quality_model.bin"
        if not model_file.exists():  # a resumed run keeps the model it already trained
            info = train_classifier(docs, cfg.quality, model_file)
        model_path = str(model_file)
    stats = sum_stats(map_shards(process_shard, docs, out, (cfg, model_path), workers=cfg.workers, label="filter"))
    outcome = StageOutcome(stats["docs_in"], stats["docs_out"], stats["docs_removed"], info=info)
    for name, value in sorted({**stats, **info}.items()):
        outcome.metric(name, value)
    return outcome
