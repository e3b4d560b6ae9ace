"""A benchmark file on local disk: tokenize decontaminates against it, evaluate scores it."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from model.item_formats import ALIASES, FORMATS, check
from storage.section import ExistingPath, Section

FormatName = Literal[tuple(["auto", *FORMATS, *ALIASES])]  # type: ignore[valid-type]


class BenchmarkConfig(Section):
    """A benchmark file (or MMLU's directory of CSVs) on local disk, never downloaded at run time.
    `format: auto` recognises it from its first row; a file in another format than named is an error
    naming the fields found and expected, when the config is validated (before any work)."""

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    format: FormatName = "auto"
    path: ExistingPath
    shots: int = Field(0, ge=0, le=25)
    limit: int | None = Field(None, ge=1, description="score only the first N items")

    @model_validator(mode="after")
    def _format_matches(self) -> BenchmarkConfig:
        check(self.path, self.format)
        return self
