"""SIGKILL each stage at seeded random points, rerun, and demand the uninterrupted run's exact bytes.

For extract, filter, dedup, mix, tokenize and train: the stage runs as its own process group (pool
workers and the training worker included), is killed with SIGKILL a seeded fraction of the way
into its work, and is run again in the same directory. Checked: while killed, no manifest (so
nothing is registered in the catalog); after the rerun, every output file is byte-identical to an
uninterrupted run's, and documents in = kept + removed.
"""

from __future__ import annotations

import hashlib
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from flows.cli import app
from tasks.config import load_config
from tasks.plan import plan
from tasks.stage import load_manifest
from tests.conftest import TINY_PIPELINE

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]
SETTINGS = [*TINY_PIPELINE, "train.max_steps=160", "train.checkpoint_every=20"]
KILLED_STAGES = ("extract", "filter", "dedup", "mix", "tokenize", "train")
KILLS_PER_STAGE = 2


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("kill") / "work"
    args = ["run", "--workdir", str(work), "--until", "train", *[a for s in SETTINGS for a in ("--set", s)]]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output + repr(result.exception)
    return work


def _start(work: Path, out: Path, stage: str) -> subprocess.Popen:
    cmd = [sys.executable, str(ROOT / "tests" / "stage_subprocess.py"), str(work), str(out), stage, *SETTINGS]
    return subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            start_new_session=True)  # fmt: skip


def _run_to_end(work: Path, out: Path, stage: str) -> float:
    proc = _start(work, out, stage)
    assert proc.stdout.readline().strip() == "START"
    started = time.monotonic()
    assert proc.wait(timeout=600) == 0
    return time.monotonic() - started


def _kill_after(work: Path, out: Path, stage: str, seconds: float) -> None:
    proc = _start(work, out, stage)
    assert proc.stdout.readline().strip() == "START"  # imports done: the kill lands in the stage's work
    time.sleep(seconds)
    os.killpg(proc.pid, signal.SIGKILL)  # the process and its pool / training workers, like an OOM kill
    proc.wait(timeout=60)


def _checkpoint_digest(path: Path) -> str:
    """A training checkpoint's content without its wall-clock measurements (tokens/s differs run to run).

    Hashed value by value: torch.save's bytes also depend on how tensors share storage in memory.
    """
    import torch

    h = hashlib.sha256()

    def visit(value: object) -> None:
        if isinstance(value, dict):
            for key in sorted(value, key=str):
                if "per_s" not in str(key):
                    h.update(repr(key).encode())
                    visit(value[key])
        elif isinstance(value, list | tuple):
            for item in value:
                visit(item)
        elif isinstance(value, torch.Tensor):
            h.update(f"{value.dtype}{tuple(value.shape)}".encode())
            h.update(value.detach().cpu().reshape(-1).contiguous().view(torch.uint8).numpy().tobytes())
        else:
            h.update(repr(value).encode())

    visit(torch.load(path, weights_only=True))
    return h.hexdigest()


def _digests(out: Path) -> dict[str, str]:
    return {
        str(p.relative_to(out)): _checkpoint_digest(p) if "checkpoints" in p.parts else _file_digest(p)
        for p in sorted(out.rglob("*"))
        if p.is_file() and "_state" not in p.parts and p.name != "manifest.json" and not p.name.startswith(".")
    }


def _file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("stage", KILLED_STAGES)
def test_a_killed_stage_resumes_to_the_same_bytes(workdir, tmp_path, stage):
    planned = {p.stage: p for p in plan(load_config(None, SETTINGS), workdir)}
    reference = planned[stage].output_dir
    expected = _digests(reference)
    assert expected
    # An uninterrupted run in its own process first: the same bytes, and how long the work takes.
    seconds = _run_to_end(workdir, tmp_path / "whole", stage)
    assert _digests(tmp_path / "whole") == expected
    rng = random.Random(f"kill-{stage}")
    for k in range(KILLS_PER_STAGE):
        out = tmp_path / f"killed-{k}"
        _kill_after(workdir, out, stage, rng.uniform(0.1, 0.9) * seconds)
        if (manifest := load_manifest(out)) is not None:  # the kill came after the stage finished
            assert {f["path"] for f in manifest["files"]} == set(expected)
        _run_to_end(workdir, out, stage)
        assert _digests(out) == expected, f"{stage}: kill {k} at {seconds:.1f}s scale"
        counts = load_manifest(out)["counts"]
        if counts["docs_in"] is not None:
            assert counts["docs_in"] == counts["docs_out"] + counts["docs_removed"]
        assert counts == load_manifest(reference)["counts"]
