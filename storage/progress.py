"""Progress reporting for long work: a rich bar on a terminal, periodic log lines otherwise."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

log = logging.getLogger("crawl2model")


@contextmanager
def progress_bar(label: str, total: int, completed: int = 0) -> Iterator[Callable[[int], None]]:
    if sys.stderr.isatty():
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        with Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            transient=False,
        ) as bar:
            task_id = bar.add_task(label, total=total, completed=completed)
            yield lambda n=1: bar.advance(task_id, n)
        return
    state = {"done": completed, "last": 0.0}

    def advance(n: int = 1) -> None:
        state["done"] += n
        now = time.monotonic()
        if now - state["last"] > 5 or state["done"] >= total:
            state["last"] = now
            log.info("%s: %d/%d", label, state["done"], total)

    yield advance


@contextmanager
def byte_progress(label: str, total_files: int) -> Iterator[tuple[Callable[[int], None], Callable[[], None]]]:
    """Yield (add_bytes, file_done): thread-safe; shows bytes, rate and files done."""
    import threading

    lock = threading.Lock()
    state = {"bytes": 0, "files": 0, "last": 0.0, "start": time.monotonic()}
    if sys.stderr.isatty():
        from rich.progress import DownloadColumn, Progress, TextColumn, TransferSpeedColumn

        with Progress(TextColumn("[bold]{task.description}"), DownloadColumn(), TransferSpeedColumn()) as bar:
            task_id = bar.add_task(label, total=None)

            def add_bytes(n: int) -> None:
                bar.advance(task_id, n)

            def file_done() -> None:
                with lock:
                    state["files"] += 1
                    bar.update(task_id, description=f"{label} {state['files']}/{total_files} files")

            yield add_bytes, file_done
        return

    def report(force: bool = False) -> None:
        now = time.monotonic()
        if force or now - state["last"] > 5:
            state["last"] = now
            rate = state["bytes"] / max(now - state["start"], 1e-9) / 1e6
            mb = state["bytes"] / 1e6
            log.info("%s: %d/%d files, %.1f MB, %.1f MB/s", label, state["files"], total_files, mb, rate)

    def add_bytes_logged(n: int) -> None:
        with lock:
            state["bytes"] += n
            report()

    def file_done_logged() -> None:
        with lock:
            state["files"] += 1
            report(force=True)

    yield add_bytes_logged, file_done_logged
