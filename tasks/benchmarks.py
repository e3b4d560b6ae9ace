"""A benchmark file on local disk: tokenize decontaminates against it, evaluate scores it."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from storage.section import ExistingFile, Section


class BenchmarkConfig(Section):
    """A multiple-choice benchmark file on local disk (never downloaded at run time)."""

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    format: Literal["hellaswag", "arc", "piqa", "generic"]
    path: ExistingFile
    shots: int = Field(0, ge=0, le=25)
    limit: int | None = Field(None, ge=1, description="score only the first N items")
