"""train: pretrain the GPT on the tokenize stage's train rows; checkpoints resume an interrupted run.

With `nproc > 1` the stage launches torchrun (DDP or FSDP) as a subprocess and follows rank 0's log.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from model.gpt import GPTConfig
from storage.shards import atomic_write_json, read_json
from tasks import STAGE_VERSIONS
from tasks.config import TrainConfig, config_json
from tasks.stage import StageInput, StageOutcome

VERSION = STAGE_VERSIONS["train"]
log = logging.getLogger("crawl2model")


def log_entry(entry: dict[str, float], max_steps: int) -> None:
    log.info(
        "train: step %d/%d loss %.4f lr %.2e %.0f tok/s%s",
        entry["step"],
        max_steps,
        entry["loss"],
        entry["lr"],
        entry.get("tokens_per_s", 0.0),
        f" mfu {entry['mfu']:.1%}" if "mfu" in entry else "",
    )


def run_torchrun(files: list[str], model_cfg: GPTConfig, cfg: TrainConfig, out: Path) -> dict[str, Any]:
    state = out / "_state"
    state.mkdir(parents=True, exist_ok=True)
    spec = state / "train_spec.json"
    atomic_write_json(spec, {"files": files, "model": asdict(model_cfg), "train": config_json(cfg), "out": str(out)})
    log_file = state / "train_log.jsonl"
    log_file.unlink(missing_ok=True)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={cfg.nproc}",
           "-m", "model.train_worker", str(spec)]  # fmt: skip
    log.info("train: launching %s", " ".join(cmd))
    seen = 0
    with open(state / "torchrun.log", "w") as output:
        proc = subprocess.Popen(cmd, stdout=output, stderr=subprocess.STDOUT)
        while proc.poll() is None or seen < _count_lines(log_file):
            lines = log_file.read_text().splitlines() if log_file.exists() else []
            for line in lines[seen:]:
                log_entry(json.loads(line), cfg.max_steps)
            seen = len(lines)
            if proc.poll() is None:
                time.sleep(1.0)
    if proc.returncode != 0:
        tail = (state / "torchrun.log").read_text()[-3000:]
        raise RuntimeError(f"torchrun exited with {proc.returncode}; its output ends with:\n{tail}")
    return read_json(state / "train_result.json")


def _count_lines(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


def run(inputs: dict[str, StageInput], cfg: TrainConfig, out: Path) -> StageOutcome:
    tok = inputs["tokenize"]
    files = [p for p in tok.files("tokens") if Path(p).name.startswith("train-")]
    model_cfg = GPTConfig(
        vocab_size=tok.info["vocab_size"], seq_len=tok.info["seq_len"], n_layer=cfg.n_layer, n_head=cfg.n_head,
        n_embd=cfg.n_embd, dropout=cfg.dropout, tie_embeddings=cfg.tie_embeddings,
    )  # fmt: skip
    if cfg.nproc > 1:
        result = run_torchrun(files, model_cfg, cfg, out)
    else:
        from model.trainer import train

        result = train(files, model_cfg, cfg, out, lambda entry: log_entry(entry, cfg.max_steps))
    outcome = StageOutcome()
    for entry in result["history"]:
        for key in ("loss", "lr", "grad_norm", "tokens_per_s", "mfu", "spike"):
            if key in entry:
                outcome.metric(f"train_{key}", entry[key], step=int(entry["step"]))
    outcome.metric("params", result["params"])
    outcome.metric("spikes", sum(1 for e in result["history"] if e.get("spike")))
    outcome.info = {k: v for k, v in result.items() if k != "history"}
    outcome.info["final_loss"] = result["history"][-1]["loss"]
    return outcome
