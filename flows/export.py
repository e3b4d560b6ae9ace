"""`crawl2model export` and the `crawl2model-export` Prefect flow: a finished stage output written in
a format another tool reads (tasks/export), recorded in the catalog with lineage to its source."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact

from storage.catalog import Catalog
from storage.lock import workdir_lock
from tasks.config import PipelineConfig
from tasks.export.config import ExportConfig
from tasks.export.run import check, export
from tasks.plan import finished_outputs


def run_export(cfg: PipelineConfig, root: Path, export_cfg: ExportConfig) -> dict[str, Any]:
    """Export from the outputs of `cfg` in `root`; the catalog records it (once per export)."""
    fmt = check(export_cfg)
    inputs = finished_outputs(cfg, root, (export_cfg.stage, *[s for s in fmt.needs if s != export_cfg.stage]))
    manifest = export(export_cfg, inputs)
    if not manifest["reused"]:
        with workdir_lock(root):
            Catalog(root).record_export(manifest, [(s.stage, s.fingerprint) for s in inputs.values()])
    return manifest


@flow(name="crawl2model-export", log_prints=True)
def export_flow(
    stage: str,
    format: str,
    out: str,
    config: dict[str, Any] | None = None,
    config_path: str | None = None,
    workdir: str | None = None,
    shard_bytes: int | None = None,
) -> dict[str, Any]:
    """As a deployment after a pipeline run: the same `config`/`config_path`/`workdir` parameters as
    the `crawl2model` flow pick the outputs; `out` is the export directory."""
    from flows.pipeline import resolve_config

    cfg = resolve_config(config, config_path)
    root = Path(workdir or os.environ.get("CRAWL2MODEL_WORKDIR") or "work").resolve()
    options = {"stage": stage, "format": format, "out": out} | ({"shard_bytes": shard_bytes} if shard_bytes else {})
    manifest = run_export(cfg, root, ExportConfig.model_validate(options))
    lines = [f"## export: {format} of {stage}", "", f"- directory: `{manifest['out']}`",
             f"- files: {len(manifest['files'])}, bytes: {sum(f['bytes'] for f in manifest['files'])}",
             f"- load: `{manifest['load']}`"]  # fmt: skip
    create_markdown_artifact(key=f"export-{format}", markdown="\n".join(lines), description="crawl2model export")
    get_run_logger().info("exported %s of %s to %s", format, stage, manifest["out"])
    return manifest
