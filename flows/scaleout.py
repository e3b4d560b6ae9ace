"""Scale-out: per-shard work as Prefect tasks on prefect-dask's DaskTaskRunner or prefect-ray's RayTaskRunner.

With `runner.kind: dask` the flow opens a DaskTaskRunner (a local process cluster, or the scheduler
at `runner.address`), with `ray` a RayTaskRunner (a local Ray instance, or the cluster at
`runner.address`), and points `tasks.stage.SHARD_EXECUTOR` at it, so every `map_shards` call
submits one Prefect task per shard: each shard shows in the UI under its stage with its own state,
logs and error, and the shard's completion marker (written by the task, on the shared workdir) lets a
rerun skip finished shards.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.futures import as_completed
from prefect.task_runners import TaskRunner

from tasks.config import RunnerConfig
from tasks.stage import SHARD_EXECUTOR, ShardFn, run_one_shard


def dask_task_runner(cfg: RunnerConfig) -> TaskRunner:
    from prefect_dask import DaskTaskRunner

    if cfg.address:
        return DaskTaskRunner(address=cfg.address)
    # One thread per worker process: shard functions are CPU-bound Python (the GIL), as with the local pool.
    return DaskTaskRunner(cluster_kwargs={"n_workers": cfg.workers, "threads_per_worker": 1, "processes": True,
                                          "dashboard_address": ":0", "silence_logs": logging.WARNING})  # fmt: skip


def ray_task_runner(cfg: RunnerConfig) -> TaskRunner:
    from prefect_ray import RayTaskRunner

    if cfg.address:
        return RayTaskRunner(address=cfg.address)
    # A local instance of `workers` CPUs: one shard task per CPU, as the local pool; no dashboard.
    return RayTaskRunner(init_kwargs={"num_cpus": cfg.workers, "include_dashboard": False, "log_to_driver": False})


TASK_RUNNERS = {"dask": dask_task_runner, "ray": ray_task_runner}


def run_on(runner: TaskRunner, retries: int = 0):
    """A shard executor for `tasks.stage.map_shards` that submits shard tasks to `runner`."""
    # Shards are resumed by their completion markers, not by Prefect's cache.
    shard_task = task(run_one_shard, name="shard", cache_policy=NO_CACHE, retries=retries, retry_delay_seconds=2)

    def execute(
        fn: ShardFn, todo: list[tuple[int, str]], out: Path, cfg: Any, label: str
    ) -> Iterator[tuple[int, dict[str, Any]]]:
        stage = label.split(":")[0]
        futures = {}
        for i, path in todo:
            named = shard_task.with_options(task_run_name=f"{label} shard {i:05d}", tags=[stage])
            params = {"fn": fn, "in_path": path, "out": out, "cfg": cfg, "index": i}
            futures[runner.submit(named, params)] = i
        # A failed shard raises its own error, but only once every other shard has finished: raising at
        # once would close the cluster under shards still running and lose their work.
        failure: BaseException | None = None
        for future in as_completed(list(futures)):
            try:
                stats = future.result()
            except Exception as err:
                failure = failure or err
                continue
            yield futures[future], stats
        if failure is not None:
            raise failure

    return execute


@contextlib.contextmanager
def shard_runner(cfg: RunnerConfig) -> Iterator[None]:
    """Run the enclosed stages' shards on Dask or Ray when configured; the cluster closes on exit."""
    if cfg.kind == "local":
        yield
        return
    with TASK_RUNNERS[cfg.kind](cfg) as runner:
        token = SHARD_EXECUTOR.set(run_on(runner, cfg.shard_retries))
        try:
            yield
        finally:
            SHARD_EXECUTOR.reset(token)
