"""The manual's reference pages, generated from the code: every config key (from the pydantic models),
every stage (from the registry) and every CLI command and option (from typer). `docs/hooks.py` adds
them to the MkDocs build, so the reference cannot drift from the code."""

from __future__ import annotations

import enum
import inspect
import json
import types
import typing
from typing import Any

import annotated_types
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from storage.section import section_type

BOUNDS = {annotated_types.Ge: ">=", annotated_types.Gt: ">", annotated_types.Le: "<=", annotated_types.Lt: "<"}


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ").strip()


def type_name(annotation: Any) -> str:
    """A field's type as a reader says it: `int`, `list[str]`, `'local' | 'dask'`, `TrainConfig`."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return type_name(typing.get_args(annotation)[0])
    if origin is typing.Literal:
        return " \\| ".join(repr(a) for a in typing.get_args(annotation))
    if origin in (typing.Union, types.UnionType):
        return " \\| ".join(type_name(a) for a in typing.get_args(annotation))
    if origin is not None:
        args = ", ".join(type_name(a) for a in typing.get_args(annotation))
        return f"{getattr(origin, '__name__', str(origin))}[{args}]"
    if annotation is type(None):
        return "None"
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return " \\| ".join(repr(m.value) for m in annotation)
    return getattr(annotation, "__name__", str(annotation))


def default_text(field: FieldInfo) -> str:
    if field.default_factory is not None:
        value = field.default_factory()
        return "(section)" if isinstance(value, BaseModel) else f"`{json.dumps(value, default=str)}`"
    if field.default is PydanticUndefined:
        return "(required)"
    if isinstance(field.default, enum.Enum):
        return f"`{field.default.value!r}`"
    return f"`{json.dumps(field.default, default=str)}`"


def bounds_text(field: FieldInfo) -> str:
    return ", ".join(f"{op} {getattr(m, next(iter(m.__dataclass_fields__)))}"
                     for m in field.metadata for kind, op in BOUNDS.items() if isinstance(m, kind))  # fmt: skip


def config_rows(model: type[BaseModel], prefix: str = "") -> list[tuple[str, str, str, str, str]]:
    """(dotted key, type, default, bounds, description) for every field, sections expanded in place."""
    rows = []
    for name, field in model.model_fields.items():
        key = f"{prefix}{name}"
        nested = section_type(field.annotation)
        rows.append((key, type_name(field.annotation), default_text(field), bounds_text(field),
                     field.description or ""))  # fmt: skip
        if nested is not None and nested is not model:
            rows.extend(config_rows(nested, f"{key}."))
    return rows


def _section_doc(model: type[BaseModel]) -> str:
    doc = inspect.getdoc(model) or ""
    return "" if doc.startswith(("Usage docs", "A base class")) else doc


def _key_row(key: str, type_: str, default: str, bounds: str, description: str) -> str:
    return f"| `{key}` | {type_} | {_cell(default)} | {bounds} | {_cell(description)} |"


def config_reference() -> str:
    """One table per top-level section of `PipelineConfig`, in the registry's order."""
    from tasks.config import PipelineConfig

    parts = [
        "# Configuration reference",
        "",
        "Generated from the pydantic models (`tasks/<stage>/config.py`, `tasks/config.py`). Every key can be",
        "set in a YAML config (`--config`) or on the command line as `--set section.key=value`; unknown keys",
        "are errors. Defaults serve the embedded sample.",
        "",
    ]
    header = ["| key | type | default | bounds | description |", "|---|---|---|---|---|"]
    top = [(k, f) for k, f in PipelineConfig.model_fields.items() if section_type(f.annotation) is None]
    parts += ["## The run", "", *header]
    parts += [
        _key_row(k, type_name(f.annotation), default_text(f), bounds_text(f), f.description or "") for k, f in top
    ]
    parts.append("")
    for name, field in PipelineConfig.model_fields.items():
        section = section_type(field.annotation)
        if section is None:
            continue
        parts += [f"## `{name}`", "", _section_doc(section), "", *header]
        parts += [_key_row(f"{name}.{k}", *rest) for k, *rest in config_rows(section)]
        parts.append("")
    return "\n".join(parts)


