"""The base of every config section: strict pydantic, and the canonical JSON a fingerprint is made of."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict


class Section(BaseModel):
    # Unknown keys are errors: a typo in a threshold must not silently run with the default.
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


def _existing_file(path: str) -> str:
    if not Path(path).is_file():
        raise ValueError(f"file not found: {path}")
    return path


# A config field naming a file the stage reads: checked when the config is validated, before any work.
ExistingFile = Annotated[str, AfterValidator(_existing_file)]


def _existing_path(path: str) -> str:
    if not Path(path).exists():
        raise ValueError(f"file or directory not found: {path}")
    return path


# A file, or a directory of files (MMLU's per-subject CSVs).
ExistingPath = Annotated[str, AfterValidator(_existing_path)]


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Nested config JSON as {dotted.key: value}; lists and empty sections are values."""
    if isinstance(value, dict) and value:
        out: dict[str, Any] = {}
        for k, v in value.items():
            out |= flatten(v, f"{prefix}{k}.")
        return out
    return {prefix.rstrip("."): value}


def config_json(cfg: BaseModel) -> dict[str, Any]:
    return json.loads(cfg.model_dump_json())


# Config fields that name files a stage reads (besides acquire's inputs): their identity is part of
# the stage's fingerprint, so a file edited in place at the same path is not a cache hit.
INPUT_FILE_FIELDS = frozenset({"reference_paths", "model_path", "blocklist_file", "topic_examples", "path"})


def input_files(cfg: BaseModel) -> list[str]:
    """The files named by `cfg` and the sections inside it (benchmark lists included)."""
    found: list[str] = []
    for name in type(cfg).model_fields:
        value = getattr(cfg, name)
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, BaseModel):
                found += input_files(item)
            elif name in INPUT_FILE_FIELDS and isinstance(item, str) and item:
                found.append(item)
    return found
