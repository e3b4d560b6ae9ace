"""`crawl2model evaluate CHECKPOINT`: the evaluate stage's report for any checkpoint (a run's final
model, an intermediate `step-*.pt`, another run's), against the data outputs of the given config,
without rerunning the pipeline, with any benchmarks. Written to
`<workdir>/evaluations/<checkpoint>-<weights digest>-<settings digest>/`.
`crawl2model harness CHECKPOINT`: lm-evaluation-harness tasks on it (`<workdir>/harness/...`)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from storage.catalog import Catalog
from storage.errors import NotFound
from storage.fingerprint import file_sha256
from storage.section import config_json
from storage.shards import atomic_write_json
from tasks.config import PipelineConfig
from tasks.plan import finished_outputs
from tasks.post_training import POST_TRAINING
from tasks.registry import SPEC_BY_NAME
from tasks.stage import StageInput, load_manifest


class CheckpointError(NotFound):
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


def harness_checkpoint(
    cfg: PipelineConfig, root: Path, checkpoint: Path, tasks: list[str], local: dict[str, str],
    include_paths: list[Path], limit: int | None, num_fewshot: int | None,
) -> dict[str, Any]:  # fmt: skip
    """lm-evaluation-harness tasks on a checkpoint, with this config's tokenizer; results beside it in
    `<workdir>/harness/<checkpoint>-<digest>/results.json`."""
    import sentencepiece as spm

    from model.trainer import load_model
    from tasks.evaluate.harness import CheckpointScorer, local_tasks, run_harness

    out = checkpoint_dir(root, "harness", checkpoint, [tasks, local, [str(p) for p in include_paths], limit,
                                                       num_fewshot])  # fmt: skip
    inputs = finished_outputs(cfg, root, ("tokenize", "train"))
    model = load_model(as_model_file(checkpoint, inputs["train"], out))
    sp = spm.SentencePieceProcessor(model_file=inputs["tokenize"].file("tokenizer"))
    names = list(tasks) + (local_tasks(local, out / "tasks") if local else [])
    paths = [*include_paths, *([out / "tasks"] if local else [])]
    result = run_harness(CheckpointScorer(model, sp), names, paths, limit, num_fewshot)
    summary = {"checkpoint": str(checkpoint), "tasks": names, "results": result["results"],
               "out": str(out / "results.json")}  # fmt: skip
    atomic_write_json(out / "results.json", summary)
    return summary


def checkpoint_dir(root: Path, kind: str, checkpoint: Path, settings: Any) -> Path:
    """`<workdir>/<kind>/<checkpoint>-<its content's digest>-<the settings' digest>/`, made: another
    checkpoint, or the same one with other benchmarks or shots, never overwrites an evaluation."""
    if not checkpoint.is_file():
        raise CheckpointError(f"no checkpoint at {checkpoint}")
    weights = file_sha256(str(checkpoint))[:12]
    asked = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:8]
    out = root / kind / f"{checkpoint.stem}-{weights}-{asked}"
    out.mkdir(parents=True, exist_ok=True)
    return out


def trained_from(checkpoint: Path, stages: tuple[str, ...]) -> dict[str, StageInput] | None:
    """The outputs a checkpoint inside a train output (`<workdir>/artifacts/train/<fp>/...`) was made from,
    by the catalog's lineage: whatever benchmarks the config now names (they change tokenize's
    fingerprint, not what the model saw). None when the checkpoint lies elsewhere or the lineage is not there."""
    train_dir = next((p for p in checkpoint.resolve().parents if p.parent.name == "train"
                      and p.parent.parent.name == "artifacts"), None)  # fmt: skip
    if train_dir is None or not (catalog := Catalog(train_dir.parents[2])).path.exists():
        return None
    found: dict[str, StageInput] = {}
    todo = [("train", train_dir.name)]
    with catalog.connect(read_only=True) as con:
        while todo:
            stage, fingerprint = todo.pop()
            if stage in found or (manifest := load_manifest(train_dir.parents[1] / stage / fingerprint)) is None:
                continue
            found[stage] = StageInput.from_manifest(manifest)
            todo += con.execute("select parent_stage, parent_fingerprint from lineage where child_stage = ? and "
                                "child_fingerprint = ?", [stage, fingerprint]).fetchall()  # fmt: skip
    return found if set(stages) <= set(found) else None


def base_model_inputs() -> tuple[str, ...]:
    """evaluate's inputs less post-training: a checkpoint is scored as a base model (the run's chat
    models are the final base model's, not this checkpoint's)."""
    return tuple(s for s in SPEC_BY_NAME["evaluate"].inputs if s not in POST_TRAINING)


def evaluate_checkpoint(cfg: PipelineConfig, root: Path, checkpoint: Path,
                        finished: dict[str, StageInput] | None = None) -> dict[str, Any]:  # fmt: skip
    """The evaluate stage's report for `checkpoint` in place of the run's model; `finished`: the run's
    resolved evaluate inputs, when the caller scores several checkpoints of one run. Any benchmark the
    config names is scored: the data outputs are the checkpoint's own (by lineage), else this config's."""
    evaluate = cfg.stage("evaluate")
    out = checkpoint_dir(root, "evaluations", checkpoint, config_json(evaluate) | {"config_changes": None})
    stages = base_model_inputs()
    inputs = dict(finished or trained_from(checkpoint, stages) or finished_outputs(cfg, root, stages))
    inputs = {stage: found for stage, found in inputs.items() if stage in stages}
    trained = inputs["train"]
    model = as_model_file(checkpoint, trained, out)
    files = [f for f in trained.manifest["files"] if f["kind"] != "model"]
    files.append({"path": str(model.resolve()), "kind": "model"})  # absolute: StageInput joins it unchanged
    inputs["train"] = StageInput(trained.stage, trained.fingerprint, trained.output_dir,
                                 {**trained.manifest, "files": files})  # fmt: skip
    outcome = SPEC_BY_NAME["evaluate"].run(inputs, evaluate, out)
    summary = {"checkpoint": str(checkpoint), "report": str(out / "report.md"), "metrics": outcome.info}
    atomic_write_json(out / "checkpoint.json", summary)
    return summary


def checkpoint_curve(cfg: PipelineConfig, root: Path) -> dict[str, Any]:
    """Every milestone of the run's training (`train.milestone_every`) and the final model, each scored
    with the evaluate stage: the yardstick (with its interval) and every task against tokens seen,
    the DataDecide way of reading early signal. Written to `<workdir>/curves/<train fingerprint>/`."""
    finished = finished_outputs(cfg, root, base_model_inputs())  # resolved once for every point
    trained = finished["train"]
    milestones = sorted(trained.files("milestones"))
    if not milestones:
        raise CheckpointError("this run kept no milestones: train with --set train.milestone_every=N")
    steps = [int(Path(p).stem.split("-")[1]) for p in milestones] + [cfg.train.max_steps]  # step-0000040.pt
    points = []
    for path, step in zip([*milestones, trained.file("model")], steps, strict=True):
        tokens = step * trained.info.get("tokens_per_step", 0)
        metrics = evaluate_checkpoint(cfg, root, Path(path), finished)["metrics"]
        yardstick = metrics.get("yardstick", {}).get("bits_per_byte") or {}
        tasks = {t: {k: v[k] for k in CURVE_KEYS if k in v} for t, v in metrics.get("tasks", {}).items()}
        points.append({"checkpoint": Path(path).name, "tokens": tokens,
                       "yardstick_bits_per_byte": yardstick.get("value"), "yardstick_ci": yardstick.get("ci"),
                       "tasks": tasks})  # fmt: skip
    out = root / "curves" / trained.fingerprint
    out.mkdir(parents=True, exist_ok=True)
    curve_png(points, out / "curve.png")
    summary = {"train": trained.fingerprint, "points": points, "png": str(out / "curve.png")}
    atomic_write_json(out / "curve.json", summary)
    return summary


# Accuracy beside the continuous metrics that rank small models earlier (DataDecide), each with its interval.
CURVE_KEYS = tuple(f"{k}{ci}" for k in ("acc", "acc_norm", "p_correct", "logprob_norm") for ci in ("", "_ci"))


def curve_png(points: list[dict[str, Any]], path: Path) -> None:
    from tasks.figures import pyplot, save_figure

    plt = pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6))
    tokens = [p["tokens"] for p in points]
    bpb = [p["yardstick_bits_per_byte"] for p in points]
    low, high = zip(*[p["yardstick_ci"] or (b, b) for p, b in zip(points, bpb, strict=True)], strict=True)
    left.plot(tokens, bpb, marker="o")
    left.fill_between(tokens, low, high, alpha=0.2)
    left.set(xlabel="tokens seen", ylabel="yardstick bits per byte", title="yardstick (95% interval)")
    for task in points[-1]["tasks"]:
        values = [p["tasks"].get(task, {}) for p in points]
        if not all("p_correct" in v for v in values):
            continue
        right.plot(tokens, [v["p_correct"] for v in values], marker="o", label=task)
        bands = [v.get("p_correct_ci") or [v["p_correct"]] * 2 for v in values]
        right.fill_between(tokens, [b[0] for b in bands], [b[1] for b in bands], alpha=0.15)
    right.set(xlabel="tokens seen", ylabel="p(correct)", title="tasks (95% interval)")
    if points[-1]["tasks"]:
        right.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, path)


def summary_headline(metrics: dict[str, Any]) -> str | None:
    """The yardstick's bits per byte with its interval, the line `crawl2model evaluate` prints."""
    yardstick = metrics.get("yardstick", {}).get("bits_per_byte") or {}
    return f"yardstick bits per byte: {yardstick['value']:.4f} {yardstick['ci']}" if yardstick else None


def task_table(metrics: dict[str, Any]) -> str | None:
    """The report's task table (intervals, baselines, flags, contamination), for the CLI to print."""
    from tasks.evaluate.report import task_table_lines

    return "\n".join(task_table_lines(metrics["tasks"])) if metrics.get("tasks") else None
