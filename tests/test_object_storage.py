"""Artifacts on object storage (`storage.artifacts`), against an S3-compatible server on 127.0.0.1:
the tiny pipeline end to end gives a local run's bytes, a fresh machine finds it all cached, the
catalog's views read the store; a run SIGKILLed mid-extract resumes on another machine at the first
missing shard; shard tasks on two workers that share nothing but the store give the same bytes."""

from __future__ import annotations

import json
import multiprocessing
import os
import pickle
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from flows.pipeline import pipeline
from storage.errors import UserError
from storage.objects import ArtifactStore, StorageError, bind
from tasks.config import load_config
from tasks.stage import SHARD_EXECUTOR, run_one_shard
from tests.conftest import TINY_PIPELINE, invoke
from tests.s3_server import s3_server, stored_keys

ROOT = Path(__file__).resolve().parents[1]
SETS = [*TINY_PIPELINE, "train.max_steps=5", "extract.workers=2", "filter.workers=2"]
# Stages whose files are bytes to compare (train's checkpoints hold wall-clock rates; evaluate's report the run).
DATA_STAGES = ("acquire", "extract", "filter", "dedup", "mix", "tokenize")


def stage_files(workdir: Path) -> dict[str, list[tuple]]:
    out = {}
    for manifest in (workdir / "artifacts").glob("*/*/manifest.json"):
        data = json.loads(manifest.read_text())
        out[data["stage"]] = sorted((f["path"], f["sha256"], f["rows"]) for f in data["files"])
    return out


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    with s3_server() as env:
        saved = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        try:
            yield env
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


