"""Adding a stage is one module plus one registry line: a toy stage, registered as a plugin, runs in
the DAG between dedup and mix with a fingerprint, a cache, catalog rows and a line in `status`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from storage.catalog import Catalog
from tasks.registry import BUILTIN_STAGES, with_plugins
from tests.conftest import TINY_PIPELINE

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]

TOY_STAGE = '''
"""A pass-through stage that really copies dedup's document shards and counts their rows."""
import shutil
from pathlib import Path

import pyarrow.parquet as pq

from storage.section import Section
from tasks.stage import StageOutcome, StageSpec


class ToyConfig(Section):
    note: str = "copy"


def run(inputs, cfg, out):
    rows = 0
    for src in inputs["dedup"].files("docs"):
        (out / "docs").mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, out / "docs" / Path(src).name)
        rows += pq.read_metadata(src).num_rows
    outcome = StageOutcome(rows, rows, 0)
    outcome.metric("toy_rows", rows)
    return outcome


SPEC = StageSpec("toy", ("dedup",), ToyConfig, "1", run, after="dedup")
'''


def _cli(work: Path, plugin_dir: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "CRAWL2MODEL_STAGES": "toy_stage", "PYTHONPATH": f"{plugin_dir}{os.pathsep}{ROOT}"}
    cmd = [sys.executable, "-m", "flows.cli", *args, "--workdir", str(work)]
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)


def _run(work: Path, plugin_dir: Path, *sets: str) -> None:
    settings = [a for s in [*TINY_PIPELINE, "train.max_steps=2", *sets] for a in ("--set", s)]
    done = _cli(work, plugin_dir, "run", "--until", "mix", *settings)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


def _toy_runs(work: Path) -> list[tuple]:
    _, rows = Catalog(work).query(
        "select r.run_id, s.fingerprint, s.cache_hit, s.docs_in, s.docs_out from stage_runs s "
        "join runs r using (run_id) where s.stage = 'toy' order by r.started_at"
    )
    return rows


def test_a_plugin_stage_runs_in_the_dag_cached_fingerprinted_and_catalogued(tmp_path):
    (tmp_path / "toy_stage.py").write_text(TOY_STAGE)
    work = tmp_path / "work"
    _run(work, tmp_path)
    [(_, fingerprint, cached, docs_in, docs_out)] = _toy_runs(work)
    assert not cached and docs_in == docs_out > 0
    _, [(dedup_out,)] = Catalog(work).query("select docs_out from stage_runs where stage = 'dedup'")
    assert docs_in == dedup_out  # it read dedup's output, as declared
    copied = sorted(p.name for p in (work / "artifacts" / "toy" / fingerprint / "docs").glob("*.parquet"))
    assert copied and len(copied) == len(list((work / "artifacts" / "dedup").glob("*/docs/*.parquet")))
    status = _cli(work, tmp_path, "status")
    assert status.returncode == 0 and "toy" in status.stdout and fingerprint[:12] in status.stdout

    _run(work, tmp_path)  # unchanged: a cache hit with the same fingerprint
    assert _toy_runs(work)[-1][1:3] == (fingerprint, True)
    _run(work, tmp_path, "toy.note=changed")  # its own config is in its fingerprint
    assert _toy_runs(work)[-1][1] != fingerprint and not _toy_runs(work)[-1][2]
    bad = _cli(work, tmp_path, "run", "--set", "toy.nonsense=1")
    assert bad.returncode == 2 and "toy.nonsense" in bad.stderr


def test_a_plugin_must_follow_a_known_stage_and_read_earlier_ones(tmp_path, monkeypatch):
    (tmp_path / "late_stage.py").write_text(TOY_STAGE.replace('("dedup",), ToyConfig', '("tokenize",), ToyConfig'))
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ValueError, match="do not run before it"):
        with_plugins(BUILTIN_STAGES, ["late_stage"])
