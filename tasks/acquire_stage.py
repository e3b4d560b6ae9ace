"""acquire: the embedded sample, or local WARC paths/globs, into the stage's output directory."""

from __future__ import annotations

import glob
import os
import shutil
from pathlib import Path

from tasks import STAGE_VERSIONS
from tasks.config import AcquireConfig
from tasks.sample import write_sample
from tasks.stage import StageInput, StageOutcome

VERSION = STAGE_VERSIONS["acquire"]


def resolve_paths(patterns: list[str]) -> list[Path]:
    """Expand globs in order; a pattern that matches nothing is an error, not an empty run."""
    found: list[Path] = []
    for pattern in patterns:
        matches = sorted(glob.glob(os.path.expanduser(pattern)))
        if not matches:
            raise FileNotFoundError(f"acquire.paths: {pattern!r} matches no file")
        found += [Path(m) for m in matches if Path(m).is_file()]
    return found


def input_identity(cfg: AcquireConfig) -> list[str]:
    """What the fingerprint must see of local inputs: a changed file must not be a cache hit."""
    if cfg.source != "paths":
        return []
    return [f"{p.resolve()}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in resolve_paths(cfg.paths)]


def _link_or_copy(src: Path, dst: Path) -> None:
    tmp = dst.with_name(f".{dst.name}.tmp")
    try:
        os.link(src, tmp)
    except OSError:
        shutil.copyfile(src, tmp)
    os.replace(tmp, dst)


def run(inputs: dict[str, StageInput], cfg: AcquireConfig, out: Path) -> StageOutcome:
    outcome = StageOutcome()
    warc_dir = out / "warc"
    if cfg.source == "sample":
        summary = write_sample(warc_dir, cfg.sample_pages, cfg.planted_per_case, cfg.seed)
        (warc_dir / "ground_truth.jsonl").rename(out / "ground_truth.jsonl")
        outcome.info = {
            "source": "sample",
            "records": summary["records"],
            "cases": summary["cases"],
            "crawl": f"CC-SAMPLE-{cfg.seed:04d}",
        }
    else:
        warc_dir.mkdir(parents=True, exist_ok=True)
        paths = resolve_paths(cfg.paths)
        names = set()
        for i, src in enumerate(paths):
            name = src.name if src.name not in names else f"{i:05d}-{src.name}"
            names.add(name)
            _link_or_copy(src, warc_dir / name)
        outcome.info = {"source": "paths", "paths": [str(p) for p in paths], "crawl": "local"}
    files = sorted(warc_dir.iterdir())
    outcome.metric("warc_files", len(files))
    outcome.metric("warc_bytes", sum(f.stat().st_size for f in files))
    return outcome
