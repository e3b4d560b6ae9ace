"""The crawl2model Prefect flow: the registry's stages, each a task cached by its fingerprint.

The flow process is the only writer of the DuckDB catalog: tasks return their manifests and the
flow records them. A stage whose output directory is complete is a cache hit, both for us and for
Prefect (the task's cache key is the fingerprint), so the UI shows it as Cached.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

import httpx
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.tasks import exponential_backoff

from flows.scaleout import shard_runner
from storage.catalog import Catalog, now
from storage.errors import Crawl2ModelError, NotFound
from storage.lock import workdir_lock
from storage.section import Section, config_json
from tasks.config import PipelineConfig, RunnerConfig, load_config, without_derived
from tasks.download import DownloadError
from tasks.plan import PlannedStage, check_upstream, plan, select
from tasks.registry import SPEC_BY_NAME, STAGES
from tasks.stage import STREAM_FAILED, Manifest, StageInput, execute_stage, load_manifest
from tasks.stored import discard_output, local_copy


def _cache_key(context: Any, parameters: dict[str, Any]) -> str:
    # The output directory is part of the key: two workdirs never share a cached result.
    where = hashlib.sha256(parameters["output_dir"].encode()).hexdigest()[:12]
    return f"crawl2model-{parameters['stage']}-{parameters['fingerprint']}-{where}"


def _summary_markdown(manifest: dict[str, Any]) -> str:
    counts = manifest["counts"]
    lines = [
        f"## {manifest['stage']} ({manifest['fingerprint'][:12]})",
        "",
        f"- seconds: {manifest['seconds']}",
        f"- documents in / kept / removed: {counts['docs_in']} / {counts['docs_out']} / {counts['docs_removed']}",
        f"- files: {len(manifest['files'])}",
        "",
        "| metric | value |",
        "|---|---|",
    ]
    lines += [f"| {m['name']} | {m['value']:.6g} |" for m in manifest["metrics"] if m.get("step") is None][:60]
    return "\n".join(lines)


@task(cache_key_fn=_cache_key, persist_result=True)
def run_stage(
    stage: str, fingerprint: str, config: Section, inputs: dict[str, Manifest], output_dir: str,
    run_id: str | None = None,
) -> Manifest:  # fmt: skip
    """One stage as a Prefect task; `config` is its section of the run's config, validated once."""
    spec = SPEC_BY_NAME[stage]
    upstream = {k: StageInput.from_manifest(v) for k, v in inputs.items()}
    manifest = execute_stage(stage, spec.run, fingerprint, config, upstream, Path(output_dir), run_id)
    create_markdown_artifact(
        key=f"{stage}-summary", markdown=_summary_markdown(manifest), description=f"{stage}: counts and metrics"
    )
    if spec.report:
        report = local_copy(Path(output_dir) / spec.report)  # a cache hit's may be in the store only
        create_markdown_artifact(key="report", markdown=report.read_text(), description="crawl2model run report")
    if spec.table:
        create_table_artifact(spec.table(manifest), key="evaluation", description=f"{stage}: metrics")
    return manifest


@flow(name="crawl2model", log_prints=True)
def pipeline(
    config: PipelineConfig | dict[str, Any] | None = None,
    workdir: str | None = None,
    only: str | None = None,
    start: str | None = None,
    until: str | None = None,
    force: list[str] | None = None,
    config_path: str | None = None,
    repeat: str | None = None,
) -> list[dict[str, Any]]:
    """Run the pipeline (or a slice of it) on `config` (the sample defaults when None).

    The values in `config` apply, key by key, over a base: the config of the run `repeat` names in the
    workdir's catalog (`latest`, `previous`, a run id or a prefix of one: the `stage` deployment's
    default, so a changed threshold reruns that run's stages), else the YAML file `config_path`
    (relative to the worker's directory for deployments), else the built-in defaults.
    """
    logger = get_run_logger()
    # No workdir parameter (a deployment run from the UI): the one `crawl2model serve --workdir` set.
    root = Path(workdir or os.environ.get("CRAWL2MODEL_WORKDIR") or "work").resolve()
    cfg = resolve_config(config, config_path, repeated_config(root, repeat) if repeat else None)
    selected, forced = select(only, start, until, force or [])
    with workdir_lock(root), shard_runner(cfg.runner):
        return _run_stages(cfg, root, selected, forced, logger)


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in override.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def resolve_config(
    config: PipelineConfig | dict[str, Any] | None, config_path: str | None, base: dict[str, Any] | None = None
) -> PipelineConfig:
    """The run's config, validated once: an object from the CLI is used as it is."""
    if isinstance(config, PipelineConfig) and config_path is None and base is None:
        return config
    if isinstance(config, PipelineConfig):
        # Prefect validates a deployment's `config` parameter into a PipelineConfig: only the values the
        # caller gave go over the base (the defaults must not overwrite the run being repeated).
        config = config.model_dump(mode="json", exclude_unset=True)
    if base is None and config_path is None:
        return PipelineConfig.model_validate(config or {})
    if base is None:
        base = load_config(config_path).model_dump(mode="json")
    return PipelineConfig.model_validate(_merge(base, config or {}))


