"""export's config: what is exported, in which format, where."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from storage.errors import Crawl2ModelError, UserError
from storage.section import Section


class ExportError(Crawl2ModelError, ValueError):
    """An export that cannot be made as asked (wrong stage for the format, a directory in use, a
    library the format needs not installed)."""


class UnknownFormat(ExportError, UserError):
    """A format name that is not in tasks/export/formats.py (a usage error: exit code 2)."""


def require(module: str, fmt: str) -> None:
    """A clear error before any work when the library a format writes with is missing."""
    import importlib.util

    try:
        found = importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # a dotted name whose parent package is missing
        found = False
    if not found:
        hint = "pip install --no-deps litdata" if module == "litdata" else "pip install 'crawl2model[export]'"
        raise ExportError(f"format {fmt} needs {module}, which is not installed: {hint}")


class ExportConfig(Section):
    stage: str = Field(description="the stage whose output is exported")
    format: str = Field(description="a name in tasks/export/formats.py:FORMATS")
    out: Path = Field(description="the export directory (created; a finished export there is reused)")
    # Uncompressed text per document shard; the sample's documents fit in one.
    shard_bytes: int = Field(256 << 20, ge=1 << 10, description="text bytes per document shard")
    splits: list[Literal["train", "val"]] = Field(default_factory=lambda: ["train", "val"])
