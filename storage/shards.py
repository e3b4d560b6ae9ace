"""Atomic shard IO: every file is written under a temp name and renamed into place.

A stage's output directory is complete only once `manifest.json` exists; it is written last.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from storage.fingerprint import file_sha256

MANIFEST = "manifest.json"


def _tmp_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_name(path)
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def atomic_write_json(path: Path, value: Any) -> None:
    atomic_write_bytes(path, json.dumps(value, indent=2, sort_keys=True, default=str).encode())


def read_json(path: Path) -> Any:
    return json.loads(Path(path).read_text())


def write_parquet(table: pa.Table, path: Path, row_group_size: int = 4096) -> None:
    """Write a zstd Parquet file atomically. Output bytes depend only on the table."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_name(path)
    pq.write_table(table, tmp, compression="zstd", row_group_size=row_group_size)
    os.replace(tmp, path)


class ParquetStream:
    """A Parquet file written a row group at a time, so memory holds one row group, not the file;
    renamed into place by `close`. The same rows give the same bytes as `write_parquet`."""

    def __init__(self, path: Path, schema: pa.Schema, row_group_size: int = 4096):
        self.path, self.schema, self.row_group_size = path, schema, row_group_size
        path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = _tmp_name(path)
        self.writer = pq.ParquetWriter(self.tmp, schema, compression="zstd")
        self.buffer: list[dict[str, Any]] = []
        self.rows = 0

    def add(self, row: dict[str, Any]) -> None:
        self.buffer.append(row)
        if len(self.buffer) == self.row_group_size:
            self._flush()

    def _flush(self) -> None:
        if self.buffer:
            self.writer.write_table(pa.Table.from_pylist(self.buffer, schema=self.schema),
                                    row_group_size=self.row_group_size)  # fmt: skip
            self.rows += len(self.buffer)
            self.buffer = []

    def close(self) -> None:
        self._flush()
        if not self.rows:  # as write_parquet writes an empty table
            self.writer.write_table(pa.Table.from_pylist([], schema=self.schema), row_group_size=self.row_group_size)
        self.writer.close()
        os.replace(self.tmp, self.path)


def iter_rows(paths: list[str], columns: list[str] | None = None, batch_size: int = 1024) -> Iterator[dict]:
    """Stream rows as dicts without loading whole shards."""
    for p in paths:
        for batch in pq.ParquetFile(p).iter_batches(batch_size=batch_size, columns=columns):
            yield from batch.to_pylist()


def describe_file(path: Path, kind: str, root: Path) -> dict[str, Any]:
    rows = pq.ParquetFile(path).metadata.num_rows if path.suffix == ".parquet" else None
    return {
        "path": str(path.relative_to(root)),
        "kind": kind,
        "rows": rows,
        "bytes": path.stat().st_size,
        "sha256": file_sha256(str(path)),
    }
