"""Language-id confidence per language: FineWeb-2's rule, max(0.3, min(0.9, median - std)) of the
confidence distribution, on the run's own documents of a language with enough of them; else the
threshold FineWeb-2 published for it (measured with GlotLID, not lid.176: a fallback only); else
extract's one `min_lang_score`, which every document already passed."""

from __future__ import annotations

import statistics
from collections.abc import Iterator
from typing import Any

from storage.shards import iter_rows
from tasks.filter.rules import Measurement, Rule, at_least
from tasks.languages import language


def fineweb2_threshold(scores: list[float]) -> float:
    """FineWeb-2's per-language threshold of a confidence distribution."""
    return max(0.3, min(0.9, statistics.median(scores) - statistics.pstdev(scores)))


def thresholds(doc_paths: list[str], min_docs: int) -> dict[str, dict[str, Any]]:
    """lang -> {threshold, source, docs}: from the run's distribution where a language has `min_docs`
    documents, else FineWeb-2's published value where there is one (other languages: none here)."""
    scores: dict[str, list[float]] = {}
    for row in iter_rows(doc_paths, ["lang", "lang_score"]):
        if row.get("lang") and row.get("lang_score") is not None:
            scores.setdefault(row["lang"], []).append(row["lang_score"])
    found = {}
    for lang, values in sorted(scores.items()):
        if len(values) >= min_docs:
            found[lang] = {"threshold": fineweb2_threshold(values), "source": "run", "docs": len(values)}
        elif (published := language(lang).settings.get("language_score")) is not None:
            found[lang] = {"threshold": float(published), "source": "fineweb2", "docs": len(values)}
    return found


class LanguageScore(Rule):
    """A document whose language-id confidence is below its language's threshold is removed."""

    name = "lang_score"

    def __init__(self, by_language: dict[str, dict[str, Any]]):
        self.by_language = by_language

    def measure(self, doc: dict[str, Any]) -> Iterator[Measurement]:
        if (found := self.by_language.get(doc.get("lang") or "")) is not None and doc.get("lang_score") is not None:
            yield at_least("lang_score_per_language", doc["lang_score"], found["threshold"])
