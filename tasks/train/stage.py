"""train: pretrain the GPT on the tokenize stage's train rows; checkpoints resume an interrupted run.

With `nproc > 1` the stage launches torchrun (DDP or FSDP) as a subprocess and follows rank 0's log.
"""

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
from storage.errors import UserError
from storage.section import config_json
from storage.shards import atomic_write_json, read_json
from tasks.stage import StageInput, StageOutcome

if TYPE_CHECKING:
    from model.gpt import GPTConfig

log = logging.getLogger("crawl2model")


def _in_prefect_task() -> bool:
    from prefect.context import TaskRunContext

    return TaskRunContext.get() is not None


class ProgressReporter:
    """Logs each training log entry and, under Prefect, moves a progress artifact in the UI."""

    def __init__(self, max_steps: int):
        self.max_steps = max_steps
        self.artifact_id = None
        self.entries: list[dict[str, float]] = []

    def __call__(self, entry: dict[str, float]) -> None:
        self.entries.append(entry)
        mfu = f" mfu {entry['mfu']:.1%}" if "mfu" in entry else ""
        log.info("train: step %d/%d loss %.4f lr %.2e %.0f tok/s%s", entry["step"], self.max_steps, entry["loss"],
                 entry["lr"], entry.get("tokens_per_s", 0.0), mfu)  # fmt: skip
        if not _in_prefect_task():
            return
        from prefect.artifacts import create_progress_artifact, update_progress_artifact

        percent = 100.0 * entry["step"] / self.max_steps
        if self.artifact_id is None:
            self.artifact_id = create_progress_artifact(percent, key="train-progress", description="training steps")
        else:
            update_progress_artifact(self.artifact_id, percent)

    def publish_table(self) -> None:
        if self.entries and _in_prefect_task():
            from prefect.artifacts import create_table_artifact

            keys = ["step", "loss", "lr", "grad_norm", "tokens_per_s", "mfu"]
            rows = [{k: round(e[k], 6) for k in keys if k in e} for e in self.entries]
            create_table_artifact(rows, key="train-metrics", description="training metrics at each log interval")


def run_torchrun(
    files: list[str], model_cfg: GPTConfig, cfg: TrainConfig, out: Path, report: ProgressReporter | None = None,
    val_files: list[str] | None = None, anneal_files: list[str] | None = None,
) -> dict[str, Any]:  # fmt: skip
    state = out / "_state"
    state.mkdir(parents=True, exist_ok=True)
    spec = state / "train_spec.json"
    atomic_write_json(spec, {"files": files, "val_files": val_files, "anneal_files": anneal_files,
                             "model": asdict(model_cfg),
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


def annealing_files(tok: StageInput, cfg: TrainConfig) -> list[str]:
    """The anneal split's shards when train.anneal.fraction asks for them; a clear error when the
    tokenize output has none (mix.anneal unset, or it picked no document)."""
    if cfg.anneal.fraction == 0:
        return []
    if (rows := tok.metric_total("anneal_rows")) < cfg.batch_size:
        raise UserError(f"train.anneal.fraction={cfg.anneal.fraction} needs an anneal split of at least "
                         f"{cfg.batch_size} rows: set mix.anneal (it has {rows:.0f})")  # fmt: skip
    return [p for p in tok.files("tokens") if Path(p).name.startswith("anneal-")]


def run(inputs: dict[str, StageInput], cfg: TrainConfig, out: Path) -> StageOutcome:
    # torch is imported by a run of this stage, not by listing the stages.
    from model.gpt import GPTConfig

    tok = inputs["tokenize"]
    files = [p for p in tok.files("tokens") if Path(p).name.startswith("train-")]
    has_val = tok.metric_total("val_rows") > 0
    val_files = [p for p in tok.files("tokens") if Path(p).name.startswith("val-")] if has_val else []
    anneal_files = annealing_files(tok, cfg)
    if not tok.metric_total("train_rows"):
        # An empty input upstream: no model can be trained; evaluate reports the funnel without one.
        log.warning("train: the tokenize stage produced no training rows; no model is trained")
        return StageOutcome(info={"skipped": "no training tokens", "final_loss": None, "params": 0})
    # The embedding padded to a multiple of vocab_multiple (aligned matmuls; the extra ids never occur).
    vocab = -(-tok.info["vocab_size"] // cfg.vocab_multiple) * cfg.vocab_multiple
    model_cfg = GPTConfig(
        vocab_size=vocab, seq_len=tok.info["seq_len"], n_layer=cfg.n_layer, n_head=cfg.n_head,
        n_embd=cfg.n_embd, dropout=cfg.dropout, tie_embeddings=cfg.tie_embeddings,
    )  # fmt: skip
    warnings = repetition_warnings(cfg, tok.info["seq_len"], tok.metric_total("train_rows"))
    for warning in warnings:
        log.warning("train: %s", warning)
    report = ProgressReporter(cfg.max_steps)
    # torch's RNG and thread settings are process-wide: a training started from a worker thread (an
    # experiment's parallel proxies) runs in a process of its own, so concurrent runs stay reproducible.
    if cfg.nproc > 1 or threading.current_thread() is not threading.main_thread():
        result = run_torchrun(files, model_cfg, cfg, out, report, val_files, anneal_files)
    else:
        from model.trainer import train

        result = train(files, model_cfg, cfg, out, report, val_files=val_files, anneal_files=anneal_files)
    report.publish_table()
    outcome = StageOutcome()
    for entry in result["history"]:
        for key in ("loss", "lr", "grad_norm", "tokens_per_s", "mfu", "spike"):
            if key in entry:
                outcome.metric(f"train_{key}", entry[key], step=int(entry["step"]))
    for entry in result.get("val_history", []):
        outcome.metric("val_loss", entry["val_loss"], step=int(entry["step"]))
    outcome.metric("params", result["params"])
    outcome.metric("spikes", sum(1 for e in result["history"] if e.get("spike")))
    outcome.info = {k: v for k, v in result.items() if k not in ("history", "val_history")}
    outcome.info["final_loss"] = result["history"][-1]["loss"]
    if warnings:
        outcome.info["warnings"] = warnings
    return outcome


# Muennighoff et al. 2023: up to about 4 epochs of repeated data are nearly as good as fresh data.
MAX_USEFUL_EPOCHS = 4.0


def repetition_warnings(cfg: TrainConfig, seq_len: int, train_rows: float) -> list[str]:
    """A run that reads its corpus many times over (a small crawl, a long max_steps) says so."""
    rows_per_step = cfg.tokens_per_step // seq_len if cfg.tokens_per_step else cfg.batch_size * cfg.grad_accum
    epochs = cfg.max_steps * rows_per_step / train_rows if train_rows else 0.0
    if epochs <= MAX_USEFUL_EPOCHS:
        return []
    return [f"train.max_steps={cfg.max_steps} reads the {train_rows:.0f} training rows {epochs:.1f} times; past "
            f"about {MAX_USEFUL_EPOCHS:.0f} epochs repeated data is worth much less than fresh (Muennighoff et al. "
            "2023): more data, or fewer steps, serves better"]  # fmt: skip
