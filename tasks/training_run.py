"""Running a training (train's pretraining, sft's fine-tuning): in this process, or under torchrun
with `nproc > 1` (DDP or FSDP) as a subprocess whose rank 0 log the stage follows; progress in the log
and the Prefect UI; the history as the stage's metrics."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import threading
import time
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from model.config import TrainConfig
from storage.section import config_json
from storage.shards import atomic_write_json, read_json
from tasks.stage import StageOutcome

if TYPE_CHECKING:
    import torch

    from model.gpt import GPTConfig

log = logging.getLogger("crawl2model")


def _in_prefect_task() -> bool:
    from prefect.context import TaskRunContext

    return TaskRunContext.get() is not None


# Logged beside the loss when present: pretraining's throughput, DPO's preference measures.
LOGGED = (("tokens_per_s", "{:.0f} tok/s"), ("mfu", "mfu {:.1%}"), ("reward_margin", "margin {:.3f}"),
          ("pref_accuracy", "pref acc {:.2f}"))  # fmt: skip


class ProgressReporter:
    """Logs each training log entry and, under Prefect, moves a progress artifact in the UI."""

    def __init__(self, max_steps: int, stage: str = "train"):
        self.max_steps, self.stage = max_steps, stage
        self.artifact_id = None
        self.entries: list[dict[str, float]] = []

    def __call__(self, entry: dict[str, float]) -> None:
        self.entries.append(entry)
        extra = "".join(f" {fmt.format(entry[key])}" for key, fmt in LOGGED if key in entry)
        log.info("%s: step %d/%d loss %.4f lr %.2e%s", self.stage, entry["step"], self.max_steps, entry["loss"],
                 entry["lr"], extra)  # fmt: skip
        if not _in_prefect_task():
            return
        from prefect.artifacts import create_progress_artifact, update_progress_artifact

        percent = 100.0 * entry["step"] / self.max_steps
        if self.artifact_id is None:
            self.artifact_id = create_progress_artifact(
                percent, key=f"{self.stage}-progress", description=f"{self.stage} steps"
            )
        else:
            update_progress_artifact(self.artifact_id, percent)

    def publish_table(self) -> None:
        if self.entries and _in_prefect_task():
            from prefect.artifacts import create_table_artifact

            keys = ["step", "loss", "lr", "grad_norm", "tokens_per_s", "mfu"]
            rows = [{k: round(e[k], 6) for k in keys if k in e} for e in self.entries]
            create_table_artifact(
                rows, key=f"{self.stage}-metrics", description=f"{self.stage} metrics at each log interval"
            )


def run_torchrun(
    files: list[str], model_cfg: GPTConfig, cfg: TrainConfig, out: Path, report: ProgressReporter | None = None,
    val_files: list[str] | None = None, anneal_files: list[str] | None = None, init: Path | None = None,
) -> dict[str, Any]:  # fmt: skip
    state = out / "_state"
    state.mkdir(parents=True, exist_ok=True)
    spec = state / "train_spec.json"
    atomic_write_json(spec, {"files": files, "val_files": val_files, "anneal_files": anneal_files,
                             "init": init and str(init), "model": asdict(model_cfg),
                             "train": config_json(cfg), "out": str(out)})  # fmt: skip
    log_file = state / "train_log.jsonl"
    log_file.unlink(missing_ok=True)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={cfg.nproc}",
           "-m", "model.train_worker", str(spec)]  # fmt: skip
    log.info("train: launching %s", " ".join(cmd))
    report = report or ProgressReporter(cfg.max_steps)
    seen = 0
    with open(state / "torchrun.log", "w") as output:
        proc = subprocess.Popen(cmd, stdout=output, stderr=subprocess.STDOUT)
        while proc.poll() is None or seen < _count_lines(log_file):
            lines = log_file.read_text().splitlines() if log_file.exists() else []
            for line in lines[seen:]:
                report(json.loads(line))
            seen = len(lines)
            if proc.poll() is None:
                time.sleep(1.0)
    if proc.returncode != 0:
        tail = (state / "torchrun.log").read_text()[-3000:]
        raise RuntimeError(f"torchrun exited with {proc.returncode}; its output ends with:\n{tail}")
    return read_json(state / "train_result.json")


def _count_lines(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


def run_training(
    files: list[str], model_cfg: GPTConfig, cfg: TrainConfig, out: Path, stage: str = "train",
    val_files: list[str] | None = None, anneal_files: list[str] | None = None,
    init_state: dict[str, torch.Tensor] | None = None,
) -> dict[str, Any]:  # fmt: skip
    """Train to cfg.max_steps (resuming from out's checkpoints), from `init_state` when given."""
    report = ProgressReporter(cfg.max_steps, stage)
    # torch's RNG and thread settings are process-wide: a training started from a worker thread (an
    # experiment's parallel proxies) runs in a process of its own, so concurrent runs stay reproducible.
    if cfg.nproc > 1 or threading.current_thread() is not threading.main_thread():
        init = None
        if init_state is not None:
            import torch

            init = out / "_state" / "init.pt"
            init.parent.mkdir(parents=True, exist_ok=True)
            torch.save(init_state, init)
        result = run_torchrun(files, model_cfg, cfg, out, report, val_files, anneal_files, init)
    else:
        from model.trainer import train

        result = train(files, model_cfg, cfg, out, report, val_files=val_files, anneal_files=anneal_files,
                       init_state=init_state)  # fmt: skip
    report.publish_table()
    return result


def record_training(outcome: StageOutcome, result: dict[str, Any], prefix: str, val_name: str = "val_loss") -> None:
    """The run's history as metrics (`<prefix>_loss` ... per step, the validation curve as `val_name`)."""
    for entry in result["history"]:
        for key in ("loss", "lr", "grad_norm", "tokens_per_s", "mfu", "spike"):
            if key in entry:
                outcome.metric(f"{prefix}_{key}", entry[key], step=int(entry["step"]))
    for entry in result.get("val_history", []):
        outcome.metric(val_name, entry["val_loss"], step=int(entry["step"]))
