"""Document filters: each returns None to keep a document, or (rule name, measured value)."""

from __future__ import annotations

Verdict = tuple[str, float | None] | None
