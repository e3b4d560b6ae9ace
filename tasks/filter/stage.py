"""filter: URL blocklist, Gopher quality and repetition, C4 and FineWeb rules, a trained quality classifier, PII.

Rules run in that order and the first failing rule names the removal; kept documents carry their
quality score and have their PII replaced by typed placeholders.
"""

from __future__ import annotations

import shutil
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from storage.fingerprint import file_sha256
from storage.shards import atomic_write_json, iter_rows, read_json
from tasks.documents import FILTER_COLUMNS, ShardWriter, count_words, removed_row
from tasks.filter.annotated import keep_threshold, train_on_annotations
from tasks.filter.config import FilterConfig, QualityClassifierConfig
from tasks.filter.quality import positive_label, score_threshold, train_classifier
from tasks.filter.remote import fetch_pinned
from tasks.filter.rules import Rule, failure_in, measure_all
from tasks.filter.rules.c4 import C4Filter
from tasks.filter.rules.fineweb import FineWebQuality
from tasks.filter.rules.gopher import GopherQuality, GopherRepetition
from tasks.filter.rules.pii import PiiRedaction
from tasks.filter.rules.quality import QualityClassifier
from tasks.filter.rules.url import UrlFilter, read_blocklist
from tasks.stage import StageInput, StageOutcome, map_shards, sum_stats, workdir_cache

STAGE = "filter"


def build_url_filter(cfg: FilterConfig) -> UrlFilter:
    domains = set(cfg.blocklist_domains)
    if cfg.blocklist_file:
        domains |= read_blocklist(cfg.blocklist_file)
    return UrlFilter(domains, cfg.banned_url_words)


def build_rules(cfg: FilterConfig, model_path: str | None = None, threshold: float = 0.0) -> list[Rule]:
    """The rule sets in the order they run (FineWeb's order: URL, Gopher, C4, FineWeb), then the
    quality classifier when there is a model, then PII redaction on what is kept; none when switched off."""
    if not cfg.enabled:
        return []
    rules: list[Rule] = [
        build_url_filter(cfg),
        GopherQuality(cfg.gopher_quality),
        GopherRepetition(cfg.gopher_repetition),
    ]
    if cfg.c4.enabled:
        rules.append(C4Filter(cfg.c4))
    if cfg.fineweb.enabled:
        rules.append(FineWebQuality(cfg.fineweb))
    if model_path is not None:
        rules.append(QualityClassifier(model_path, threshold, cfg.quality))
    if cfg.redact_pii:
        rules.append(PiiRedaction())
    return rules


@dataclass(frozen=True)
class FilterShard:
    """What each filter shard needs: the config and the quality model trained before the shards run."""

    cfg: FilterConfig
    model_path: str | None
    threshold: float


def process_shard(in_path: str, out: Path, params: FilterShard, index: int) -> dict[str, Any]:
    rules = build_rules(params.cfg, params.model_path, params.threshold)
    shard = ShardWriter(out, index, FILTER_COLUMNS)  # streamed in and out: one row group in memory
    stats = Counter(dict.fromkeys(PiiRedaction.counters, 0))
    for doc in iter_rows([in_path]):
        doc["quality_score"] = None
        if failed := failure_in(measure_all(doc, rules, stats)):
            shard.remove(removed_row(doc, STAGE, failed.rule, failed.value))
            continue
        doc["n_chars"], doc["n_words"] = len(doc["text"]), count_words(doc["text"])
        shard.keep(doc)
    return {**stats, **shard.close()}


def given_model(cfg: QualityClassifierConfig, model_file: Path, downloads: Path) -> dict[str, Any]:
    """The user's classifier (a path, or a URL fetched once and pinned), with the label meaning good."""
    source = cfg.model_path or fetch_pinned(cfg.model_url, cfg.sha256, downloads, cfg.download)
    shutil.copyfile(source, model_file)
    label = positive_label(str(model_file), cfg)
    where = {"quality_model_path": cfg.model_path} if cfg.model_path else {"quality_model_url": cfg.model_url}
    return {"quality_model": "user" if cfg.model_path else "url", "quality_positive_label": label,
            "quality_model_sha256": file_sha256(str(model_file)), **where}  # fmt: skip


def _make_model(docs: list[str], cfg: QualityClassifierConfig, model_file: Path, out: Path) -> dict[str, Any]:
    if cfg.model_path or cfg.model_url:
        return given_model(cfg, model_file, workdir_cache(out, "downloads"))
    if cfg.annotate is not None:
        judged = train_on_annotations(docs, cfg, model_file, workdir_cache(out, "annotations"))
        return {"quality_model": "judge", **judged}
    return {"quality_model": "trained", **train_classifier(docs, cfg, model_file, workdir_cache(out, "downloads"))}


def with_model_label(cfg: QualityClassifierConfig, info: dict[str, Any]) -> QualityClassifierConfig:
    """The config the scorer uses: a published model's positive label as found in the model."""
    label = info.get("quality_positive_label", cfg.positive_label)
    return cfg.model_copy(update={"positive_label": label})


def prepare_classifier(docs: list[str], cfg: QualityClassifierConfig, out: Path) -> tuple[str, dict[str, Any]]:
    """Train the quality model (or take the user's) into `out`, with its facts beside it."""
    model_file, info_file = out / "quality_model.bin", out / "quality_model.json"
    if not info_file.exists():  # a resumed run keeps the model it already trained
        info = _make_model(docs, cfg, model_file, out)
        fixed = keep_threshold(cfg.annotate) if info["quality_model"] == "judge" else cfg.min_score
        info["quality_threshold"] = score_threshold(str(model_file), docs, with_model_label(cfg, info), fixed)
        atomic_write_json(info_file, info)
    return str(model_file), read_json(info_file)


def run(inputs: dict[str, StageInput], cfg: FilterConfig, out: Path) -> StageOutcome:
    docs = inputs["extract"].files("docs")
    model_path, info = None, {}
    if cfg.enabled and cfg.quality.enabled:
        model_path, info = prepare_classifier(docs, cfg.quality, out)
        cfg = cfg.model_copy(update={"quality": with_model_label(cfg.quality, info)})
    params = FilterShard(cfg, model_path, info.get("quality_threshold", cfg.quality.min_score))
    stats = sum_stats(map_shards(process_shard, docs, out, params, workers=cfg.workers, label="filter"))
    outcome = StageOutcome(stats["docs_in"], stats["docs_out"], stats["docs_removed"], info=info)
    for name, value in sorted({**stats, **info}.items()):
        if isinstance(value, int | float):
            outcome.metric(name, value)
    return outcome
