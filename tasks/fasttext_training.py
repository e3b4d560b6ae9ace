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
import os
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


def save_model(model: Any, path: Path, probe_bytes: int = 1 << 20) -> None:
    """Save atomically. fastText's C++ writer ignores write errors, so on a full disk it leaves a
    silently truncated model (measured: a cut model still loads). A disk that cannot take another
    MiB right after the save is taken to mean that happened: the save fails with ENOSPC instead."""
    tmp = path.with_name(f".{path.name}.tmp")
    model.save_model(str(tmp))
    probe = path.with_name(f".{path.name}.space-probe")
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, b"\0" * probe_bytes)
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        raise OSError(err.errno, f"{err.strerror} (while saving {path.name})", str(path)) from err
    finally:
        probe.unlink(missing_ok=True)
    tmp.replace(path)
