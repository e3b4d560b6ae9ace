"""One export: checked, resumed or reused, written, and described in `export.json` (written last)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from storage.section import config_json
from storage.shards import atomic_write_json, describe_file, read_json
from tasks.export.config import ExportConfig, ExportError, UnknownFormat, require
from tasks.export.formats import FORMATS, ExportFormat
from tasks.stage import StageInput

EXPORT_MANIFEST = "export.json"
KEY_FILE = Path("_state") / "key.json"


def check(cfg: ExportConfig) -> ExportFormat:
    if cfg.format not in FORMATS:
        raise UnknownFormat(f"unknown format {cfg.format!r}; formats: {', '.join(FORMATS)}")
    fmt = FORMATS[cfg.format]
    if cfg.stage not in fmt.stages:
        raise ExportError(f"format {cfg.format} exports the output of {' or '.join(fmt.stages)}, not {cfg.stage}")
    for module in fmt.requires:
        require(module, fmt.name)
    return fmt


def export_key(cfg: ExportConfig, inputs: dict[str, StageInput]) -> str:
    """What the export depends on: the format's options and the outputs it reads, not where it goes."""
    options = {k: v for k, v in config_json(cfg).items() if k != "out"}
    sources = {name: stage.fingerprint for name, stage in sorted(inputs.items())}
    return hashlib.sha256(json.dumps([options, sources], sort_keys=True).encode()).hexdigest()[:24]


def claim(out: Path, key: str) -> dict[str, Any] | None:
    """The finished export when `out` already holds this one; else claims `out` for it (resuming a
    partial one with the same key) and returns None."""
    if (out / EXPORT_MANIFEST).exists():
        done = read_json(out / EXPORT_MANIFEST)
        if done["key"] == key:
            return done
        raise ExportError(f"{out} holds another export ({done['format']} of {done['stage']}): choose another --out")
    if (out / KEY_FILE).exists() and read_json(out / KEY_FILE)["key"] != key:
        raise ExportError(f"{out} holds an unfinished different export: delete it or choose another --out")
    if not (out / KEY_FILE).exists() and out.exists() and any(out.iterdir()):
        raise ExportError(f"{out} is not empty and holds no crawl2model export: choose another --out")
    atomic_write_json(out / KEY_FILE, {"key": key})
    return None


def export(cfg: ExportConfig, inputs: dict[str, StageInput]) -> dict[str, Any]:
    """Write the export (or return the finished one): its manifest, with `reused` saying which."""
    fmt = check(cfg)
    out = cfg.out.resolve()
    key = export_key(cfg, inputs)
    if (done := claim(out, key)) is not None:
        return {**done, "reused": True}
    files = fmt.write(inputs, cfg, out)
    manifest = {
        "key": key, "format": cfg.format, "stage": cfg.stage, "out": str(out),
        "sources": {name: stage.fingerprint for name, stage in inputs.items()},
        "files": [describe_file(f, cfg.format, out) for f in files if f.is_file()],
        "load": fmt.load.format(out=out),
    }  # fmt: skip
    atomic_write_json(out / EXPORT_MANIFEST, manifest)
    return {**manifest, "reused": False}
