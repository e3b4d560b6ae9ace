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


def serve(port: int, database_url: str | None, register: bool, startup_timeout_s: float, log=print) -> None:
    env = server_env(port, database_url)
    server = subprocess.Popen(prefect_cli("server", "start", "--host", "127.0.0.1", "--port", str(port)),
                              cwd=ROOT, env=env)  # fmt: skip
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
        worker = subprocess.Popen(prefect_cli("worker", "start", "--pool", POOL, "--type", "process"), cwd=ROOT,
                                  env=env)  # fmt: skip
        log(f"Prefect UI: http://127.0.0.1:{port}  (API {env['PREFECT_API_URL']}; worker on pool {POOL!r})")
        while not stopping and server.poll() is None and worker.poll() is None:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        for proc in (worker, server):
            if proc is not None and proc.poll() is None:
                proc.terminate()
        for proc in (worker, server):
            if proc is not None:
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
