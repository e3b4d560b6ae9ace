"""Our token shards read back as what other formats store: the flat token stream the trainer sees
(rows of seq_len + 1, concatenated) and the documents in it (pieces ending at EOS)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from model.packing import EOS_ID
from tasks.stage import StageInput


def split_files(tokens: StageInput, split: str) -> list[str]:
    return [f for f in tokens.files("tokens") if Path(f).name.startswith(f"{split}-")]


def token_dtype(vocab_size: int) -> type[np.unsignedinteger]:
    """uint16 while every id fits (the convention of nanoGPT and Megatron), else uint32."""
    return np.uint16 if vocab_size <= 1 << 16 else np.uint32


def shard_stream(path: str) -> tuple[np.ndarray, list[str]]:
    """One shard's tokens in order, and the id of each document piece in it (pieces end at EOS;
    a document cut by a row boundary is one piece, a copy placed again by mix is another)."""
    table = pq.read_table(path, columns=["tokens", "doc_ids"])
    rows = table.column("tokens").combine_chunks()
    stream = rows.values.to_numpy(zero_copy_only=False).astype(np.int64)
    width = len(stream) // max(len(rows), 1)
    piece_ids: list[str] = []
    for r, ids in enumerate(table.column("doc_ids").to_pylist()):
        continues = r > 0 and stream[r * width - 1] != EOS_ID
        piece_ids += ids[1:] if continues else ids
    return stream, piece_ids


def documents(path: str) -> Iterator[tuple[str, np.ndarray]]:
    """(doc_id, tokens) per document piece, the final EOS included; the pieces concatenate to the stream."""
    stream, piece_ids = shard_stream(path)
    ends = np.flatnonzero(stream == EOS_ID) + 1
    pieces = np.split(stream, ends)
    if len(pieces[-1]) == 0:
        pieces.pop()
    if len(pieces) != len(piece_ids):
        raise ValueError(f"{path}: {len(pieces)} EOS-delimited pieces but {len(piece_ids)} document ids")
    yield from zip(piece_ids, pieces, strict=True)


def row_width(path: str) -> int:
    return len(pq.read_table(path, columns=["tokens"]).column("tokens")[0])
