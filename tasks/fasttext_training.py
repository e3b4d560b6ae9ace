"""Deterministic fastText supervised training, for every classifier the pipeline trains itself.

fastText initializes its input matrix one block per training thread (a tenth of the matrix per
block) and leaves the rest as allocated. The `fasttext-numpy2` build allocates that matrix without
zeroing it, so with thread=1 about 90% of the embeddings start as whatever the heap held: on a
reused heap that is garbage, which gave a different model on every call with the same seed and,
now and then, "Encountered NaN" (measured: 14 distinct predictions in 20 identical trainings, and
26 NaN failures in 30 on another heap state). Memory that comes straight from mmap is zeroed by
the kernel, so lowering glibc's mmap threshold makes every large allocation zeroed: the
uninitialized part starts at 0 as upstream fastText intends, and training is reproducible again.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging
from pathlib import Path
from typing import Any

log = logging.getLogger("crawl2model.fasttext")
M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter number


@functools.cache
def zeroed_large_allocations() -> bool:
    """Serve allocations of 1 MiB and more from mmap (always zeroed). glibc only; False elsewhere."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        return bool(libc.mallopt(M_MMAP_THRESHOLD, 1 << 20))
    except (OSError, AttributeError, TypeError):
        log.warning("mallopt unavailable: fastText training may not be reproducible on this platform")
        return False


def train_supervised(train_file: Path, lr: float, retries: int = 4, **params: Any):
    """Train on one thread (deterministic), halving the learning rate if the loss diverges."""
    import fasttext

    zeroed_large_allocations()
    for attempt in range(retries + 1):
        try:
            return fasttext.train_supervised(str(train_file), lr=lr, thread=1, verbose=0, **params), lr
        except RuntimeError as err:
            if "NaN" not in str(err) or attempt == retries:
                raise RuntimeError(f"fastText training diverged at lr={lr} after {attempt + 1} tries: {err}") from err
            log.warning("fastText training diverged at lr=%s; retrying at lr=%s", lr, lr / 2)
            lr /= 2
    raise AssertionError("unreachable")
