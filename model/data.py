"""Token rows from the tokenize stage's Parquet shards."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import torch


def load_rows(paths: list[str], max_rows: int | None = None) -> torch.Tensor:
    """(rows, seq_len + 1) int64 tensor. Rows are fixed-length, so the list column flattens."""
    parts = []
    n = 0
    for p in paths:
        pf = pq.ParquetFile(p)
        for batch in pf.iter_batches(batch_size=4096, columns=["tokens"]):
            col = batch.column(0)
            width = len(col[0]) if len(col) else 0
            arr = np.asarray(col.flatten().to_numpy(zero_copy_only=False), dtype=np.int64).reshape(-1, width)
            parts.append(arr)
            n += len(arr)
            if max_rows is not None and n >= max_rows:
                break
        if max_rows is not None and n >= max_rows:
            break
    if not parts:
        raise ValueError(f"no token rows in {paths}")
    rows = np.concatenate(parts)
    return torch.from_numpy(rows[:max_rows] if max_rows else rows)


class BatchSampler:
    """Seeded epoch-wise shuffling; the position (epoch, index) is part of the checkpoint."""

    def __init__(self, n_rows: int, batch_size: int, seed: int):
        self.n_rows, self.batch_size, self.seed = n_rows, batch_size, seed
        self.epoch, self.index = 0, 0
        self._perm = self._permutation()

    def _permutation(self) -> torch.Tensor:
        g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        return torch.randperm(self.n_rows, generator=g)

    def next(self) -> torch.Tensor:
        if self.index + self.batch_size > self.n_rows:
            self.epoch += 1
            self.index = 0
            self._perm = self._permutation()
        batch = self._perm[self.index : self.index + self.batch_size]
        self.index += self.batch_size
        return batch

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "index": self.index}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.epoch, self.index = state["epoch"], state["index"]
        self._perm = self._permutation()
