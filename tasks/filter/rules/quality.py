"""A quality classifier as a rule: its score (tasks/filter/quality.py:score_text) against its threshold.
The primary classifier's score is the `quality_score` column; every one's is in `quality_scores`."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

from tasks.filter.ensemble import PRIMARY, PreparedClassifier, rule_name
from tasks.filter.quality import score_text
from tasks.filter.rules import Measurement, Rule, at_least


class QualityClassifier(Rule):
    name = "quality_classifier"

    def __init__(self, classifier: PreparedClassifier):
        self.classifier = classifier
        self.name = rule_name(classifier.cfg.name)
        self.column = "quality_score" if classifier.cfg.name == PRIMARY else None

    def edit(self, doc: dict[str, Any]) -> Counter:
        """Nothing is edited: a document in a language the classifier was not trained for is counted."""
        lang = doc.get("lang") or "en"
        return Counter() if self.classifier.cfg.scores(lang) else Counter({f"{self.name}.unscored.{lang}": 1})

    def measure(self, doc: dict[str, Any]) -> Iterator[Measurement]:
        c = self.classifier
        if c.cfg.scores(doc.get("lang")):  # else no measurement: unscored, kept by this rule
            yield at_least(self.name, score_text(c.model_path, doc["text"], c.cfg), c.threshold)
