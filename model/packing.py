"""Packing token lists into fixed-length rows, the one layout the trainer and the evaluator read.

Ids 0, 1, 2 are the tokenizer's unk, eos and bos (the tokenize stage trains SentencePiece with them).
"""

from __future__ import annotations

from typing import Any

UNK_ID, EOS_ID, BOS_ID = 0, 1, 2


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
