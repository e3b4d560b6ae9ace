"""Document filters: each returns None to keep a document, or (rule name, measured value)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

Verdict = tuple[str, float | None] | None

# One rule's outcome on one document: (rule name, measured value, passed).
Measurement = tuple[str, float | None, bool]


def first_failure(measurements: Iterator[Measurement]) -> Verdict:
    """The verdict of a lazy sequence of measurements: the first failing rule (later ones not computed)."""
    for rule, value, passed in measurements:
        if not passed:
            return rule, value
    return None


class RuleSet:
    """A named group of rules with one config: `measure` yields every rule, `check` the verdict."""

    def __init__(self, cfg: Any):
        self.cfg = cfg

    def check(self, text: str) -> Verdict:
        return first_failure(self.measure(text))

    def measure(self, text: str) -> Iterator[Measurement]:
        raise NotImplementedError
