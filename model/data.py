"""Token rows from the tokenize stage's Parquet shards, streamed by row group.

`TokenLoader` never holds more than a few row groups in memory. Each epoch it shuffles the row
groups, then the rows inside windows of a few row groups (seeded by epoch), and deals every global
batch out to the data-parallel ranks, so a 2-process run sees exactly the rows of a 1-process run
with twice the batch. Its position (epoch, batch) is part of the checkpoint.
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pyarrow.parquet as pq
import torch

from model.chat import IGNORE

# The column of chat rows (sft): 1 where the token is trained (the assistant's), 0 elsewhere.
LOSS_MASK = "loss_mask"


def _list_column(column) -> np.ndarray:
    col = column.combine_chunks()
    if not len(col):  # an empty split's shard
        return np.empty((0, 0), dtype=np.int64)
    return np.asarray(col.flatten().to_numpy(zero_copy_only=False), dtype=np.int64).reshape(-1, len(col[0]))


def _row_group_array(pf: pq.ParquetFile, index: int) -> np.ndarray:
    """(rows, seq_len + 1) tokens; with a `loss_mask` column (chat rows) (rows, 2, seq_len + 1)."""
    columns = [c for c in ("tokens", LOSS_MASK) if c in pf.schema_arrow.names]
    table = pf.read_row_group(index, columns=columns)
    arrays = [_list_column(table.column(c)) for c in columns]
    return arrays[0] if len(arrays) == 1 else np.stack(arrays, axis=1)


def inputs_and_targets(batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch of rows as the model's inputs and its shifted targets; a masked row's untrained
    positions (the prompt, the padding) become targets the loss ignores."""
    if batch.dim() == 2:
        return batch[:, :-1], batch[:, 1:]
    tokens, mask = batch[:, 0], batch[:, 1]
    return tokens[:, :-1], tokens[:, 1:].masked_fill(mask[:, 1:] == 0, IGNORE)


def load_rows(paths: list[str], max_rows: int | None = None) -> torch.Tensor:
    """(rows, seq_len + 1) int64 tensor (chat rows: (rows, 2, seq_len + 1)) of the first `max_rows` rows
    (for bounded evaluation sets)."""
    parts, n = [], 0
    for p in paths:
        pf = pq.ParquetFile(p)
        for rg in range(pf.num_row_groups):
            parts.append(_row_group_array(pf, rg))
            n += len(parts[-1])
            if max_rows is not None and n >= max_rows:
                break
        if max_rows is not None and n >= max_rows:
            break
    parts = [p for p in parts if len(p)]
    if not parts:
        raise ValueError(f"no token rows in {paths}")
    rows = np.concatenate(parts)
    return torch.from_numpy(rows[:max_rows] if max_rows else rows)


def iter_row_groups(paths: list[str]):
    """Yield each row group as a (rows, seq_len + 1) int64 array, one at a time."""
    for p in paths:
        pf = pq.ParquetFile(p)
        for rg in range(pf.num_row_groups):
            yield _row_group_array(pf, rg)


class TokenLoader:
    def __init__(
        self,
        paths: list[str],
        batch_size: int,
        seed: int,
        rank: int = 0,
        world_size: int = 1,
        window: int = 4,
        cache_groups: int = 8,
    ):
        self.files = [pq.ParquetFile(p) for p in paths]
        # (file index, row group index, rows) for every row group, from Parquet metadata alone.
        self.groups = [
            (f, g, pf.metadata.row_group(g).num_rows)
            for f, pf in enumerate(self.files)
            for g in range(pf.num_row_groups)
        ]
        self.n_rows = sum(n for _, _, n in self.groups)
        if self.n_rows == 0:
            raise ValueError(f"no token rows in {paths}")
        self.global_batch = batch_size * world_size
        if self.n_rows < self.global_batch:
            raise ValueError(f"{self.n_rows} token rows cannot fill one global batch of {self.global_batch}")
        self.batch_size, self.seed, self.rank, self.window = batch_size, seed, rank, window
        self.batches_per_epoch = self.n_rows // self.global_batch
        self.epoch, self.batch = 0, 0
        self._order: np.ndarray | None = None
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self._cache_groups = cache_groups

    def _epoch_order(self) -> np.ndarray:
        """(group, row) pairs of this epoch, in reading order."""
        rng = np.random.default_rng([self.seed, self.epoch])
        group_order = rng.permutation(len(self.groups))
        pairs = []
        for start in range(0, len(group_order), self.window):
            window = group_order[start : start + self.window]
            rows = np.concatenate(
                [np.stack([np.full(self.groups[g][2], g), np.arange(self.groups[g][2])], 1) for g in window]
            )
            pairs.append(rows[rng.permutation(len(rows))])
        return np.concatenate(pairs)

    def _group(self, g: int) -> np.ndarray:
        if g in self._cache:
            self._cache.move_to_end(g)
            return self._cache[g]
        f, index, _ = self.groups[g]
        self._cache[g] = _row_group_array(self.files[f], index)
        if len(self._cache) > self._cache_groups:
            self._cache.popitem(last=False)
        return self._cache[g]

    def next(self) -> torch.Tensor:
        if self.batch >= self.batches_per_epoch:
            self.epoch, self.batch, self._order = self.epoch + 1, 0, None
        if self._order is None:
            self._order = self._epoch_order()
        start = self.batch * self.global_batch + self.rank * self.batch_size
        pairs = self._order[start : start + self.batch_size]
        self.batch += 1
        return torch.from_numpy(np.stack([self._group(int(g))[int(r)] for g, r in pairs]))

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "batch": self.batch}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.epoch, self.batch, self._order = state["epoch"], state["batch"], None
