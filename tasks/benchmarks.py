"""A benchmark file on local disk: tokenize decontaminates against it, evaluate scores it."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from storage.section import Section


class BenchmarkConfig(Section):
    """A multiple-choice benchmark file on local disk (never downloaded at run time)."""

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    format: Literal["hellaswag", "arc", "piqa", "generic"]
    path: str
    shots: int = Field(0, ge=0, le=25)
    limit: int | None = Field(None, ge=1, description="score only the first N items")

    @model_validator(mode="after")
    def _file_exists(self) -> BenchmarkConfig:
        if not Path(self.path).is_file():
            raise ValueError(f"benchmark file not found: {self.path}")
        return self
