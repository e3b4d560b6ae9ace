"""The quality classifier as a rule: its score (tasks/filter/quality.py:score_text) against the threshold."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from tasks.filter.config import QualityClassifierConfig
from tasks.filter.quality import score_text
from tasks.filter.rules import Measurement, Rule, at_least


class QualityClassifier(Rule):
    name = "quality_classifier"
    column = "quality_score"  # kept on every document it scored

    def __init__(self, model_path: str, threshold: float, cfg: QualityClassifierConfig):
        self.model_path, self.threshold, self.cfg = model_path, threshold, cfg

    def measure(self, doc: dict[str, Any]) -> Iterator[Measurement]:
        yield at_least("quality_classifier", score_text(self.model_path, doc["text"], self.cfg), self.threshold)
