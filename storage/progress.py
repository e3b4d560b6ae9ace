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
