"""Documents out: dolma / datatrove JSONL.gz and Hugging Face datasets Parquet, sharded by size.

One input shard becomes one or more output shards (`<stem>-<input>-<part>`), each written atomically,
so an interrupted export resumes at the first input shard it had not finished.
"""

from __future__ import annotations

import gzip
import io
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from storage.progress import progress_bar
from storage.shards import atomic_write_bytes, write_parquet
from tasks.export.config import ExportConfig
from tasks.export.ledger import ShardLedger
from tasks.stage import StageInput

# Our column name -> the name the dolma / datatrove / Hugging Face conventions use.
RENAMED = {"lang": "language", "lang_score": "language_score", "lang_script": "language_script"}


def metadata(row: dict[str, Any]) -> dict[str, Any]:
    """Every column besides id and text: url, crawl, language, quality scores, domain, ... as the
    stage wrote them (a stage that adds a score column adds it here without a change)."""
    return {RENAMED.get(k, k): _plain(v) for k, v in row.items() if k not in ("doc_id", "text")}


def _plain(value: Any) -> Any:
    """A map column (Arrow gives [(key, value), ...], e.g. quality_scores) as a JSON object."""
    if isinstance(value, list) and value and all(isinstance(p, tuple) and len(p) == 2 for p in value):
        return dict(value)
    return value


def write_jsonl_gz(table: pa.Table, source: str, path: Path) -> None:
    """The dolma document schema (id, text, source, created, metadata), which datatrove reads."""
    buffer = io.BytesIO()
    # mtime=0: the same documents give the same bytes.
    with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as gz:
        for row in table.to_pylist():
            meta = metadata(row)
            record = {"id": row["doc_id"], "text": row["text"], "source": source, "metadata": meta}
            if meta.get("fetch_time"):
                record["created"] = str(meta["fetch_time"])
            gz.write(json.dumps(record, ensure_ascii=False, default=str).encode() + b"\n")
    atomic_write_bytes(path, buffer.getvalue())


def write_hf_parquet(table: pa.Table, source: str, path: Path) -> None:
    """Flat columns (id, text, source, then the metadata), the input's types kept: every shard has
    the same schema, which `datasets` requires."""
    for i, field in enumerate(table.schema):
        if pa.types.is_map(field.type):  # `datasets` has no map type: a list of {key, value} instead
            items = table.column(i).combine_chunks()
            as_list = pa.ListArray.from_arrays(items.offsets, pa.StructArray.from_arrays(
                [items.keys, items.items], names=["key", "value"]), mask=items.is_null())  # fmt: skip
            table = table.set_column(i, field.name, as_list)
    names = [{"doc_id": "id"}.get(n, RENAMED.get(n, n)) for n in table.column_names]
    table = table.rename_columns(names)
    table = table.add_column(2, "source", pa.array([source] * table.num_rows, pa.string()))
    write_parquet(table.select(["id", "text", *[n for n in table.column_names if n not in ("id", "text")]]), path)


def size_slices(table: pa.Table, shard_bytes: int) -> Iterator[pa.Table]:
    """Consecutive rows, cut when their text reaches `shard_bytes` (a slice holds at least one row)."""
    start, size = 0, 0
    for i, text in enumerate(table.column("text").to_pylist()):
        size += len(text.encode("utf-8", "surrogatepass"))
        if size >= shard_bytes:
            yield table.slice(start, i + 1 - start)
            start, size = i + 1, 0
    if start < table.num_rows:
        yield table.slice(start)


Writer = Callable[[pa.Table, str, Path], None]
LAYOUTS: dict[str, tuple[Writer, str]] = {
    "jsonl": (write_jsonl_gz, "documents/{stem}-{i:05d}-{part:03d}.jsonl.gz"),
    # `train-*` names: `datasets.load_dataset(DIR)` finds the split without a dataset card.
    "hf-datasets": (write_hf_parquet, "data/train-{i:05d}-{part:03d}.parquet"),
}


def export_documents(inputs: dict[str, StageInput], cfg: ExportConfig, out: Path) -> list[Path]:
    write, pattern = LAYOUTS[cfg.format]
    files = inputs[cfg.stage].files("docs")
    if not files:
        raise FileNotFoundError(f"{cfg.stage} output has no document shards to export")
    ledger = ShardLedger(out)
    todo = [i for i in range(len(files)) if not ledger.done(i)]
    with progress_bar(f"export {cfg.format}", len(files), len(files) - len(todo)) as advance:
        for i in todo:
            written = []
            for part, table in enumerate(size_slices(pq.read_table(files[i]), cfg.shard_bytes)):
                written.append(out / pattern.format(stem=cfg.stage, i=i, part=part))
                write(table, f"crawl2model/{cfg.stage}", written[-1])
            ledger.finish(i, written)
            advance(1)
    return ledger.files()
