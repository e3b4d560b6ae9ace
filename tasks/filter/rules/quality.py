"""The quality classifier as a rule: P(reference-like) from the fastText model the filter trained."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from tasks.filter.quality import quality_score
from tasks.filter.rules import Measurement, Rule, at_least


class QualityClassifier(Rule):
    name = "quality_classifier"
    column = "quality_score"  # kept on every document it scored

    def __init__(self, model_path: str, threshold: float, label: str):
        self.model_path, self.threshold, self.label = model_path, threshold, label

    def measure(self, doc: dict[str, Any]) -> Iterator[Measurement]:
        yield at_least("quality_classifier", quality_score(self.model_path, doc["text"], self.label), self.threshold)
