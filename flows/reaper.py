"""Nothing outlives a run: a watcher that ends what a killed CLI leaves behind.

`crawl2model run` starts Prefect's temporary server (uvicorn), process pools (forkserver and its
workers) and, for multi-GPU training, torchrun. A SIGKILL of the CLI (an OOM killer, a scheduler, the
kill tests) gives it no chance to stop them, and they would run on as orphans holding a port. The
watcher is a small process of its own session (so a kill of the CLI's process group spares it):
every 0.2 s it notes the CLI's descendants; once the CLI is gone, it terminates each one still alive
(the same process: pid and start time), waits up to 3 s, kills what is left, and exits.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import psutil

POLL_S = 0.2
GRACE_S = 3.0


def start_reaper(pid: int | None = None) -> subprocess.Popen:
    """Watch process `pid` (this one by default) from a detached process."""
    pid = os.getpid() if pid is None else pid
    return subprocess.Popen([sys.executable, "-m", "flows.reaper", str(pid)], start_new_session=True,
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip


def _alive(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def watch(pid: int) -> None:
    try:
        parent = psutil.Process(pid)
    except psutil.Error:
        return
    me = os.getpid()
    seen: dict[int, psutil.Process] = {}
    while _alive(parent):
        try:
            for child in parent.children(recursive=True):
                if child.pid != me:
                    seen.setdefault(child.pid, child)  # psutil.Process keeps the start time: no pid reuse
        except psutil.Error:
            pass
        time.sleep(POLL_S)
    reap(list(seen.values()))


def reap(processes: list[psutil.Process]) -> None:
    """Terminate, wait, kill: the processes still alive and whatever they started since."""
    alive = [p for p in processes if _alive(p)]
    for proc in list(alive):
        try:
            alive += [c for c in proc.children(recursive=True) if c not in alive]
        except psutil.Error:
            pass
    for proc in alive:
        try:
            proc.terminate()
        except psutil.Error:
            pass
    _, still = psutil.wait_procs(alive, timeout=GRACE_S)
    for proc in still:
        try:
            proc.kill()
        except psutil.Error:
            pass


if __name__ == "__main__":
    watch(int(sys.argv[1]))
