"""The stage contract shared by every stage.

A stage module exposes `run(inputs, cfg, out) -> StageOutcome` (`RunFn`); `tasks/registry.py` names
it with its version, inputs and config class. `execute_stage` wraps it: a complete output directory
(its manifest exists) is a cache hit; otherwise the stage runs, resuming from whatever shards an
interrupted run left, and the manifest is written last. Per-shard work goes through `map_shards`,
which skips shards that are already complete; its per-shard argument is a per-stage dataclass or
config object (`ShardFn[P]`). When the workdir has a store (`storage.artifacts`), the same three
points keep it whole (`tasks/stored.py`): inputs pulled before a stage runs and its output pushed
after, manifest last; each shard run shared-nothing, uploading its files and then its marker.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypedDict, TypeVar

from pydantic import BaseModel

from storage.fingerprint import file_identity
from storage.section import Section, input_files
from storage.shards import MANIFEST, atomic_write_json, describe_file, read_json
from tasks.stored import StoredShard, fetch_manifest, prepare_inputs, publish, pull_output, shard_job, shard_marker

log = logging.getLogger("crawl2model")

# The stage-to-stage hand-off files (streaming extract): acquire writes them, extract reads them.
STREAM_PLAN = "stream_plan.json"
STREAM_FAILED = "stream_failed"


class FileEntry(TypedDict):
    path: str
    kind: str
    rows: int | None
    bytes: int
    sha256: str


class Counts(TypedDict):
    docs_in: int | None
    docs_out: int | None
    docs_removed: int | None


class Manifest(TypedDict, total=False):
    """A finished stage output, written last into its directory (`manifest.json`)."""

    stage: str
    fingerprint: str
    output_dir: str
    files: list[FileEntry]
    counts: Counts
    metrics: list[dict[str, Any]]
    info: dict[str, Any]
    seconds: float
    streaming: bool  # only on the placeholder a streaming extract reads while acquire runs


@dataclass
class StageInput:
    """A finished upstream stage output, as the downstream stage sees it."""

    stage: str
    fingerprint: str
    output_dir: Path
    manifest: Manifest

    def files(self, kind: str) -> list[str]:
        return [str(self.output_dir / f["path"]) for f in self.manifest["files"] if f["kind"] == kind]

    def file(self, kind: str) -> str:
        found = self.files(kind)
        if len(found) != 1:
            raise FileNotFoundError(f"{self.stage} output has {len(found)} files of kind {kind!r}")
        return found[0]

    def metric_total(self, *names: str) -> float:
        """The sum of this output's step-less metrics with these names (0 when none was recorded)."""
        return sum(m["value"] for m in self.manifest["metrics"] if m["name"] in names and m.get("step") is None)

    @property
    def info(self) -> dict[str, Any]:
        return self.manifest.get("info", {})

    @classmethod
    def from_manifest(cls, manifest: Manifest) -> StageInput:
        return cls(manifest["stage"], manifest["fingerprint"], Path(manifest["output_dir"]), manifest)


@dataclass
class StageOutcome:
    docs_in: int | None = None
    docs_out: int | None = None
    docs_removed: int | None = None
    metrics: list[dict[str, Any]] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)

    def metric(self, name: str, value: float, step: int | None = None) -> None:
        self.metrics.append({"name": name, "value": float(value), "step": step})


def kind_of(rel: Path) -> str:
    """The artifact kind of a file is its top folder (docs/, removed/, tokens/ ...) or its stem."""
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


RunFn = Callable[[dict[str, StageInput], Any, Path], StageOutcome]


def named_files(cfg: Section) -> list[str] | None:
    """The default fingerprint extra: identity (path, size, mtime) of every file the config names,
    None when it names none (the fingerprint then has no `_inputs` key)."""
    return [file_identity(f) for f in files] if (files := input_files(cfg)) else None


@dataclass(frozen=True)
class Streaming:
    """A stage that may start next to its input stage and take each file as it lands (extract on
    acquire's downloads): both run as Prefect tasks at once; the shards are those of a sequential run."""

    source: str  # the input stage whose files arrive one by one
    enabled: Callable[[Any], bool]  # given the source stage's section: whether it streams


