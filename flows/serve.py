"""A Prefect server and worker on this machine, and the project's deployments registered on it.

`crawl2model serve` starts `prefect server start` bound to 127.0.0.1 (SQLite under PREFECT_HOME by
default, Postgres with `--database-url`), waits until its API answers, makes sure the `crawl2model`
process work pool exists, optionally registers `prefect.yaml`'s deployments, starts a worker for the
pool in the repository root (a process worker runs flows from its working directory), prints the UI
address, and stops both when interrupted. `crawl2model deploy` registers the deployments on the
server PREFECT_API_URL names.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil

ROOT = Path(__file__).resolve().parents[1]
POOL = "crawl2model"


def prefect_cli(*args: str) -> list[str]:
    """The `prefect` console script of this environment (not whichever is first on PATH)."""
    return [str(Path(sys.executable).with_name("prefect")), *args]


def api_url(port: int) -> str:
    return f"http://127.0.0.1:{port}/api"


def server_env(port: int, database_url: str | None = None) -> dict[str, str]:
    env = {**os.environ, "PREFECT_API_URL": api_url(port), "PREFECT_UI_API_URL": api_url(port),
           "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PREFECT_LOGGING_EXTRA_LOGGERS": "crawl2model"}  # fmt: skip
    if database_url:
        # e.g. postgresql+asyncpg://prefect:prefect@localhost:5432/prefect
        env["PREFECT_API_DATABASE_CONNECTION_URL"] = database_url
    return env


def wait_healthy(url: str, timeout_s: float, process: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"the Prefect server exited with {process.returncode} before answering")
        try:
            if httpx.get(f"{url}/health", timeout=2.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"no answer from {url}/health within {timeout_s:.0f} s")


def run_prefect(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(prefect_cli(*args), cwd=ROOT, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"prefect {' '.join(args)} failed:\n{(done.stdout + done.stderr)[-3000:]}")
    return done.stdout


def ensure_pool(env: dict[str, str]) -> None:
    run_prefect(env, "work-pool", "create", POOL, "--type", "process", "--overwrite")


def deploy(env: dict[str, str]) -> str:
    """Register every deployment in prefect.yaml (they run from the repository root)."""
    ensure_pool(env)
    return run_prefect(env, "--no-prompt", "deploy", "--all")


def _default_sigint() -> None:
    # A background job of a non-interactive shell starts with SIGINT ignored, and Python keeps it
    # ignored: the worker, which stops by sending itself SIGINT, would never stop. Restore it.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start_child(args: list[str], env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(args, cwd=ROOT, env=env, preexec_fn=_default_sigint)  # noqa: PLW1509 - signals only


def stop_children(procs: list[subprocess.Popen], timeout_s: float = 8.0) -> None:
    """SIGTERM each (the worker forwards it as Ctrl-C to itself), wait, then kill what is left, the flow
    runs a worker started included."""
    from flows.reaper import reap

    running = [p for p in procs if p.poll() is None]
    descendants = []
    for proc in running:
        try:
            descendants += psutil.Process(proc.pid).children(recursive=True)
        except psutil.Error:
            pass
        proc.terminate()
    deadline = time.monotonic() + timeout_s
    for proc in running:
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    reap(descendants)


def serve(
    port: int, database_url: str | None, register: bool, startup_timeout_s: float, workdir: Path | None = None,
    log=print,
) -> None:  # fmt: skip
    """Server, pool, deployments, worker; runs until SIGTERM or Ctrl-C, then stops them (exit 0).

    `workdir` (or CRAWL2MODEL_WORKDIR) is where runs started from the UI or `prefect deployment run`
    write, unless a run names its own `workdir` parameter."""
    env = server_env(port, database_url)
    if workdir is not None:
        env["CRAWL2MODEL_WORKDIR"] = str(workdir.resolve())
    server = start_child(prefect_cli("server", "start", "--host", "127.0.0.1", "--port", str(port)), env)
    worker = None
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        wait_healthy(env["PREFECT_API_URL"], startup_timeout_s, server)
        ensure_pool(env)
        if register:
            deploy(env)
        worker = start_child(prefect_cli("worker", "start", "--pool", POOL, "--type", "process"), env)
        where = env.get("CRAWL2MODEL_WORKDIR", "each run's workdir parameter, else ./work")
        log(f"Prefect UI: http://127.0.0.1:{port}  (API {env['PREFECT_API_URL']}; worker on pool {POOL!r}; "
            f"runs write to {where})")  # fmt: skip
        while not stopping and server.poll() is None and worker.poll() is None:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        stop_children([p for p in (worker, server) if p is not None])
