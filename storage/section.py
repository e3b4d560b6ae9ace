"""The base of every config section: strict pydantic, and the canonical JSON a fingerprint is made of."""

from __future__ import annotations

import importlib.util
import json
import typing
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict


class Section(BaseModel):
    # Unknown keys are errors: a typo in a threshold must not silently run with the default.
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


def needs_package(module: str, setting: str, extra: str) -> None:
    """A setting that needs an optional package: one clear error, at validation, naming the extra."""
    if importlib.util.find_spec(module) is None:
        raise ValueError(f"{setting} needs the {module} package: pip install 'crawl2model[{extra}]'")


class InputFile:
    """Marks a config field that names a file a stage reads (a local path, or a URL): the file's
    identity is part of the stage's fingerprint, so a file edited in place at the same path is not a
    cache hit. Declared on the field's type, never guessed from the field's name."""


INPUT_FILE = InputFile()
# A local path or a URL (a reference corpus, a classifier): fingerprinted, not checked for existence here.
InputPath = Annotated[str, INPUT_FILE]


def _existing_file(path: str) -> str:
    if not Path(path).is_file():
        raise ValueError(f"file not found: {path}")
    return path


# A config field naming a file the stage reads: checked when the config is validated, before any work.
ExistingFile = Annotated[str, AfterValidator(_existing_file), INPUT_FILE]


def _existing_path(path: str) -> str:
    if not Path(path).exists():
        raise ValueError(f"file or directory not found: {path}")
    return path


# A file, or a directory of files (MMLU's per-subject CSVs).
ExistingPath = Annotated[str, AfterValidator(_existing_path), INPUT_FILE]


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


def section_type(annotation: Any) -> type[BaseModel] | None:
    """The config section a field's type holds (directly, or as `Section | None`), else None."""
    return next((a for a in (typing.get_args(annotation) or (annotation,))
                 if isinstance(a, type) and issubclass(a, BaseModel)), None)  # fmt: skip


def declares_input_file(annotation: Any) -> bool:
    """Whether a field's type (or a type inside it: `ExistingFile | None`, `list[ExistingFile]`) is
    marked as an input file."""
    if any(isinstance(m, InputFile) for m in getattr(annotation, "__metadata__", ())):
        return True
    return any(declares_input_file(a) for a in typing.get_args(annotation))


def input_files(cfg: BaseModel) -> list[str]:
    """The files named by `cfg` and the sections inside it (benchmark lists included)."""
    found: list[str] = []
    for name, field in type(cfg).model_fields.items():
        value = getattr(cfg, name)
        declared = any(isinstance(m, InputFile) for m in field.metadata) or declares_input_file(field.annotation)
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, BaseModel):
                found += input_files(item)
            elif declared and isinstance(item, str) and item:
                found.append(item)
    return found
