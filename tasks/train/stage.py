"""train: pretrain the GPT on the tokenize stage's train rows; checkpoints resume an interrupted run.

With `nproc > 1` the stage launches torchrun (DDP or FSDP) as a subprocess and follows rank 0's log
(`tasks.training_run`).
"""

from __future__ import annotations

import logging
from pathlib import Path

from model.config import TrainConfig
from storage.errors import UserError
from tasks.stage import StageInput, StageOutcome
from tasks.training_run import record_training, run_training

log = logging.getLogger("crawl2model")


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
    result = run_training(files, model_cfg, cfg, out, val_files=val_files, anneal_files=anneal_files)
    outcome = StageOutcome()
    record_training(outcome, result, "train")
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