def stages_reference() -> str:
    """The registry as a table: the DAG, each stage's config section and version."""
    from tasks.registry import STAGE_SPECS

    rows = [f"| `{s.name}` | {', '.join(f'`{i}`' for i in s.inputs) or '(none)'} | `{s.config.__name__}` | {s.version} "
            f"| {_cell((inspect.getdoc(inspect.getmodule(s.run)) or '').split(chr(10) * 2)[0])} |"
            for s in STAGE_SPECS]  # fmt: skip
    return "\n".join([
        "# Stages reference",
        "",
        "Generated from the registry (`tasks/registry.py`), the one list of stages: the order below is the",
        "order they run in, and the inputs are the DAG's edges. A stage's version is part of its fingerprint.",
        "",
        "| stage | inputs | config | version | what it does |",
        "|---|---|---|---|---|",
        *rows,
        "",
    ])  # fmt: skip


def _option_row(param: Any) -> str:
    names = ", ".join(f"`{n}`" for n in [*param.opts, *param.secondary_opts])
    default = "" if param.default in (None, (), []) or callable(param.default) else f"`{param.default}`"
    kind = "flag" if param.is_flag else type_name(param.type_descriptor.annotation)
    bounds = ", ".join(f"{op} {v}" for op, v in ((">=", param.min), ("<=", param.max)) if v is not None)
    return f"| {names} | {kind} | {default} | {bounds} | {_cell(param.help or '')} |"


def _command_section(name: str, command: Any) -> list[str]:
    # Typer vendors its own click: parameters are told apart by their kind name, not by class.
    arguments = [p for p in command.params if p.param_type_name == "argument"]
    options = [p for p in command.params if p.param_type_name == "option" and p.name != "help"]
    usage = " ".join([f"crawl2model {name}", *(a.name.upper() for a in arguments)])
    lines = [f"## `{name}`", "", inspect.cleandoc(command.help or ""), "", f"```\n{usage} [OPTIONS]\n```", ""]
    if options:
        lines += [
            "| option | type | default | bounds | help |",
            "|---|---|---|---|---|",
            *map(_option_row, options),
            "",
        ]
    return lines


def cli_reference() -> str:
    """Every command and sub-command of the `crawl2model` CLI with its options, from typer."""
    import typer.main

    from flows.cli import app

    root = typer.main.get_command(app)
    lines = ["# Command-line reference", "", "Generated from the typer app (`flows/cli.py`).", ""]
    todo: list[tuple[str, Any]] = sorted(root.commands.items())
    while todo:
        name, command = todo.pop(0)
        if hasattr(command, "commands"):  # a group: its sub-commands in its place
            todo[:0] = [(f"{name} {sub}", c) for sub, c in sorted(command.commands.items())]
            continue
        lines += _command_section(name, command)
    return "\n".join(lines)


def _subclasses(cls: type) -> list[type]:
    found = []
    for sub in cls.__subclasses__():
        found += [sub, *_subclasses(sub)]
    return list(dict.fromkeys(found))


def _own_doc(cls: type) -> str:
    """The first paragraph of the class's own docstring (not one inherited)."""
    return inspect.cleandoc(cls.__dict__.get("__doc__") or "").split("\n\n")[0]


def errors_reference() -> str:
    """Exit codes and every error class, from `storage/errors.py` and the classes deriving from it."""
    import flows.cli
    import flows.export  # noqa: F401 - imported so their error classes are registered as subclasses
    from storage.errors import EXIT_CODES, Crawl2ModelError

    classes = [Crawl2ModelError, *_subclasses(Crawl2ModelError)]
    rows = [f"| `{c.__name__}` | {c.exit_code} | `{c.__module__}` | {_cell(_own_doc(c))} |" for c in classes]
    return "\n".join([
        "# Errors and exit codes",
        "",
        "Generated from `storage/errors.py`. Every error crawl2model reports derives from one base; the CLI",
        "catches it once and prints one `error:` line, and a `hint:` line when there is one. `crawl2model --debug`",
        "(or `CRAWL2MODEL_DEBUG=1`) shows the traceback instead.",
        "",
        "| exit code | meaning |",
        "|---|---|",
        *(f"| {code} | {meaning} |" for code, meaning in EXIT_CODES.items()),
        "",
        "| error | exit code | defined in | when |",
        "|---|---|---|---|",
        *rows,
        "",
    ])  # fmt: skip


PAGES = {"reference/config.md": config_reference, "reference/stages.md": stages_reference,
         "reference/cli.md": cli_reference, "reference/errors.md": errors_reference}  # fmt: skip