@pytest.fixture(scope="module")
def local_run(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("local") / "work"
    pipeline(config=load_config(None, SETS).model_dump(mode="json"), workdir=str(work))
    return work


# --- the store itself (no server: file://) ---------------------------------------------------------


def test_a_store_uploads_whole_files_and_the_named_one_last(tmp_path):
    store = bind(tmp_path / "work", f"file://{tmp_path / 'remote'}")
    out = tmp_path / "work" / "artifacts" / "filter" / "abc"
    for rel in ("docs/part-00000.parquet", "manifest.json", "removed/part-00000.parquet", ".tmp-hidden"):
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        (out / rel).write_bytes(rel.encode())
    uploads = []
    original = ArtifactStore.put
    ArtifactStore.put = lambda self, path, rel=None: (uploads.append(Path(path).name), original(self, path, rel))[1]
    try:
        assert store.push_tree(out, last="manifest.json") == 3
        assert store.push_tree(out, last="manifest.json") == 0  # nothing the store already holds
    finally:
        ArtifactStore.put = original
    assert uploads[-1] == "manifest.json"
    remote = tmp_path / "remote" / "artifacts" / "filter" / "abc"
    assert sorted(p.name for p in remote.rglob("*") if p.is_file()) == sorted(
        ["part-00000.parquet", "manifest.json", "part-00000.parquet"]
    )  # the dot-file stays local; no temporary name is left behind in the store
    shutil.rmtree(tmp_path / "work" / "artifacts")
    assert store.pull_tree(out, skip="manifest.json") == 2
    assert (out / "docs" / "part-00000.parquet").read_bytes() == b"docs/part-00000.parquet"
    assert not (out / "manifest.json").exists()


def test_a_workdir_keeps_the_store_it_was_bound_to(tmp_path):
    bind(tmp_path / "work", f"file://{tmp_path / 'a'}")
    with pytest.raises(StorageError, match="keeps its artifacts at"):
        bind(tmp_path / "work", f"file://{tmp_path / 'b'}")
    assert bind(tmp_path / "work", None).url == f"file://{tmp_path / 'a'}"  # found without the setting


def test_storage_settings_are_checked_before_any_work(tmp_path):
    with pytest.raises(UserError, match="expected a URL"):
        load_config(None, ["storage.artifacts=/data/artifacts"])
    with pytest.raises(StorageError, match="cannot use it"):
        bind(tmp_path / "work", "file:///proc/crawl2model-store")  # nobody can write there, root neither
    assert not (tmp_path / "work" / "storage.json").exists()


def test_a_forced_stage_is_discarded_from_the_store_too(tmp_path):
    from flows.pipeline import _prepare_output
    from tasks.plan import PlannedStage
    from tasks.stage import load_manifest

    store = bind(tmp_path / "work", f"file://{tmp_path / 'remote'}")
    out = tmp_path / "work" / "artifacts" / "mix" / "f00"
    (out / "docs").mkdir(parents=True)
    (out / "docs" / "part-00000.parquet").write_bytes(b"rows")
    (out / "manifest.json").write_text(json.dumps({"output_dir": str(out), "files": []}))
    store.push_tree(out, last="manifest.json")
    shutil.rmtree(out)
    stage = PlannedStage("mix", "f00", out, ("dedup",))
    assert load_manifest(out) is not None and _prepare_output(stage, set())  # found in the store: cached
    assert not _prepare_output(stage, {"mix"})  # forced: gone here and there
    assert load_manifest(out) is None and not store.listing(store.rel(out))


# --- the pipeline on S3 ----------------------------------------------------------------------------


@pytest.mark.slow
def test_the_pipeline_on_s3_matches_a_local_run_and_a_fresh_machine_finds_it_cached(s3, local_run, tmp_path):
    url = "s3://crawl2model/e2e"
    sets = [*SETS, f"storage.artifacts={url}"]
    pipeline(config=load_config(None, sets).model_dump(mode="json"), workdir=str(tmp_path / "first"))
    keys = stored_keys(s3, url)
    reference = stage_files(local_run)
    for stage in reference:  # every stage's manifest is in the store, with every file it lists
        [manifest] = [k for k in keys if k.startswith(f"artifacts/{stage}/") and k.endswith("/manifest.json")]
        prefix = manifest.removesuffix("manifest.json")
        assert {path for path, *_ in reference[stage]} <= {k.removeprefix(prefix) for k in keys}
    first = stage_files(tmp_path / "first")
    assert {s: first[s] for s in DATA_STAGES} == {s: reference[s] for s in DATA_STAGES}

    # Another machine: an empty workdir bound to the same store runs nothing, and downloads nothing.
    fresh = tmp_path / "fresh"
    summary = pipeline(config=load_config(None, sets).model_dump(mode="json"), workdir=str(fresh))
    assert all(row["cache_hit"] for row in summary)
    assert not list((fresh / "artifacts").glob("*/*/docs/*.parquet"))
    # Its catalog's views read the documents from the store.
    expected = invoke("sql", "select count(*) as n from documents", "--workdir", str(local_run))
    assert invoke("sql", "select count(*) as n from documents", "--workdir", str(fresh)) == expected


@pytest.mark.slow
def test_a_run_killed_mid_extract_resumes_on_another_machine_at_the_first_missing_shard(s3, tmp_path):
    url = "s3://crawl2model/killed"
    # Shards of 500 pages on one process: seconds each, so the kill after the first lands mid-stage.
    local_sets = [*SETS, "acquire.sample_pages=2000", "extract.workers=1"]
    pipeline(config=load_config(None, local_sets).model_dump(mode="json"), workdir=str(tmp_path / "local"),
             until="dedup")  # fmt: skip
    sets = [*local_sets, f"storage.artifacts={url}"]
    args = ["run", "--workdir", str(tmp_path / "first"), "--until", "dedup", *[a for s in sets for a in ("--set", s)]]
    proc = subprocess.Popen([sys.executable, "-m", "flows.cli", *args], cwd=ROOT, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + 300
    while not [k for k in stored_keys(s3, url) if k.startswith("artifacts/extract/") and "/_state/shard-" in k]:
        assert proc.poll() is None and time.monotonic() < deadline, "extract never finished a shard"
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # the flow, its pool and its Prefect server, mid-stage
    proc.wait(timeout=60)
    killed = {k: v for k, v in stored_keys(s3, url, modified=True).items() if k.startswith("artifacts/extract/")}
    assert not [k for k in killed if k.endswith("manifest.json")], "the kill came too late: extract had finished"
    done = [k for k in killed if "/_state/shard-" in k]
    assert 1 <= len(done) < 4

    pipeline(config=load_config(None, sets).model_dump(mode="json"), workdir=str(tmp_path / "second"), until="dedup")
    after = stored_keys(s3, url, modified=True)
    shard_files = [k for k in killed if "/docs/" in k or "/removed/" in k or "/_state/shard-" in k]
    assert shard_files and all(after[k] == killed[k] for k in shard_files)  # finished shards were not redone
    second, reference = stage_files(tmp_path / "second"), stage_files(tmp_path / "local")
    sharded = ("extract", "filter", "dedup")
    assert {s: second[s] for s in sharded} == {s: reference[s] for s in sharded}


# --- shared nothing --------------------------------------------------------------------------------


def _worker_home(scratch: str) -> None:
    """A worker's own directory: its cwd and its temporary files; the workdir is never named to it."""
    os.chdir(scratch)
    tempfile.tempdir = scratch


def _run_in_worker(payload: bytes) -> tuple[int, dict, str]:
    fn, in_path, out, cfg, index = pickle.loads(payload)
    return os.getpid(), run_one_shard(fn, in_path, out, cfg, index), tempfile.gettempdir()


class TwoIsolatedWorkers:
    """A shard executor over two processes, each in a directory of its own: what a shard task is sent
    is checked to name no path of the flow's machine."""

    def __init__(self, base: Path, forbidden: str):
        self.forbidden = forbidden.encode()
        ctx = multiprocessing.get_context("spawn")
        self.pools = []
        for n in range(2):
            (base / f"worker-{n}").mkdir(parents=True)
            self.pools.append(ctx.Pool(1, initializer=_worker_home, initargs=(str(base / f"worker-{n}"),)))
        self.seen: list[tuple[int, str, str]] = []

    def __call__(self, fn, todo, out, cfg, label):
        pending = []
        for k, (i, path) in enumerate(todo):
            payload = pickle.dumps((fn, path, out, cfg, i))
            assert self.forbidden not in payload, f"{label} shard {i}: a local path was sent"
            pending.append((i, self.pools[k % 2].apply_async(_run_in_worker, (payload,))))
        for i, result in pending:
            pid, stats, home = result.get(timeout=300)
            self.seen.append((pid, home, label))
            yield i, stats

    def close(self):
        for pool in self.pools:
            pool.terminate()


@pytest.mark.slow
def test_shard_tasks_on_two_workers_that_share_only_the_store_give_the_local_bytes(s3, local_run, tmp_path):
    work = tmp_path / "flow"
    sets = [*SETS, "storage.artifacts=s3://crawl2model/isolated"]
    workers = TwoIsolatedWorkers(tmp_path / "workers", str(work.resolve()))
    token = SHARD_EXECUTOR.set(workers)
    try:
        pipeline(config=load_config(None, sets).model_dump(mode="json"), workdir=str(work), until="dedup")
    finally:
        SHARD_EXECUTOR.reset(token)
        workers.close()
    assert len({pid for pid, _, _ in workers.seen}) == 2  # both workers took shards
    assert {Path(home).name for _, home, _ in workers.seen} == {"worker-0", "worker-1"}
    # extract, filter, and each step of dedup (its global phase's partitioned steps too)
    assert {label for _, _, label in workers.seen} >= {
        "extract",
        "filter",
        "dedup: minhash",
        "dedup: pairs",
        "dedup: candidates",
        "dedup: values",
        "dedup: verify",
        "dedup",
    }
    isolated, reference = stage_files(work), stage_files(local_run)
    sharded = ("extract", "filter", "dedup")
    assert {s: isolated[s] for s in sharded} == {s: reference[s] for s in sharded}
    assert not list((tmp_path / "workers").rglob("*.parquet"))  # each shard's scratch is gone once uploaded
