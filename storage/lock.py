"""One run per workdir: a lock file naming the owning process; a dead owner's lock is taken over."""

from __future__ import annotations

import json
import logging
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from storage.errors import Crawl2ModelError

log = logging.getLogger("crawl2model")


class WorkdirBusy(Crawl2ModelError, RuntimeError):
    """Another live run holds the workdir's lock (its PID and host are named)."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _try_create(path: Path, owner: dict) -> bool:
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as f:
        json.dump(owner, f)
    return True


def busy_reason(workdir: Path) -> str | None:
    """Why the workdir cannot be locked now (a live owner, or another host), or None when it can
    (no lock, or a stale one a new run will take over). The CLI asks before Prefect starts."""
    path = workdir / ".lock"
    try:
        held = json.loads(path.read_text() or "{}")
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        held = {}
    pid, host = held.get("pid"), held.get("host")
    if host == socket.gethostname() and isinstance(pid, int) and _alive(pid):
        return (f"workdir {workdir} is in use by process {pid} (lock {path}); wait for it to finish or use "
                "another --workdir")  # fmt: skip
    if host not in (None, socket.gethostname()):
        return f"workdir {workdir} is locked by host {host} ({path}); remove it if that run is gone"
    return None


@contextmanager
def workdir_lock(workdir: Path) -> Iterator[None]:
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / ".lock"
    owner = {"pid": os.getpid(), "host": socket.gethostname()}
    if not _try_create(path, owner):
        if reason := busy_reason(workdir):
            raise WorkdirBusy(reason)
        log.warning("taking over stale lock %s", path)
        path.unlink(missing_ok=True)
        if not _try_create(path, owner):
            raise WorkdirBusy(f"workdir {workdir} was locked by another run at the same moment")
    try:
        yield
    finally:
        path.unlink(missing_ok=True)
