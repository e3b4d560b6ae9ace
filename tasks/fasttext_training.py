"""Deterministic fastText supervised training, for every classifier the pipeline trains itself.

fastText initializes its input matrix one block per training thread (a tenth of the matrix per
block) and leaves the rest as allocated. The `fasttext-numpy2` build allocates that matrix without
zeroing it, so with thread=1 about 90% of the embeddings start as whatever the heap held: the same
seed gave a different model on each call and, now and then, "Encountered NaN" (measured: 14
distinct predictions in 20 identical trainings; CI failed on it). So training runs in a fresh
forkserver process whose malloc zero-fills every allocation (glibc M_PERTURB), and saves the model
from there: the uninitialized part starts at 0, as upstream fastText intends, and the same data and
seed give the same bytes.
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
M_MMAP_THRESHOLD, M_PERTURB = -3, -6  # glibc's mallopt parameter numbers


@functools.cache
def zeroed_allocations() -> bool:
    """Make malloc hand out zeroed memory in this process (glibc only; False elsewhere).

    M_PERTURB=0xFF fills every allocation with 0x00 (the complement), wherever malloc finds the
    memory; the mmap threshold makes large blocks come straight from the kernel, zeroed anyway.
    """
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"))
        return bool(libc.mallopt(M_MMAP_THRESHOLD, 1 << 20)) and bool(libc.mallopt(M_PERTURB, 0xFF))
    except (OSError, AttributeError, TypeError):
        log.warning("mallopt unavailable: fastText training may not be reproducible on this platform")
        return False


def train_with_backoff(train_file: Path, lr: float, retries: int = 4, **params: Any):
    """Train on one thread (deterministic), halving the learning rate if the loss diverges."""
    import fasttext

    for attempt in range(retries + 1):
        try:
            return fasttext.train_supervised(str(train_file), lr=lr, thread=1, verbose=0, **params), lr
        except RuntimeError as err:
            if "NaN" not in str(err) or attempt == retries:
                raise RuntimeError(f"fastText training diverged at lr={lr} after {attempt + 1} tries: {err}") from err
            log.warning("fastText training diverged at lr=%s; retrying at lr=%s", lr, lr / 2)
            lr /= 2
    raise AssertionError("unreachable")


def _train_in_fresh_process(
    train_file: Path, out_path: Path, lr: float, retries: int, test_file: Path | None, params: dict[str, Any]
) -> dict[str, float]:
    zeroed_allocations()
    model, lr = train_with_backoff(train_file, lr, retries, **params)
    result: dict[str, float] = {"lr": lr}
    if test_file is not None:
        n, precision_at_1, _ = model.test(str(test_file))
        result.update(test_lines=n, test_precision_at_1=precision_at_1)
    save_model(model, out_path)
    return result


def train_and_save(
    train_file: Path, out_path: Path, lr: float, retries: int = 4, test_file: Path | None = None, **params: Any
) -> dict[str, float]:
    """Train (and test) a supervised model in a fresh process and save it to `out_path`.

    A fresh process, with zeroing malloc, because the allocator state of a long-lived flow process
    decided what the unzeroed matrix held: CI hit "Encountered NaN" on the second run in a process.
    Returns the learning rate used and, with `test_file`, the held-out line count and precision@1.
    """
    from tasks.stage import process_pool

    with process_pool(1) as pool:
        return pool.submit(_train_in_fresh_process, train_file, out_path, lr, retries, test_file, params).result()


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