@dataclass(frozen=True)
class StageSpec:
    """A stage, as the registry declares it: everything the flow and the CLI do for a stage follows
    from these fields, so neither names a stage."""

    name: str
    inputs: tuple[str, ...]  # the stages whose outputs `run` reads, by name
    config: type[Section]
    version: str
    run: RunFn
    # What the fingerprint must see besides the config: the identity of the files it reads.
    identity: Callable[[Section], list[str] | None] = named_files
    network: bool = False  # talks to the network: Prefect retries it with backoff (runner.network_retries)
    after: str | None = None  # plugins only: the stage this one follows
    # Settings filled from other stages' sections: given the whole pipeline config, {field: value}
    # applied over this stage's section wherever it is read (`PipelineConfig.stage`). `derived` names
    # the fields, which are not the user's settings (not in "changes from the defaults").
    derive: Callable[[Any], dict[str, Any]] | None = None
    derived: tuple[str, ...] = ()
    # Checks that need only the config and the outside world (an endpoint, a key), run before the
    # first stage of a run in which this stage will run; raise a Crawl2ModelError.
    preflight: Callable[[Any], None] | None = None
    streaming: Streaming | None = None
    # What the stage publishes: a Markdown report in its output (the Prefect UI's run report; the CLI
    # names it), a table artifact made from its manifest, and whether its output holds the run's
    # per-document and per-item scores (what `compare` pairs).
    report: str | None = None
    table: Callable[[Manifest], list[dict[str, Any]]] | None = None
    scores: bool = False
    # The columns of a kept document that `crawl2model explain` shows for this stage.
    explain_columns: tuple[str, ...] = ()


def workdir_cache(out: Path, name: str) -> Path:
    """A cache shared by every output of the workdir (`<workdir>/cache/<name>`): for results that
    depend on less than the stage's fingerprint does. A stage output lives at
    `<workdir>/artifacts/<stage>/<fingerprint>`, so the workdir is three levels up; an output kept
    anywhere else (a test, a benchmark) gets a cache of its own."""
    out = out.resolve()
    if out.parent.parent.name != "artifacts":
        return out / "_state" / "cache" / name
    return out.parents[2] / "cache" / name


def write_manifest(stage: str, fingerprint: str, out: Path, outcome: StageOutcome, seconds: float) -> Manifest:
    files = [
        describe_file(p, kind_of(p.relative_to(out)), out)
        for p in sorted(out.rglob("*"))
        if p.is_file() and p.name != MANIFEST and not p.name.startswith(".") and "_state" not in p.parts
    ]
    manifest: Manifest = {
        "stage": stage,
        "fingerprint": fingerprint,
        "output_dir": str(out),
        "files": files,
        "counts": {"docs_in": outcome.docs_in, "docs_out": outcome.docs_out, "docs_removed": outcome.docs_removed},
        "metrics": outcome.metrics,
        "info": outcome.info,
        "seconds": round(seconds, 3),
    }
    if outcome.docs_in is not None and outcome.docs_out is not None and outcome.docs_removed is not None:
        if outcome.docs_in != outcome.docs_out + outcome.docs_removed:
            raise RuntimeError(
                f"{stage}: counts do not reconcile: in={outcome.docs_in} "
                f"out={outcome.docs_out} removed={outcome.docs_removed}"
            )
    atomic_write_json(out / MANIFEST, manifest)
    return manifest


def load_manifest(out: Path) -> Manifest | None:
    """The output's manifest: None while the stage is incomplete (here and in the workdir's store)."""
    path = out / MANIFEST
    return read_json(path) if path.exists() else fetch_manifest(out)


_RUN = threading.local()


def current_run_id() -> str | None:
    """The id of the run executing the stage on this thread (a report says which run made it)."""
    return getattr(_RUN, "id", None)


def execute_stage(
    stage: str, run: RunFn, fingerprint: str, cfg: BaseModel, inputs: dict[str, StageInput], out: Path,
    run_id: str | None = None,
) -> Manifest:  # fmt: skip
    """Run one stage into `out` (or return its manifest if it is already complete)."""
    if (manifest := load_manifest(out)) is not None:
        return manifest
    out.mkdir(parents=True, exist_ok=True)
    prepare_inputs(inputs, out)  # with a store: inputs and an interrupted run's shards pulled here
    started = time.perf_counter()
    _RUN.id = run_id
    try:
        outcome = run(inputs, cfg, out)
    finally:
        _RUN.id = None
    seconds = time.perf_counter() - started
    return publish(out, lambda: write_manifest(stage, fingerprint, out, outcome, seconds))


# --- per-shard work --------------------------------------------------------------------------

P = TypeVar("P")
# fn(in_path, out, params, index) -> that shard's stats; params is the stage's own shard argument.
ShardFn = Callable[[str, Path, P, int], dict[str, Any]]


def shard_done_path(out: Path, index: int) -> Path:
    return out / shard_marker(index)


