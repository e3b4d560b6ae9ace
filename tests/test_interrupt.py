"""Ctrl-C in a terminal: SIGINT to the whole process group, as a terminal sends it, stops a run within
10 s with one line and exit code 130, leaves nothing running, and a rerun resumes from what finished."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from tests.conftest import TINY_PIPELINE

ROOT = Path(__file__).resolve().parents[1]


def _group_members(pgid: int) -> list[psutil.Process]:
    members = []
    for proc in psutil.process_iter():
        try:
            if os.getpgid(proc.pid) == pgid:
                members.append(proc)
        except (ProcessLookupError, psutil.Error):
            pass
    return members


@pytest.mark.slow
def test_ctrl_c_to_the_process_group_stops_the_run_with_one_line(tmp_path):
    work = tmp_path / "work"
    sets = [a for s in [*TINY_PIPELINE, "train.max_steps=20000", "train.checkpoint_every=50"] for a in ("--set", s)]
    env = {**os.environ, "COLUMNS": "200", "PREFECT_HOME": str(tmp_path / "prefect")}
    run = subprocess.Popen([sys.executable, "-m", "flows.cli", "run", "--workdir", str(work), *sets], cwd=ROOT,
                           env=env, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True)  # fmt: skip
    deadline = time.monotonic() + 300
    while not list(work.glob("artifacts/train/*/checkpoints/step-*.pt")):  # training, with a checkpoint written
        assert run.poll() is None and time.monotonic() < deadline, run.communicate()
        time.sleep(0.5)
    members = _group_members(run.pid)
    assert len(members) > 1  # the CLI and what it started: the temporary server, at least
    os.killpg(run.pid, signal.SIGINT)
    sent = time.monotonic()
    out, err = run.communicate(timeout=30)
    assert time.monotonic() - sent < 10 and run.returncode == 130, err[-3000:]
    assert "interrupted: finished shards are kept, rerun to resume" in err
    assert "Traceback" not in out + err and "Crash detected" not in out + err, err[-3000:]
    _, alive = psutil.wait_procs(members, timeout=5)
    assert not [p for p in alive if p.status() != psutil.STATUS_ZOMBIE], alive
    # Finished stages were kept: the rerun takes them from the cache.
    rerun = subprocess.run([sys.executable, "-m", "flows.cli", "run", "--workdir", str(work), "--until", "tokenize",
                            *sets], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert rerun.stdout.count("cached") >= 7, rerun.stdout
