"""Several quality classifiers at once (Nemotron-CC's ensemble): each prepared with its threshold
and percentile bucket edges; a kept document gets every score (`quality_scores`) and the best of
its buckets (`quality_bucket`), which mix can weight."""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from typing import Any

from tasks.filter.config import QualityClassifierConfig
from tasks.filter.rules import Measurement

PRIMARY = "quality"


def rule_name(name: str) -> str:
    return "quality_classifier" if name == PRIMARY else f"quality_classifier.{name}"


def model_stem(name: str) -> str:
    """quality_model.{bin,json} for the primary classifier (as before ensembles), quality_model-<name> else."""
    return "quality_model" if name == PRIMARY else f"quality_model-{name}"


def with_model_label(cfg: QualityClassifierConfig, info: dict[str, Any]) -> QualityClassifierConfig:
    """The config the scorer uses: a published model's positive label as found in the model."""
    label = info.get("quality_positive_label", cfg.positive_label)
    return cfg.model_copy(update={"positive_label": label})


@dataclass(frozen=True)
class PreparedClassifier:
    cfg: QualityClassifierConfig
    model_path: str
    threshold: float
    edges: tuple[float, ...]

    @classmethod
    def from_info(cls, cfg: QualityClassifierConfig, model_path: str, info: dict[str, Any]) -> PreparedClassifier:
        return cls(with_model_label(cfg, info), model_path, info["quality_threshold"],
                   tuple(info.get("quality_bucket_edges", ())))  # fmt: skip

    def bucket(self, score: float) -> int:
        return bisect.bisect_right(self.edges, score)


def scores_and_bucket(
    taken: list[Measurement], classifiers: list[PreparedClassifier]
) -> tuple[list[tuple[str, float]], int | None]:
    """(name, score) of every classifier that scored the document, and the highest of their buckets."""
    by_rule = {m.rule: m.value for m in taken}
    scored = [(c, by_rule[rule_name(c.cfg.name)]) for c in classifiers if rule_name(c.cfg.name) in by_rule]
    if not scored:
        return [], None
    return [(c.cfg.name, float(v)) for c, v in scored], max(c.bucket(v) for c, v in scored)
