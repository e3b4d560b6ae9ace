"""train: pretrain the GPT on the tokenize stage's train rows; checkpoints resume an interrupted run."""

from __future__ import annotations

import logging
from pathlib import Path

from model.data import load_rows
from model.gpt import GPTConfig
from model.trainer import train
from tasks import STAGE_VERSIONS
from tasks.config import TrainConfig
from tasks.stage import StageInput, StageOutcome

VERSION = STAGE_VERSIONS["train"]
log = logging.getLogger("crawl2model")


def run(inputs: dict[str, StageInput], cfg: TrainConfig, out: Path) -> StageOutcome:
    tok = inputs["tokenize"]
    rows = load_rows([p for p in tok.files("tokens") if Path(p).name.startswith("train-")])
    model_cfg = GPTConfig(
        vocab_size=tok.info["vocab_size"],
        seq_len=tok.info["seq_len"],
        n_layer=cfg.n_layer,
        n_head=cfg.n_head,
        n_embd=cfg.n_embd,
        dropout=cfg.dropout,
        tie_embeddings=cfg.tie_embeddings,
    )

    def on_log(entry: dict[str, float]) -> None:
        log.info(
            "train: step %d/%d loss %.4f lr %.2e %.0f tok/s",
            entry["step"],
            cfg.max_steps,
            entry["loss"],
            entry["lr"],
            entry.get("tokens_per_s", 0.0),
        )

    result = train(rows, model_cfg, cfg, out, on_log)
    outcome = StageOutcome()
    for entry in result["history"]:
        for key in ("loss", "lr", "grad_norm", "tokens_per_s", "mfu"):
            if key in entry:
                outcome.metric(f"train_{key}", entry[key], step=int(entry["step"]))
    outcome.metric("params", result["params"])
    outcome.info = {k: v for k, v in result.items() if k != "history"}
    outcome.info["final_loss"] = result["history"][-1]["loss"]
    return outcome
