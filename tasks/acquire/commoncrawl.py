"""Common Crawl's file index: `crawl-data/<crawl>/<type>.paths.gz`, and choosing files from it."""

from __future__ import annotations

import gzip
import random
import re
from pathlib import Path, PurePosixPath

from storage.errors import Crawl2ModelError
from tasks.acquire.config import AcquireConfig
from tasks.download import Fetcher

SAFE_PART = re.compile(r"^[A-Za-z0-9._\-]+$")


class UnsafePath(Crawl2ModelError, ValueError):
    """A path in a remote index that would leave the data directory (`../`, absolute, a scheme, ...)."""


def safe_relative_path(path: str) -> PurePosixPath:
    """A path from a remote index, as a relative path that cannot leave the directory it is joined to.

    Rejects absolute paths, `..`, URL schemes, backslashes, control characters and anything but
    plain file-name characters: an index is untrusted input.
    """
    if not path or len(path) > 1024 or "\\" in path or ":" in path:
        raise UnsafePath(f"unsafe path in index: {path!r}")
    pure = PurePosixPath(path)
    if pure.is_absolute() or any(part in ("", ".", "..") or not SAFE_PART.match(part) for part in pure.parts):
        raise UnsafePath(f"unsafe path in index: {path!r}")
    return pure


def index_url(cfg: AcquireConfig) -> str:
    return f"{cfg.host.rstrip('/')}/crawl-data/{cfg.crawl}/{cfg.file_type}.paths.gz"


def read_index(fetcher: Fetcher, cfg: AcquireConfig, out: Path) -> list[str]:
    """Download the crawl's path list (resumable like any file) and return its entries, checked."""
    dest = out / "index" / f"{cfg.crawl}.{cfg.file_type}.paths.gz"
    dest.parent.mkdir(parents=True, exist_ok=True)
    fetcher.fetch(index_url(cfg), dest, out / "_state" / "downloads")
    with gzip.open(dest, "rt", encoding="utf-8") as f:
        lines = [line.strip() for line in f if line.strip()]
    return [str(safe_relative_path(line)) for line in lines]


def select_files(index: list[str], cfg: AcquireConfig) -> list[str]:
    if cfg.select == "first":
        return index[: cfg.count]
    if cfg.select == "random":
        chosen = set(random.Random(cfg.seed).sample(range(len(index)), min(cfg.count, len(index))))
        return [p for i, p in enumerate(index) if i in chosen]  # keep the crawl's order
    listed = set(index)
    unknown = [p for p in cfg.files if p not in listed]
    if unknown:
        raise ValueError(f"acquire.files not in {cfg.crawl}'s {cfg.file_type} index: {unknown[:3]}")
    return list(dict.fromkeys(cfg.files))


def local_name(path: str) -> str:
    """Common Crawl file names are unique within a crawl; keep only the checked last part."""
    return safe_relative_path(path).name
