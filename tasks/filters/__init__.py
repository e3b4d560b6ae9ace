"""Document filters: each returns None to keep a document, or (rule name, measured value)."""

from __future__ import annotations

from collections.abc import Iterator

Verdict = tuple[str, float | None] | None

# One rule's outcome on one document: (rule name, measured value, passed).
Measurement = tuple[str, float | None, bool]


def first_failure(measurements: Iterator[Measurement]) -> Verdict:
    """The verdict of a lazy sequence of measurements: the first failing rule (later ones not computed)."""
    for rule, value, passed in measurements:
        if not passed:
            return rule, value
    return None
