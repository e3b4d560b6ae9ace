"""tokenize: train a SentencePiece BPE on the mixed documents, encode, pack into fixed-length rows.

Rows hold `seq_len + 1` tokens (inputs and shifted targets), documents separated by EOS, with the
ids of the documents each row covers so every token traces back to its source. Train/val split by
document hash; validation documents are never repeated.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pyarrow as pa
import sentencepiece as spm

from storage.fingerprint import unit_interval
from storage.progress import progress_bar
from storage.shards import iter_rows, write_parquet
from tasks import STAGE_VERSIONS
from tasks.config import TokenizeConfig
from tasks.pii import PLACEHOLDERS
from tasks.stage import StageInput, StageOutcome

VERSION = STAGE_VERSIONS["tokenize"]
STAGE = "tokenize"
UNK_ID, EOS_ID, BOS_ID = 0, 1, 2
ROW_SCHEMA = pa.schema(
    [
        ("tokens", pa.list_(pa.int32())),
        ("doc_ids", pa.list_(pa.string())),
        ("first_doc_offset", pa.int32()),
    ]
)


def train_tokenizer(docs: list[dict[str, Any]], cfg: TokenizeConfig, out: Path) -> Path:
    ranked = sorted(docs, key=lambda d: unit_interval(cfg.seed, "tok-sample", d["doc_id"]))[: cfg.sample_docs]
    corpus = out / "_state" / "tokenizer-corpus.txt"
    corpus.parent.mkdir(parents=True, exist_ok=True)
    with open(corpus, "w") as f:
        for doc in ranked:
            for line in doc["text"].splitlines():
                if line.strip():
                    f.write(line.strip() + "\n")
    prefix = out / "_state" / "tokenizer"
    spm.SentencePieceTrainer.train(
        input=str(corpus),
        model_prefix=str(prefix),
        model_type="bpe",
        vocab_size=cfg.vocab_size,
        byte_fallback=True,
        character_coverage=0.9995,
        unk_id=UNK_ID,
        eos_id=EOS_ID,
        bos_id=BOS_ID,
        pad_id=-1,
        user_defined_symbols=list(PLACEHOLDERS.values()),
        max_sentence_length=1 << 15,
        num_threads=1,  # one thread: the same corpus gives the same model
        minloglevel=2,
        split_digits=True,
        allow_whitespace_only_pieces=True,
    )
    model = out / "tokenizer.model"
    os.replace(f"{prefix}.model", model)
    return model


def pack(token_lists: list[tuple[str, list[int]]], seq_len: int) -> list[dict[str, Any]]:
    """Concatenate documents (each followed by EOS) and cut into rows of seq_len + 1 tokens."""
    rows, buf, ids = [], [], []
    first_offset = 0
    for doc_id, tokens in token_lists:
        pos = 0
        tokens = [*tokens, EOS_ID]
        while pos < len(tokens):
            if not buf:
                first_offset = pos
                ids = []
            take = tokens[pos : pos + seq_len + 1 - len(buf)]
            buf += take
            ids.append(doc_id)
            pos += len(take)
            if len(buf) == seq_len + 1:
                rows.append({"tokens": buf, "doc_ids": ids, "first_doc_offset": first_offset})
                buf = []
    return rows  # the last partial row is dropped: fixed-length rows only


def run(inputs: dict[str, StageInput], cfg: TokenizeConfig, out: Path) -> StageOutcome:
    docs = list(iter_rows(inputs["mix"].files("docs"), ["doc_id", "text", "repeats", "domain"]))
    model_path = out / "tokenizer.model"
    if not model_path.exists():
        train_tokenizer(docs, cfg, out)
    sp = spm.SentencePieceProcessor(model_file=str(model_path))
    splits: dict[str, list[tuple[float, str, int]]] = {"train": [], "val": []}
    for i, doc in enumerate(docs):
        split = "val" if unit_interval(cfg.seed, "split", doc["doc_id"]) < cfg.val_fraction else "train"
        for copy in range(doc["repeats"] if split == "train" else 1):
            splits[split].append((unit_interval(cfg.seed, "order", doc["doc_id"], copy), doc["doc_id"], i))
    outcome = StageOutcome(docs_in=len(docs), docs_out=len(docs), docs_removed=0)
    encoded: dict[int, list[int]] = {}
    with progress_bar("tokenize: encode", total=len(docs)) as advance:
        batch = 256
        for start in range(0, len(docs), batch):
            chunk = docs[start : start + batch]
            for j, ids in enumerate(sp.encode([d["text"] for d in chunk], num_threads=os.cpu_count() or 1)):
                encoded[start + j] = ids
            advance(len(chunk))
    for split, entries in splits.items():
        entries.sort()
        rows = pack([(doc_id, encoded[i]) for _, doc_id, i in entries], cfg.seq_len)
        for shard, start in enumerate(range(0, max(len(rows), 1), cfg.rows_per_shard)):
            table = pa.Table.from_pylist(rows[start : start + cfg.rows_per_shard], schema=ROW_SCHEMA)
            write_parquet(table, out / "tokens" / f"{split}-{shard:05d}.parquet", row_group_size=1024)
        n_docs = len({doc_id for _, doc_id, _ in entries})
        outcome.metric(f"{split}_rows", len(rows))
        outcome.metric(f"{split}_tokens", len(rows) * (cfg.seq_len + 1))
        outcome.metric(f"{split}_docs", n_docs)
        outcome.metric(f"{split}_copies", len(entries))
    outcome.metric("vocab_size", sp.get_piece_size())
    outcome.info = {"seq_len": cfg.seq_len, "vocab_size": sp.get_piece_size(), "eos_id": EOS_ID}
    return outcome
