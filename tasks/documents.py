"""The document and removal record schemas shared by the text stages."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pyarrow as pa

from storage.shards import ParquetStream, write_parquet
from tasks.languages import language, words

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
        ("lang_script", pa.string()),  # where the language-id model gives it (GlotLID), else null
        ("text", pa.string()),
        ("n_chars", pa.int64()),
        ("n_words", pa.int64()),
    ]
)

# What PII redaction (filter) leaves in the text; tokenize keeps each placeholder one token.
PLACEHOLDERS = {"email": "<EMAIL>", "phone": "<PHONE>", "ip": "<IP_ADDRESS>", "id": "<ID_NUMBER>"}

DEFERRED = "deferred"  # the folder (and artifact kind) of removals a later stage records
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
FILTER_COLUMNS = [
    pa.field("quality_score", pa.float64()),
    # Every classifier's score by name, and the best of their percentile buckets (0 = lowest).
    pa.field("quality_scores", pa.map_(pa.string(), pa.float64())),
    pa.field("quality_bucket", pa.int32()),
]
DEDUP_COLUMNS = [*FILTER_COLUMNS, pa.field("dup_cluster", pa.string()), pa.field("dup_cluster_size", pa.int64())]
MIX_COLUMNS = [
    *DEDUP_COLUMNS,
    pa.field("domain", pa.string()),
    pa.field("sample_weight", pa.float64()),
    pa.field("repeats", pa.int64()),
    pa.field("anneal_repeats", pa.int64()),  # copies in the anneal mixture (mix.anneal), 0 = none
]


def write_docs(rows: list[dict[str, Any]], path: Path, extra: list[pa.Field] | None = None) -> None:
    """Write document rows with the base schema plus the given stage columns."""
    schema = pa.schema(list(DOC_SCHEMA) + list(extra or []))
    write_parquet(pa.Table.from_pylist(rows, schema=schema), path)


def write_removed(rows: list[dict[str, Any]], path: Path) -> None:
    write_parquet(pa.Table.from_pylist(rows, schema=REMOVED_SCHEMA), path)


class ShardWriter:
    """One shard's kept documents and removal rows, streamed to Parquet a row group at a time (a
    1 GB WARC's documents never sit in memory at once); `close` renames them into place and returns
    the shard's counts, per rule too.

    With `deferred`, a third file holds removals a later stage will record (`deferred/`: extract's
    pages that filter's URL rules remove). They leave this stage as documents handed on (docs_out),
    so every stage's counts still add up: the next stage counts them in and removes them.
    """

    def __init__(self, out: Path, index: int, extra: list[pa.Field] | None = None, deferred: bool = False):
        schema = pa.schema(list(DOC_SCHEMA) + list(extra or []))
        self.docs = ParquetStream(out / "docs" / f"part-{index:05d}.parquet", schema)
        self.removed = ParquetStream(out / "removed" / f"part-{index:05d}.parquet", REMOVED_SCHEMA)
        self.deferred = (
            ParquetStream(out / DEFERRED / f"part-{index:05d}.parquet", REMOVED_SCHEMA) if deferred else None
        )
        self.stats = {"docs_in": 0, "docs_out": 0, "docs_removed": 0}

    def keep(self, doc: dict[str, Any]) -> None:
        self.docs.add(doc)
        self.stats["docs_in"] += 1
        self.stats["docs_out"] += 1

    def remove(self, row: dict[str, Any]) -> None:
        self.removed.add(row)
        self.stats["docs_in"] += 1
        self.stats["docs_removed"] += 1
        key = f"removed.{row['rule']}"
        self.stats[key] = self.stats.get(key, 0) + 1

    def defer(self, row: dict[str, Any]) -> None:
        assert self.deferred is not None, "ShardWriter(deferred=True) holds deferred removals"
        self.deferred.add(row)
        self.stats["docs_in"] += 1
        self.stats["docs_out"] += 1
        key = f"deferred.{row['rule']}"
        self.stats[key] = self.stats.get(key, 0) + 1

    def close(self) -> dict[str, int]:
        self.docs.close()
        self.removed.close()
        if self.deferred is not None:
            self.deferred.close()
        return self.stats


def write_shard(
    out: Path,
    index: int,
    kept: list[dict[str, Any]],
    removed: list[dict[str, Any]],
    extra: list[pa.Field] | None = None,
) -> dict[str, int]:
    """Write one shard's kept documents and removal rows; return its counts, per rule too."""
    shard = ShardWriter(out, index, extra)
    for doc in kept:
        shard.keep(doc)
    for row in removed:
        shard.remove(row)
    return shard.close()


# Removal rules whose `detail` is the document's language (extract removes these after language id).
LANGUAGE_IN_DETAIL = frozenset({"too_short", "lang", "lang_score"})


# Before the tokenizer exists: four English characters a token, and a character of another script as
# many English characters as the language registry says it carries (a Chinese character about three).
CHARS_PER_TOKEN = 4.0


def estimated_tokens(doc: dict[str, Any]) -> float:
    """The document's tokens, estimated before tokenize from its length in English characters' worth."""
    return language(doc.get("lang")).text_weight * doc["n_chars"] / CHARS_PER_TOKEN


def count_words(text: str, lang: str | None = None) -> int:
    """Words as the document's language counts them (the language registry's segmenter)."""
    return len(words(text, lang))
