"""The one rule interface: every filter rule set measures a document against its thresholds.

A rule set (`Rule`) has a name, optionally edits the document first (`edit`: C4's line removal, PII
redaction; it returns counts of what it changed), then yields `Measurement`s: rule name, measured
value, threshold, verdict. `measure_all` is the single walk over a list of rule sets that the filter
stage (stopping at the first failure) and `explain` (measuring everything) both use, and it is where
the per-rule counters are kept. A new rule in a set is one more `yield` in its `measure_text` and its
threshold field in the set's config section, both in the set's file; a new set is one file here (its
`Rule` class and its config section), plus its field in `FilterConfig` and its line in
`filter.stage.build_rules`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import Field

from tasks.languages import language

# Rule thresholds: None disables a rule; values are range-checked so a typo fails before any work.
Count = Annotated[int, Field(ge=0)] | None
Ratio = Annotated[float, Field(ge=0.0, le=1.0)] | None
Length = Annotated[float, Field(ge=0.0, le=1000.0)] | None


# The first failing rule of a document and its measured value, or None when it passes.
Verdict = tuple[str, float | None] | None


@dataclass(frozen=True)
class Measurement:
    rule: str
    value: float | None
    passed: bool
    threshold: float | None = None
    bound: Literal["min", "max", ""] = ""  # whether the threshold is a lower or an upper limit
    detail: str = ""

    def describe_threshold(self) -> str:
        return "" if self.threshold is None else f"{self.bound} {self.threshold:g}"


def at_least(rule: str, value: float, threshold: float) -> Measurement:
    return Measurement(rule, value, value >= threshold, threshold, "min")


def at_most(rule: str, value: float, threshold: float) -> Measurement:
    return Measurement(rule, value, value <= threshold, threshold, "max")


class Rule:
    """A rule set. Subclasses set `name` and override `measure` and, if they change text, `edit`."""

    name: str = ""
    column: str | None = None  # a document column set to this rule's first measured value
    counters: tuple[str, ...] = ()  # counters that exist (as 0) even when nothing was counted

    def edit(self, doc: dict[str, Any]) -> Counter:
        return Counter()

    def measure(self, doc: dict[str, Any]) -> Iterator[Measurement]:
        return iter(())


class TextRule(Rule):
    """A rule set over the document text with one config section, measured in the document's language:
    its words come from the language registry, and its thresholds are the section's, over which go the
    language's published settings (`published`, unless `use_published` is off) and then the user's
    per-language values (`filter.per_language`)."""

    def __init__(self, cfg: Any, per_language: dict[str, dict[str, Any]] | None = None, use_published: bool = True):
        self.cfg, self.per_language, self.use_published = cfg, per_language or {}, use_published
        self._by_language: dict[str | None, Any] = {}

    def published(self, settings: dict[str, Any]) -> dict[str, Any]:
        """This rule set's thresholds from a language's published settings (FineWeb-2's); none by default."""
        return {}

    def cfg_for(self, lang: str | None) -> Any:
        """The section as it applies to documents in `lang` (made once per language)."""
        if lang not in self._by_language:
            update = self.published(language(lang).settings) if self.use_published else {}
            update |= self.per_language.get(lang or "", {})
            self._by_language[lang] = (type(self.cfg).model_validate({**self.cfg.model_dump(), **update})
                                       if update else self.cfg)  # fmt: skip
        return self._by_language[lang]

    def measure(self, doc: dict[str, Any]) -> Iterator[Measurement]:
        return self.measure_text(doc["text"], doc.get("lang"))

    def measure_text(self, text: str, lang: str | None = None) -> Iterator[Measurement]:
        raise NotImplementedError

    def check(self, text: str, lang: str | None = None) -> Verdict:
        return verdict_of(first_failure(self.measure_text(text, lang)))


def first_failure(measurements: Iterable[Measurement]) -> Measurement | None:
    """The first failing measurement of a lazy sequence (later ones are not computed)."""
    return next((m for m in measurements if not m.passed), None)


def verdict_of(failure: Measurement | None) -> Verdict:
    return None if failure is None else (failure.rule, failure.value)


def measure_all(
    doc: dict[str, Any], rules: list[Rule], stats: Counter | None = None, stop_at_failure: bool = True
) -> list[Measurement]:
    """Each rule set in order: its edit (counted into `stats`), then its measurements.

    With `stop_at_failure` the walk ends at the first failing measurement, which is then the last
    one returned; rules after it neither edit nor measure the document.
    """
    taken: list[Measurement] = []
    for rule in rules:
        changes = rule.edit(doc)
        if stats is not None:
            stats.update(changes)
        for i, m in enumerate(rule.measure(doc)):
            taken.append(m)
            if i == 0 and rule.column is not None:
                doc[rule.column] = m.value
            if stop_at_failure and not m.passed:
                return taken
    return taken


def failure_in(taken: list[Measurement]) -> Measurement | None:
    """The failing measurement of a `measure_all(stop_at_failure=True)` walk, if any."""
    return taken[-1] if taken and not taken[-1].passed else None