def repeated_config(root: Path, ref: str) -> dict[str, Any]:
    """The config a completed run in this workdir ran with, less the settings the pipeline derives
    (they are derived again from the merged config)."""
    from storage.compare import resolve_run

    catalog = Catalog(root)
    if not catalog.path.exists():
        raise NotFound(f"repeat={ref!r}: no catalog in {root} yet", hint="run the pipeline once first")
    _, [(stored,)] = catalog.query("select config_json from runs where run_id = ?", [resolve_run(catalog, ref)])
    return without_derived(json.loads(stored))


def _worth_retrying(task: Any, task_run: Any, state: Any) -> bool:
    """Transient network failures only: a 404, a bad path or a bad config fails at once."""
    try:
        state.result()
    except DownloadError as e:
        return e.transient
    except (httpx.TransportError, ConnectionError, TimeoutError):
        return True
    except Exception:
        return False
    return False


def _stage_task(p: PlannedStage, cached: bool, runner: RunnerConfig):
    # No tags: every tagged task run asks the server for tag concurrency slots, which cost
    # 0.5-2 s per stage on the ephemeral server; the run name already names the stage.
    retries = {}
    if SPEC_BY_NAME[p.stage].network and runner.network_retries:  # retried by Prefect, with backoff
        retries = {"retries": runner.network_retries, "retry_jitter_factor": 0.5,
                   "retry_delay_seconds": exponential_backoff(backoff_factor=runner.network_retry_delay_s),
                   "retry_condition_fn": _worth_retrying}  # fmt: skip
    return run_stage.with_options(
        name=p.stage, task_run_name=f"{p.stage}-{p.fingerprint[:8]}", refresh_cache=not cached, **retries
    )


def _start_streaming(
    cfg: PipelineConfig, by_stage: dict[str, PlannedStage], selected: list[str], forced: set[str]
) -> dict[str, Any]:
    """Every stage that streams from its input (`StageSpec.streaming`, enabled by the input's settings)
    submitted now, next to that input: it works on each file once it is verified. {stage: future}.

    Only when both stages are to run from scratch here; otherwise the stages run one after the other.
    """
    started = {}
    for p in by_stage.values():
        stream = SPEC_BY_NAME[p.stage].streaming
        if stream is None or not stream.enabled(cfg.stage(stream.source)):
            continue
        source, both = by_stage[stream.source], {stream.source, p.stage}
        if not both <= set(selected) or forced & both:
            continue
        if load_manifest(source.output_dir) is not None or load_manifest(p.output_dir) is not None:
            continue
        (source.output_dir / "_state" / STREAM_FAILED).unlink(missing_ok=True)
        upstream = {"stage": stream.source, "fingerprint": source.fingerprint, "output_dir": str(source.output_dir),
                    "files": [], "info": {}, "streaming": True}  # fmt: skip
        started[p.stage] = _stage_task(p, False, cfg.runner).submit(
            p.stage, p.fingerprint, cfg.stage(p.stage), {stream.source: upstream}, str(p.output_dir)
        )
    return started


def _stream_failed(acquire_out: Path) -> None:
    """Tell a stage streaming from this output that no more files will come."""
    marker = acquire_out / "_state" / STREAM_FAILED
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.touch()


def new_run_id() -> str:
    return f"{now():%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:6]}"


