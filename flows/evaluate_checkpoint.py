"""`crawl2model evaluate CHECKPOINT`: the evaluate stage's report for any checkpoint (a run's final
model, an intermediate `step-*.pt`, another run's), against the data outputs of the given config,
without rerunning the pipeline. Written to `<workdir>/evaluations/<checkpoint>-<digest>/`."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from flows.plan import finished_outputs
from storage.shards import atomic_write_json
from tasks.config import PipelineConfig
from tasks.registry import SPEC_BY_NAME
from tasks.stage import StageInput


class CheckpointError(LookupError):
    """The checkpoint is missing."""


def as_model_file(checkpoint: Path, trained: StageInput, out: Path) -> Path:
    """A model file `load_model` reads: the checkpoint itself, or an intermediate training checkpoint
    (weights, optimizer, loader state) with the run's model config added."""
    import torch

    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    if "config" in state:
        return checkpoint
    config = torch.load(trained.file("model"), map_location="cpu", weights_only=True)["config"]
    model = out / "model.pt"
    torch.save({"model": state["model"], "config": config}, model)
    return model


def evaluate_checkpoint(cfg: PipelineConfig, root: Path, checkpoint: Path) -> dict[str, Any]:
    if not checkpoint.is_file():
        raise CheckpointError(f"no checkpoint at {checkpoint}")
    inputs = finished_outputs(cfg, root, SPEC_BY_NAME["evaluate"].inputs)
    digest = hashlib.sha256(f"{checkpoint.resolve()}:{checkpoint.stat().st_mtime_ns}".encode()).hexdigest()[:12]
    out = root / "evaluations" / f"{checkpoint.stem}-{digest}"
    out.mkdir(parents=True, exist_ok=True)
    trained = inputs["train"]
    model = as_model_file(checkpoint, trained, out)
    files = [f for f in trained.manifest["files"] if f["kind"] != "model"]
    files.append({"path": str(model.resolve()), "kind": "model"})  # absolute: StageInput joins it unchanged
    inputs["train"] = StageInput(trained.stage, trained.fingerprint, trained.output_dir,
                                 {**trained.manifest, "files": files})  # fmt: skip
    outcome = SPEC_BY_NAME["evaluate"].run(inputs, cfg.evaluate, out)
    summary = {"checkpoint": str(checkpoint), "report": str(out / "report.md"), "metrics": outcome.info}
    atomic_write_json(out / "checkpoint.json", summary)
    return summary
