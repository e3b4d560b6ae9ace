"""No process outlives a killed run: SIGKILL the CLI during extract and during train; within 10 s
nothing it started is left (the temporary Prefect server, pool workers) and the server's port is free."""

from __future__ import annotations

import os
import select
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from tests.conftest import TINY_PIPELINE

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]


def _start(work: Path, *sets: str) -> subprocess.Popen:
    args = [a for s in [*TINY_PIPELINE, *sets] for a in ("--set", s)]
    cmd = [sys.executable, "-m", "flows.cli", "run", "--workdir", str(work), *args]
    env = {**os.environ, "COLUMNS": "200", "PREFECT_LOGGING_LEVEL": "INFO"}  # the stage lines are INFO logs
    return subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True, env=env)  # fmt: skip


def _wait_for(proc: subprocess.Popen, marker: str, timeout_s: float = 300) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 1.0)
        if ready and marker in proc.stdout.readline():
            return
        assert proc.poll() is None, "the run ended before reaching " + marker
    raise AssertionError(f"no {marker!r} within {timeout_s} s")


def _listening_ports(procs: list[psutil.Process]) -> set[int]:
    ports = set()
    for p in procs:
        try:
            ports |= {c.laddr.port for c in p.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN}
        except psutil.Error:
            pass
    return ports


def _gone(proc: psutil.Process) -> bool:
    try:
        return not proc.is_running() or proc.status() == psutil.STATUS_ZOMBIE
    except psutil.Error:
        return True


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@pytest.mark.parametrize(("marker", "sets"), [
    ("extract: running", ["acquire.sample_pages=2000", "acquire.planted_per_case=20", "extract.workers=2"]),
    ("train: step", ["train.max_steps=100000", "train.log_every=5"]),
])  # fmt: skip
def test_sigkill_of_the_cli_leaves_no_process_and_frees_the_port(tmp_path, marker, sets):
    proc = _start(tmp_path / "work", *sets)
    try:
        _wait_for(proc, marker)
        time.sleep(0.5)  # inside the stage's work: pools started, the server answering
        cli = psutil.Process(proc.pid)
        started = [p for p in cli.children(recursive=True) if "flows.reaper" not in " ".join(p.cmdline())]
        ports = _listening_ports(started)
        assert started and ports, "expected a temporary server and workers under the CLI"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not all(_gone(p) for p in started):
            time.sleep(0.2)
        left = [f"{p.pid} {' '.join(p.cmdline())[:120]}" for p in started if not _gone(p)]
        assert not left, left
        assert all(_port_free(port) for port in ports), ports
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