@flow(name="crawl2model-slice", flow_run_name="{label}", log_prints=True)
def pipeline_slice(config: dict[str, Any], workdir: str, stages: list[str], label: str, run_id: str) -> list[dict]:
    """Some stages (upstream from cache) for an experiment, which already holds the workdir lock."""
    cfg = PipelineConfig.model_validate(config)
    return _run_stages(cfg, Path(workdir).resolve(), stages, set(), get_run_logger(), run_id)


def _run_stages(
    cfg: PipelineConfig, root: Path, selected: list[str], forced: set[str], logger, run_id: str | None = None
) -> list[dict]:
    """Run the selected stages in DAG order (earlier ones from cache), recording each in the catalog."""
    planned = plan(cfg, root)
    by_stage = {p.stage: p for p in planned}
    catalog = Catalog(root)
    run_id = run_id or new_run_id()
    catalog.start_run(run_id, cfg.run_name(), config_json(cfg))
    manifests: dict[str, Manifest | None] = {}
    summary = []
    streaming = _start_streaming(cfg, by_stage, selected, forced)
    try:
        check_upstream(planned, selected)  # the CLI checked it too, before Prefect started
        for p in planned:
            if p.stage not in selected:
                if STAGES.index(p.stage) < STAGES.index(selected[0]):
                    manifests[p.stage] = load_manifest(p.output_dir)  # upstream, from cache if present
                continue
            started = now()
            cached = _prepare_output(p, forced)
            logger.info("%s: %s (%s)", p.stage, "cached" if cached else "running", p.fingerprint[:12])
            manifest = _run_one(cfg, p, cached, manifests, streaming, catalog, run_id, started)
            manifests[p.stage] = manifest
            parents = [(k, by_stage[k].fingerprint) for k in p.parents]
            catalog.record_stage(run_id, p.stage, p.fingerprint, manifest, cache_hit=cached, started_at=started,
                                 parents=parents)  # fmt: skip
            summary.append({"stage": p.stage, "fingerprint": p.fingerprint, "cache_hit": cached,
                            "seconds": (now() - started).total_seconds(), **manifest["counts"],
                            "warnings": manifest["info"].get("warnings", [])})  # fmt: skip
    except BaseException:
        catalog.finish_run(run_id, "failed")
        raise
    catalog.finish_run(run_id, "completed")
    return summary


def _prepare_output(p: PlannedStage, forced: set[str]) -> bool:
    """Whether the stage is a cache hit; a forced stage starts from an empty output directory."""
    cached = p.stage not in forced and load_manifest(p.output_dir) is not None
    if not cached and p.stage in forced:
        if p.output_dir.exists():
            shutil.rmtree(p.output_dir)
        discard_output(p.output_dir)
    return cached


def _run_one(
    cfg: PipelineConfig, p: PlannedStage, cached: bool, manifests: dict[str, Manifest | None], streaming: dict,
    catalog: Catalog, run_id: str, started: Any,
) -> Manifest:  # fmt: skip
    """One stage's task; a failure is recorded in the catalog (and tells a stage streaming from it to stop)."""
    try:
        if p.stage in streaming:
            return streaming[p.stage].result()  # started next to its source, on files as they landed
        inputs = {k: manifests[k] for k in p.parents}
        return _stage_task(p, cached, cfg.runner)(p.stage, p.fingerprint, cfg.stage(p.stage), inputs, str(p.output_dir),
                                                  run_id)  # fmt: skip
    except Exception as e:
        if any(SPEC_BY_NAME[consumer].streaming.source == p.stage for consumer in streaming):
            _stream_failed(p.output_dir)
        catalog.record_stage(run_id, p.stage, p.fingerprint, None, cache_hit=False, started_at=started, parents=[],
                             error=f"{type(e).__name__}: {e}"[:2000])  # fmt: skip
        raise


logging.getLogger("crawl2model").setLevel(logging.INFO)


def _no_traceback_for_reported_errors(record: logging.LogRecord) -> bool:
    """Prefect logs a failed task or flow with its traceback; an error crawl2model reports as one line
    (a user's mistake, a download that kept failing) keeps Prefect's line without the traceback."""
    if record.exc_info and isinstance(record.exc_info[1], Crawl2ModelError):
        record.exc_info, record.exc_text = None, None
    return True


for _name in ("prefect.task_runs", "prefect.flow_runs"):
    logging.getLogger(_name).addFilter(_no_traceback_for_reported_errors)
