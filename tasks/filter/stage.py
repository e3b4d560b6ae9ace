"""filter: URL blocklist, Gopher quality and repetition, C4 and FineWeb rules, a trained quality classifier, PII.

Rules run in that order and the first failing rule names the removal; kept documents carry their
quality score and have their PII replaced by typed placeholders.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from storage.shards import iter_rows
from tasks.documents import DEFERRED, FILTER_COLUMNS, ShardWriter, count_words, removed_row
from tasks.filter.classifiers import prepare_all
from tasks.filter.config import FilterConfig
from tasks.filter.ensemble import PreparedClassifier, scores_and_bucket
from tasks.filter.rules import Rule, failure_in, measure_all
from tasks.filter.rules.c4 import C4Filter
from tasks.filter.rules.fineweb import FineWebQuality
from tasks.filter.rules.gopher import GopherQuality, GopherRepetition
from tasks.filter.rules.language_score import LanguageScore
from tasks.filter.rules.language_score import thresholds as language_thresholds
from tasks.filter.rules.pii import PiiRedaction
from tasks.filter.rules.quality import QualityClassifier
from tasks.filter.rules.url import UrlFilter
from tasks.stage import StageInput, StageOutcome, map_shards, sum_stats

STAGE = "filter"


def preflight(cfg: FilterConfig) -> None:
    """An LLM judge this stage will call: its key and endpoint checked before the first stage of the
    run, not after extract."""
    from tasks.filter.annotate import preflight as judge_preflight

    quality = cfg.quality
    if quality.annotate is not None and not quality.model_path and cfg.enabled and quality.enabled:
        judge_preflight(quality.annotate)


def build_url_filter(cfg: FilterConfig) -> UrlFilter:
    return UrlFilter(cfg.url_rules().matcher())


def build_rules(cfg: FilterConfig, classifiers: list[PreparedClassifier] = (),
                language_scores: dict[str, dict[str, Any]] | None = None) -> list[Rule]:  # fmt: skip
    """The rule sets in the order they run (FineWeb's order: URL, Gopher, C4, FineWeb), then the
    quality classifiers, then PII redaction on what is kept; none when switched off."""
    if not cfg.enabled:
        return []
    published = cfg.language_defaults == "fineweb2"
    rules: list[Rule] = [
        build_url_filter(cfg),
        *([LanguageScore(language_scores)] if language_scores else []),
        GopherQuality(cfg.gopher_quality, cfg.for_language("gopher_quality"), published),
        GopherRepetition(cfg.gopher_repetition, cfg.for_language("gopher_repetition"), published),
    ]
    if cfg.c4.enabled:
        rules.append(C4Filter(cfg.c4, cfg.for_language("c4"), published))
    if cfg.fineweb.enabled:
        rules.append(FineWebQuality(cfg.fineweb, cfg.for_language("fineweb"), published))
    rules += [QualityClassifier(c) for c in classifiers]
    if cfg.redact_pii:
        rules.append(PiiRedaction())
    return rules


@dataclass(frozen=True)
class FilterShard:
    """What each filter shard needs: the config, the classifiers prepared before the shards run, and
    extract's deferred removals (pages the URL rules removed before extraction) by shard file name."""

    cfg: FilterConfig
    classifiers: list[PreparedClassifier]
    deferred: dict[str, str] = field(default_factory=dict)
    language_scores: dict[str, dict[str, Any]] = field(default_factory=dict)  # filter.language_score


def process_shard(in_path: str, out: Path, params: FilterShard, index: int) -> dict[str, Any]:
    rules = build_rules(params.cfg, params.classifiers, params.language_scores)
    shard = ShardWriter(out, index, FILTER_COLUMNS)  # streamed in and out: one row group in memory
    stats = Counter(dict.fromkeys(PiiRedaction.counters, 0))
    if deferred := params.deferred.get(Path(in_path).name):
        # Already filter's removal rows, found by extract; recorded with filter.enabled=false too (the
        # pages were never extracted, so there is no text to keep).
        for row in iter_rows([deferred]):
            shard.remove(row)
    for doc in iter_rows([in_path]):
        doc["quality_score"] = None
        taken = measure_all(doc, rules, stats)
        if failed := failure_in(taken):
            shard.remove(removed_row(doc, STAGE, failed.rule, failed.value, failed.detail[:200]))
            continue
        doc["quality_scores"], doc["quality_bucket"] = scores_and_bucket(taken, params.classifiers)
        doc["n_chars"], doc["n_words"] = len(doc["text"]), count_words(doc["text"], doc.get("lang"))
        shard.keep(doc)
    return {**stats, **shard.close()}


def run(inputs: dict[str, StageInput], cfg: FilterConfig, out: Path) -> StageOutcome:
    docs = inputs["extract"].files("docs")
    classifiers, info = prepare_all(docs, cfg, out) if cfg.enabled else ([], {})
    deferred = {Path(p).name: p for p in inputs["extract"].files(DEFERRED)}
    scores = (
        language_thresholds(docs, cfg.language_score_min_docs) if cfg.enabled and cfg.language_score != "off" else {}
    )
    params = FilterShard(cfg, classifiers, deferred, scores)
    stats = sum_stats(map_shards(process_shard, docs, out, params, workers=cfg.workers, label="filter"))
    outcome = StageOutcome(stats["docs_in"], stats["docs_out"], stats["docs_removed"], info=info)
    for name, value in sorted({**stats, **info}.items()):
        if isinstance(value, int | float):
            outcome.metric(name, value)
    for lang, found in scores.items():
        outcome.metric(f"lang_score_threshold.{lang}", found["threshold"])
    if scores:
        outcome.info["language_scores"] = scores
    for name, facts in info.get("classifiers", {}).items():
        for key, value in sorted(facts.items()):
            if isinstance(value, int | float):
                outcome.metric(f"{name}.{key}", value)
    return outcome
