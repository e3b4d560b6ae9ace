"""filter: URL blocklist, Gopher quality and repetition, C4 and FineWeb rules, a trained quality classifier, PII.

Rules run in that order and the first failing rule names the removal; kept documents carry their
quality score and have their PII replaced by typed placeholders.
"""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from storage.shards import atomic_write_json, read_json
from tasks import STAGE_VERSIONS
from tasks.config import FilterConfig, QualityClassifierConfig
from tasks.documents import FILTER_COLUMNS, count_words, removed_row, write_shard
from tasks.filters.c4 import C4Filter
from tasks.filters.fineweb import FineWebQuality
from tasks.filters.gopher import GopherQuality, GopherRepetition
from tasks.filters.url import UrlFilter, read_blocklist
from tasks.pii import redact
from tasks.quality import quality_score, score_threshold, train_classifier
from tasks.stage import StageInput, StageOutcome, map_shards, sum_stats

VERSION = STAGE_VERSIONS["filter"]
STAGE = "filter"


def build_url_filter(cfg: FilterConfig) -> UrlFilter:
    domains = set(cfg.blocklist_domains)
    if cfg.blocklist_file:
        domains |= read_blocklist(cfg.blocklist_file)
    return UrlFilter(domains, cfg.banned_url_words)


def build_checks(cfg: FilterConfig) -> list:
    """The document-level rule sets in the order they run (FineWeb's order: URL, Gopher, C4, FineWeb)."""
    checks = [build_url_filter(cfg), GopherQuality(cfg.gopher_quality), GopherRepetition(cfg.gopher_repetition)]
    if cfg.c4.enabled:
        checks.append(C4Filter(cfg.c4))
    if cfg.fineweb.enabled:
        checks.append(FineWebQuality(cfg.fineweb))
    return checks


def filter_document(
    doc: dict[str, Any], checks: list, model_path: str | None, min_score: float, label: str, stats: Counter
):
    """Return (rule, value) of the first failing check, or None; sets doc['quality_score'].

    C4 edits the text (drops lines) before its document rules; the lines dropped are counted.
    """
    url_filter, *text_checks = checks
    if verdict := url_filter.check(doc["url"] or "", doc["host"] or ""):
        return verdict
    for check in text_checks:
        if isinstance(check, C4Filter):
            doc["text"], dropped = check.clean(doc["text"])
            for reason, n in dropped.items():
                stats[f"c4.lines_dropped.{reason}"] += n
        if verdict := check.check(doc["text"]):
            return verdict
    if model_path is not None:
        doc["quality_score"] = score = quality_score(model_path, doc["text"], label)
        if score < min_score:
            return "quality_classifier", score
    return None


def process_shard(
    in_path: str, out: Path, params: tuple[FilterConfig, str | None, float], index: int
) -> dict[str, Any]:
    cfg, model_path, min_score = params
    checks = build_checks(cfg)
    kept, removed = [], []
    stats: Counter = Counter({"pii.email": 0, "pii.phone": 0, "pii.ip": 0, "pii.docs": 0})
    for doc in pq.read_table(in_path).to_pylist():
        doc["quality_score"] = None
        verdict = filter_document(doc, checks, model_path, min_score, cfg.quality.positive_label, stats)
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


def prepare_classifier(docs: list[str], cfg: QualityClassifierConfig, out: Path) -> tuple[str, dict[str, Any]]:
    """Train the quality model (or take the user's) into `out`, with its facts beside it."""
    model_file, info_file = out / "quality_model.bin", out / "quality_model.json"
    if not info_file.exists():  # a resumed run keeps the model it already trained
        if cfg.model_path:
            shutil.copyfile(cfg.model_path, model_file)
            info: dict[str, Any] = {"quality_model": "user", "quality_model_path": cfg.model_path}
        else:
            info = {"quality_model": "trained", **train_classifier(docs, cfg, model_file)}
        info["quality_threshold"] = score_threshold(str(model_file), docs, cfg)
        atomic_write_json(info_file, info)
    return str(model_file), read_json(info_file)


def run(inputs: dict[str, StageInput], cfg: FilterConfig, out: Path) -> StageOutcome:
    docs = inputs["extract"].files("docs")
    model_path, info = None, {}
    if cfg.quality.enabled:
        model_path, info = prepare_classifier(docs, cfg.quality, out)
    params = (cfg, model_path, info.get("quality_threshold", cfg.quality.min_score))
    stats = sum_stats(map_shards(process_shard, docs, out, params, workers=cfg.workers, label="filter"))
    outcome = StageOutcome(stats["docs_in"], stats["docs_out"], stats["docs_removed"], info=info)
    for name, value in sorted({**stats, **info}.items()):
        if isinstance(value, int | float):
            outcome.metric(name, value)
    return outcome
