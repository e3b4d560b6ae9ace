"""Reference corpora and classifiers named by URL (https, s3, hf://datasets/... through fsspec),
fetched once into the workdir cache with the shared downloader (resumable, retried, verified) and
checked against their sha256 pin."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pyarrow.parquet as pq

from tasks.download import DownloadConfig, PinMismatch, fetch_pinned
from tasks.filter.config import REMOTE_PREFIXES, ReferenceSource

__all__ = ["PinMismatch", "fetch_pinned", "is_remote", "local_copy", "read_texts"]


def is_remote(path: str) -> bool:
    return path.startswith(REMOTE_PREFIXES)


def local_copy(source: ReferenceSource, cache_dir: Path, cfg: DownloadConfig) -> Path:
    return fetch_pinned(source.path, source.sha256, cache_dir, cfg) if is_remote(source.path) else Path(source.path)


def read_texts(path: Path, text_key: str) -> tuple[list[str], bool]:
    """(texts, whether they are records): plain text is one text; JSONL (optionally gzipped) and
    Parquet give one text per record, from `text_key`."""
    name = path.name.lower()
    if name.endswith(".parquet"):
        table = pq.read_table(path, columns=[text_key])
        return [t for t in table.column(text_key).to_pylist() if t], True
    if name.endswith((".jsonl", ".jsonl.gz", ".json.gz", ".ndjson")):
        opener = gzip.open if name.endswith(".gz") else open
        with opener(path, "rt", encoding="utf-8", errors="replace") as f:
            rows = (json.loads(line) for line in f if line.strip())
            return [row[text_key] for row in rows if row.get(text_key)], True
    return [path.read_text(errors="replace")], False