def run_one_shard(fn: ShardFn[P], in_path: str, out: Path, cfg: P, index: int) -> dict[str, Any]:
    if isinstance(fn, StoredShard):  # the workdir has a store: shared-nothing, marked done in the store
        return fn.run(in_path, out, cfg, index)
    stats = fn(in_path, out, cfg, index)
    # The stats file is written after the shard's data files: its presence marks the shard done.
    atomic_write_json(shard_done_path(out, index), stats)
    return stats


# Sends per-shard work elsewhere (flows/scaleout.py: shard tasks on a Dask cluster) when set:
# called with (fn, [(index, in_path), ...], out, cfg, label), yields (index, stats) as shards finish.
ShardExecutor = Callable[[ShardFn, list[tuple[int, str]], Path, Any, str], Iterator[tuple[int, dict[str, Any]]]]
SHARD_EXECUTOR: ContextVar[ShardExecutor | None] = ContextVar("crawl2model_shard_executor", default=None)


def map_shards(
    fn: ShardFn[P], in_paths: list[str], out: Path, cfg: P, workers: int = 1, label: str = "shards"
) -> list[dict[str, Any]]:
    """Apply `fn(in_path, out, cfg, index)` to every input shard, resuming completed ones.

    Returns the per-shard stats in input order, so totals do not depend on completion order.
    """
    results: dict[int, dict[str, Any]] = {}
    todo = []
    for i, p in enumerate(in_paths):
        done = shard_done_path(out, i)
        if done.exists():
            results[i] = read_json(done)
        else:
            todo.append((i, p))
    if todo:
        log.info("%s: %d of %d shards to process (%d resumed)", label, len(todo), len(in_paths), len(results))
    from storage.progress import progress_bar

    executor = SHARD_EXECUTOR.get()
    sent: Any = (fn, todo, out, cfg)
    if todo and (stored := shard_job(fn, todo, out, cfg)) is not None:
        sent = stored  # keys in the workdir's store instead of local paths
    with progress_bar(label, total=len(in_paths), completed=len(results)) as advance:
        for i, stats in _shard_results(executor, *sent, workers, label):
            results[i] = stats
            advance()
    if todo and sent[0] is not fn:
        pull_output(out)  # the shards' files, for the stage's own later steps and its manifest
    return [results[i] for i in range(len(in_paths))]


def _shard_results(
    executor: ShardExecutor | None, fn: ShardFn, todo: list[tuple[int, Any]], out: Any, cfg: Any, workers: int,
    label: str,
) -> Iterator[tuple[int, dict[str, Any]]]:  # fmt: skip
    """(index, stats) of each shard to do, as they finish: on the cluster, in this process, or a pool."""
    if executor is not None and todo:
        yield from executor(fn, todo, out, cfg, label)
    elif workers <= 1 or len(todo) <= 1:
        for i, p in todo:
            yield i, run_one_shard(fn, p, out, cfg, i)
    else:
        with process_pool(min(workers, len(todo))) as pool:
            futures = {pool.submit(run_one_shard, fn, p, out, cfg, i): i for i, p in todo}
            for fut in as_completed(futures):
                yield futures[fut], fut.result()


def process_pool(workers: int) -> ProcessPoolExecutor:
    """A pool of forkserver workers (forking a process that runs Prefect's threads is unsafe) that
    ignore SIGINT: Ctrl-C reaches the whole process group, and the CLI ends the workers itself, with
    one line, rather than each worker printing a KeyboardInterrupt traceback. Each worker takes this
    process's environment as it is now (the forkserver keeps the one it started with): credentials
    set since then reach the shard that uploads to a store."""
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(project_modules())  # read once, when the forkserver starts
    return ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_pool_worker,
                               initargs=(dict(os.environ),))  # fmt: skip


# The project's own packages. Python 3.11's forkserver never preloads `__main__` (it asks for a
# preparation key that is never written), so each worker of each pool re-ran the entry point's
# imports (prefect, torch: about 3 s a worker, most of a small stage's time). The forkserver imports
# the project modules this process has loaded once instead, and workers fork with them in place.
PROJECT_PACKAGES = ("flows", "tasks", "model", "storage")


def project_modules() -> list[str]:
    return sorted(name for name in list(sys.modules) if name.split(".")[0] in PROJECT_PACKAGES)


def _pool_worker(environment: dict[str, str]) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.environ.clear()
    os.environ.update(environment)


def sum_stats(stats: list[dict[str, Any]]) -> dict[str, int]:
    total: dict[str, int] = {}
    for s in stats:
        for k, v in s.items():
            if isinstance(v, int | float):
                total[k] = total.get(k, 0) + v
    return total
