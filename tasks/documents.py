"""The document and removal record schemas shared by the text stages."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pyarrow as pa

from storage.shards import write_parquet

DOC_SCHEMA = pa.schema(
    [
        ("doc_id", pa.string()),
        ("url", pa.string()),
        ("host", pa.string()),
        ("crawl", pa.string()),
        ("warc_path", pa.string()),
        ("warc_offset", pa.int64()),
        ("fetch_time", pa.string()),
        ("lang", pa.string()),
        ("lang_score", pa.float64()),
        ("text", pa.string()),
        ("n_chars", pa.int64()),
        ("n_words", pa.int64()),
    ]
)

# What PII redaction (filter) leaves in the text; tokenize keeps each placeholder one token.
PLACEHOLDERS = {"email": "<EMAIL>", "phone": "<PHONE>", "ip": "<IP_ADDRESS>"}

REMOVED_SCHEMA = pa.schema(
    [
        ("doc_id", pa.string()),
        ("url", pa.string()),
        ("stage", pa.string()),
        ("rule", pa.string()),
        ("value", pa.float64()),
        ("detail", pa.string()),
        # Where the record is: a page removed in extract has no document row to look it up in.
        ("warc_path", pa.string()),
        ("warc_offset", pa.int64()),
    ]
)


def doc_id_for(record_id: str) -> str:
    """Stable document id: a hash of the WARC record id."""
    return hashlib.sha1(record_id.encode()).hexdigest()[:16]


def removed_row(doc: dict[str, Any], stage: str, rule: str, value: float | None, detail: str = "") -> dict:
    return {
        "doc_id": doc["doc_id"],
        "url": doc.get("url"),
        "stage": stage,
        "rule": rule,
        "value": None if value is None else float(value),
        "detail": detail,
        "warc_path": doc.get("warc_path"),
        "warc_offset": doc.get("warc_offset"),
    }


# Columns each stage adds; a stage's schema is the base plus every earlier stage's additions.
FILTER_COLUMNS = [pa.field("quality_score", pa.float64())]
DEDUP_COLUMNS = [*FILTER_COLUMNS, pa.field("dup_cluster", pa.string()), pa.field("dup_cluster_size", pa.int64())]
MIX_COLUMNS = [
    *DEDUP_COLUMNS,
    pa.field("domain", pa.string()),
    pa.field("sample_weight", pa.float64()),
    pa.field("repeats", pa.int64()),
]


def write_docs(rows: list[dict[str, Any]], path: Path, extra: list[pa.Field] | None = None) -> None:
    """Write document rows with the base schema plus the given stage columns."""
    schema = pa.schema(list(DOC_SCHEMA) + list(extra or []))
    write_parquet(pa.Table.from_pylist(rows, schema=schema), path)


def write_removed(rows: list[dict[str, Any]], path: Path) -> None:
    write_parquet(pa.Table.from_pylist(rows, schema=REMOVED_SCHEMA), path)


def write_shard(
    out: Path,
    index: int,
    kept: list[dict[str, Any]],
    removed: list[dict[str, Any]],
    extra: list[pa.Field] | None = None,
) -> dict[str, int]:
    """Write one shard's kept documents and removal rows; return its counts, per rule too."""
    write_docs(kept, out / "docs" / f"part-{index:05d}.parquet", extra)
    write_removed(removed, out / "removed" / f"part-{index:05d}.parquet")
    stats = {"docs_in": len(kept) + len(removed), "docs_out": len(kept), "docs_removed": len(removed)}
    for row in removed:
        stats[f"removed.{row['rule']}"] = stats.get(f"removed.{row['rule']}", 0) + 1
    return stats


def count_words(text: str) -> int:
    return len(text.split())
