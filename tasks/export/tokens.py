"""Tokens out: Megatron-LM / NeMo indexed datasets, nanoGPT's flat .bin, litdata's streaming chunks.

Each split is one part of the export (written under temp names, then renamed), so an interrupted
export resumes at the split it had not finished.
"""

from __future__ import annotations

import os
import pickle
import shutil
import struct
from collections.abc import Callable
from pathlib import Path

import numpy as np

from storage.progress import progress_bar
from storage.shards import atomic_write_bytes
from tasks.export.config import ExportConfig
from tasks.export.ledger import ShardLedger
from tasks.export.token_stream import documents, row_width, shard_stream, split_files, token_dtype
from tasks.stage import StageInput

# Megatron's `.idx` layout (megatron/core/datasets/indexed_dataset.py): magic, version 1, dtype code.
MEGATRON_MAGIC = b"MMIDIDX\x00\x00"
MEGATRON_DTYPE_CODES = {np.dtype(np.uint16): 8, np.dtype(np.int32): 4, np.dtype(np.uint32): 4}


def _temp(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


def write_megatron(files: list[str], dtype: type, prefix: Path) -> list[Path]:
    """`<prefix>.bin` + `<prefix>.idx`: one sequence per document piece, as Megatron's
    preprocess_data.py writes documents (each ending with its EOD token)."""
    dtype = np.dtype(np.int32 if dtype is np.uint32 else dtype)  # Megatron has no uint32
    lengths: list[int] = []
    bin_path, idx_path = prefix.with_suffix(".bin"), prefix.with_suffix(".idx")
    with open(_temp(bin_path), "wb") as data:
        for path in files:
            for _, piece in documents(path):
                data.write(piece.astype(dtype).tobytes())
                lengths.append(len(piece))
    pointers = np.concatenate([[0], np.cumsum(lengths[:-1], dtype=np.int64)]) * dtype.itemsize
    header = MEGATRON_MAGIC + struct.pack("<Q", 1) + struct.pack("<B", MEGATRON_DTYPE_CODES[dtype])
    counts = struct.pack("<Q", len(lengths)) + struct.pack("<Q", len(lengths) + 1)
    index = (np.asarray(lengths, np.int32).tobytes() + pointers.astype(np.int64).tobytes()
             + np.arange(len(lengths) + 1, dtype=np.int64).tobytes())  # fmt: skip
    atomic_write_bytes(idx_path, header + counts + index)
    os.replace(_temp(bin_path), bin_path)
    return [bin_path, idx_path]


def write_nanogpt(files: list[str], dtype: type, path: Path) -> list[Path]:
    """nanoGPT's `np.memmap(path, dtype)`: the rows concatenated, as our trainer reads them."""
    with open(_temp(path), "wb") as data:
        for f in files:
            data.write(shard_stream(f)[0].astype(dtype).tobytes())
    os.replace(_temp(path), path)
    return [path]


def write_litdata(files: list[str], dtype: type, directory: Path) -> list[Path]:
    """litdata chunks read by `StreamingDataset(DIR, item_loader=TokensLoader(block_size=seq_len + 1))`."""
    import torch
    from litdata.streaming.item_loader import TokensLoader
    from litdata.streaming.writer import BinaryWriter

    temp = _temp(directory)
    shutil.rmtree(temp, ignore_errors=True)
    writer = BinaryWriter(str(temp), chunk_bytes="64MB", item_loader=TokensLoader())
    index = 0
    for f in files:
        stream = shard_stream(f)[0].astype(np.int32)  # litdata's token items are int32 tensors
        for row in stream.reshape(-1, row_width(f)):
            writer.add_item(index, torch.from_numpy(row.copy()))
            index += 1
    writer.done()
    writer.merge()
    shutil.rmtree(directory, ignore_errors=True)
    os.replace(temp, directory)
    return sorted(directory.iterdir())


SplitWriter = Callable[[list[str], type, Path], list[Path]]
LAYOUTS: dict[str, tuple[SplitWriter, str]] = {
    "megatron": (write_megatron, "{split}_text_document"),
    "nanogpt": (write_nanogpt, "{split}.bin"),
    "litdata": (write_litdata, "{split}"),
}


def export_tokens(inputs: dict[str, StageInput], cfg: ExportConfig, out: Path) -> list[Path]:
    tokens = inputs[cfg.stage]
    vocab_size = int(tokens.info["vocab_size"])
    write, pattern = LAYOUTS[cfg.format]
    ledger = ShardLedger(out)
    with progress_bar(f"export {cfg.format}", len(cfg.splits)) as advance:
        for i, split in enumerate(cfg.splits):
            if not ledger.done(i):
                files = split_files(tokens, split)
                if not files:
                    raise FileNotFoundError(f"{cfg.stage} output has no {split} token shards")
                out.mkdir(parents=True, exist_ok=True)
                ledger.finish(i, write(files, token_dtype(vocab_size), out / pattern.format(split=split)))
            advance(1)
    if cfg.format != "nanogpt":
        return ledger.files()
    meta = out / "meta.pkl"  # nanoGPT's train.py reads the vocabulary size from it
    atomic_write_bytes(meta, pickle.dumps({"vocab_size": vocab_size}))
    return [*ledger.files(), meta]
