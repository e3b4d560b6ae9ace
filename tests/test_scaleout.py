"""Scale-out through prefect-dask: per-shard Prefect tasks on a 2-worker local Dask cluster give the
same bytes as the in-process run; a failing shard fails its own task (error in the API) and the
rerun processes only that shard."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

from flows.pipeline import pipeline
from tasks.config import load_config
from tasks.plan import plan
from tests.conftest import TINY_PIPELINE

pytestmark = pytest.mark.slow

SETS = [*TINY_PIPELINE, "train.max_steps=5", "extract.workers=2", "filter.workers=2"]


def stage_files(workdir: Path) -> dict[str, list[tuple]]:
    out = {}
    for manifest in (workdir / "artifacts").glob("*/*/manifest.json"):
        data = json.loads(manifest.read_text())
        out[data["stage"]] = sorted((f["path"], f["sha256"], f["rows"] if "rows" in f else None) for f in data["files"])
    return out


def shard_runs(flow_run_id, expect: set[str], timeout_s: float = 60.0) -> dict[str, tuple[str, str]]:
    """Task run name -> (state type, state message), for the shard tasks of one flow run. Prefect
    records task runs from events, a moment after they end: wait (on a loaded machine, seconds)
    until the `expect` runs are in the API, each with its final state."""
    deadline = time.monotonic() + timeout_s
    while True:
        with get_client(sync_client=True) as client:
            runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
        found = {r.name: (r.state.type.value, r.state.message or "") for r in runs if " shard " in r.name}
        final = all(state in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED") for state, _ in found.values())
        if (expect <= set(found) and final) or time.monotonic() > deadline:
            return found
        time.sleep(0.5)


def test_dask_shard_tasks_match_the_local_run_and_a_failed_shard_resumes_alone(tmp_path):
    local_cfg = load_config(None, SETS).model_dump(mode="json")
    pipeline(config=local_cfg, workdir=str(tmp_path / "local"), until="dedup")
    reference = stage_files(tmp_path / "local")

    dask_cfg = load_config(None, [*SETS, "runner.kind=dask", "runner.workers=2"])
    work = tmp_path / "dask"
    # Something in the way of filter's shard 1 output: that shard (and only it) fails.
    filter_out = next(p.output_dir for p in plan(dask_cfg, work.resolve()) if p.stage == "filter")
    obstacle = filter_out / "docs" / "part-00001.parquet"
    (obstacle / "in-the-way").mkdir(parents=True)
    failed = pipeline(config=dask_cfg.model_dump(mode="json"), workdir=str(work), until="dedup", return_state=True)
    assert failed.is_failed()
    n_extract = len([p for p, *_ in reference["extract"] if p.startswith("docs/")])
    expected = {f"{stage} shard {i:05d}" for stage in ("extract", "filter") for i in range(n_extract)}
    first = shard_runs(failed.state_details.flow_run_id, expected)
    assert {f"extract shard {i:05d}" for i in range(n_extract)} <= set(first)
    assert all(first[f"extract shard {i:05d}"][0] == "COMPLETED" for i in range(n_extract))
    state, message = first["filter shard 00001"]
    assert state == "FAILED" and "Is a directory" in message, message  # the shard's own error, in the API
    done = sorted(p.name for p in (filter_out / "_state").glob("shard-*.json"))
    assert "shard-00001.json" not in done and len(done) == n_extract - 1  # the others finished

    shutil.rmtree(obstacle)
    resumed = pipeline(config=dask_cfg.model_dump(mode="json"), workdir=str(work), until="dedup", return_state=True)
    assert resumed.is_completed()
    second = shard_runs(resumed.state_details.flow_run_id, {"filter shard 00001"})
    assert {n for n in second if n.startswith("filter")} == {"filter shard 00001"}  # only the failed shard reran
    assert not any(n.startswith("extract") for n in second)  # extract was a cache hit
    assert stage_files(work) == reference  # same bytes as the in-process run, stage by stage


def test_ray_shard_tasks_give_the_local_runs_bytes(tmp_path):
    """runner.kind=ray: the same shard tasks on a local Ray instance of 2 CPUs (prefect-ray's task
    runner), stage by stage the same files as the in-process run."""
    local_cfg = load_config(None, SETS).model_dump(mode="json")
    pipeline(config=local_cfg, workdir=str(tmp_path / "local"), until="dedup")
    ray_cfg = load_config(None, [*SETS, "runner.kind=ray", "runner.workers=2"]).model_dump(mode="json")
    done = pipeline(config=ray_cfg, workdir=str(tmp_path / "ray"), until="dedup", return_state=True)
    assert done.is_completed()
    n_extract = len([p for p, *_ in stage_files(tmp_path / "local")["extract"] if p.startswith("docs/")])
    runs = shard_runs(done.state_details.flow_run_id, {f"extract shard {i:05d}" for i in range(n_extract)})
    assert all(runs[f"extract shard {i:05d}"][0] == "COMPLETED" for i in range(n_extract))  # Prefect tasks, on Ray
    assert stage_files(tmp_path / "ray") == stage_files(tmp_path / "local")
