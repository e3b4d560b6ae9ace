"""Direct Preference Optimization (Rafailov et al. 2023) against the frozen starting (SFT) model.

loss = -log sigmoid(beta * ((log pi(chosen) - log ref(chosen)) - (log pi(rejected) - log ref(rejected))))

with log-probabilities summed over the answer's tokens (the loss mask). The reference is the model
the run starts from: its log-probabilities are computed once, before the first step, and kept with
the checkpoints, so no second model is held and a resumed run uses the same numbers. Pairs are held
in memory as (pairs, 2 [chosen, rejected], 2 [tokens, mask], seq_len + 1): preference sets are small.
Held-out pairs give the preference accuracy (the share whose implicit reward ranks chosen over
rejected; a tie counts a half, so the starting model reads 0.5) and the mean reward margin.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from model.chat import IGNORE
from model.config import TrainConfig
from model.data import inputs_and_targets
from model.gpt import GPT, GPTConfig
from model.trainer import latest_checkpoint, lr_at, make_optimizer, save_atomic

log = logging.getLogger("crawl2model")


def sequence_logps(model: GPT, rows: torch.Tensor) -> torch.Tensor:
    """Per row (tokens and mask), the summed log-probability of its trained tokens."""
    inputs, targets = inputs_and_targets(rows)
    logits, _ = model(inputs)
    trained = targets != IGNORE
    logps = torch.log_softmax(logits.float(), dim=-1).gather(-1, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    return (logps * trained).sum(-1)


def pair_logps(model: GPT, pairs: torch.Tensor) -> torch.Tensor:
    """(pairs, 2): chosen and rejected log-probabilities in one forward pass."""
    n = len(pairs)
    return sequence_logps(model, pairs.reshape(2 * n, *pairs.shape[2:])).view(n, 2)


def dpo_loss(policy: torch.Tensor, reference: torch.Tensor, beta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean loss, per-pair reward margin) from (pairs, 2) log-probabilities."""
    rewards = beta * (policy - reference)
    margin = rewards[:, 0] - rewards[:, 1]
    return -F.logsigmoid(margin).mean(), margin.detach()


@torch.no_grad()
def all_pair_logps(model: GPT, pairs: torch.Tensor, batch_size: int, device: torch.device) -> torch.Tensor:
    was_training = model.training
    model.eval()
    parts = [pair_logps(model, pairs[i : i + batch_size].to(device)).cpu() for i in range(0, len(pairs), batch_size)]
    model.train(was_training)
    return torch.cat(parts) if parts else torch.empty(0, 2)


def preference_accuracy(margin: torch.Tensor) -> float:
    """The share of pairs whose implicit reward ranks chosen over rejected, a tie counting a half."""
    return float(((margin > 0).double() + 0.5 * (margin == 0).double()).mean())


def preference_metrics(model: GPT, pairs: torch.Tensor, reference: torch.Tensor, beta: float, batch_size: int,
                       device: torch.device) -> dict[str, float]:  # fmt: skip
    """Held-out preference accuracy, mean reward margin and DPO loss."""
    loss, margin = dpo_loss(all_pair_logps(model, pairs, batch_size, device), reference, beta)
    return {"pref_accuracy": preference_accuracy(margin), "reward_margin": float(margin.mean()),
            "dpo_loss": float(loss)}  # fmt: skip


def batch_indices(n: int, step: int, batch_size: int, seed: int) -> torch.Tensor:
    """The pairs of a step: a seeded permutation per epoch, read in order (resumable from the step alone)."""
    per_epoch = max(1, n // batch_size)
    epoch, position = divmod(step, per_epoch)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 100_003 + epoch))
    return order[position * batch_size : (position + 1) * batch_size]


def _reference(model: GPT, pairs: dict[str, torch.Tensor], batch_size: int, device: torch.device,
               out: Path) -> dict[str, torch.Tensor]:  # fmt: skip
    """The starting model's log-probabilities of every pair, computed once and kept for a resume."""
    path = out / "_state" / "reference_logps.pt"
    if path.exists():
        return torch.load(path, weights_only=True)
    reference = {split: all_pair_logps(model, rows, batch_size, device) for split, rows in pairs.items()}
    save_atomic(path, reference)
    return reference


def _resume(out: Path, model: GPT, optimizer: torch.optim.Optimizer) -> tuple[int, list[dict], list[dict]]:
    ckpt = latest_checkpoint(out / "checkpoints")
    if ckpt is None:
        return 0, [], []
    state = torch.load(ckpt, map_location="cpu", weights_only=True)
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    log.info("dpo: resumed from %s at step %d", ckpt.name, state["step"])
    return state["step"], state["history"], state["val_history"]


def step_loss(model: GPT, pairs: torch.Tensor, reference: torch.Tensor, beta: float,
              nll_weight: float) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """A batch's DPO loss, plus `nll_weight` x the chosen answers' loss per token (RPO, Pang et al. 2024:
    keeps DPO from lowering the chosen answers' likelihood along with the rejected ones')."""
    policy = pair_logps(model, pairs)
    loss, margin = dpo_loss(policy, reference, beta)
    if nll_weight:
        chosen_tokens = pairs[:, 0, 1, 1:].sum(-1).clamp(min=1)
        loss = loss - nll_weight * (policy[:, 0] / chosen_tokens).mean()
    return loss, margin


def train_dpo(train_pairs: torch.Tensor, val_pairs: torch.Tensor, model_cfg: GPTConfig, cfg: TrainConfig,
              beta: float, out: Path, init_state: dict[str, torch.Tensor],
              on_log: Callable[[dict[str, float]], None] | None = None,
              nll_weight: float = 0.0) -> dict[str, Any]:  # fmt: skip
    """DPO from `init_state` to cfg.max_steps (resuming from out's checkpoints); the final model in `out`."""
    device = torch.device("cuda" if cfg.device != "cpu" and torch.cuda.is_available() else "cpu")
    torch.manual_seed(cfg.seed)
    model = GPT(model_cfg)
    model.load_state_dict(init_state)
    model = model.to(device)
    optimizer = make_optimizer(model, cfg, device)
    reference = _reference(model, {"train": train_pairs, "val": val_pairs}, cfg.batch_size, device, out)
    start, history, val_history = _resume(out, model, optimizer)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else contextlib.nullcontext()

    def held_out(step: int) -> None:
        if len(val_pairs):
            metrics = preference_metrics(model, val_pairs, reference["val"], beta, cfg.batch_size, device)
            val_history.append({"step": step, **metrics})

    if start == 0:
        held_out(0)  # the starting model: accuracy 0.5, margin 0
    model.train()
    for step in range(start, cfg.max_steps):
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, cfg)
        idx = batch_indices(len(train_pairs), step, cfg.batch_size, cfg.seed)
        with autocast:
            loss, margin = step_loss(model, train_pairs[idx].to(device), reference["train"][idx].to(device), beta,
                                     nll_weight)  # fmt: skip
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        entry = {"step": step + 1, "loss": loss.item(), "lr": lr_at(step, cfg), "grad_norm": float(grad_norm),
                 "reward_margin": float(margin.mean()), "pref_accuracy": preference_accuracy(margin)}  # fmt: skip
        history.append(entry)
        if on_log and ((step + 1) % cfg.log_every == 0 or step + 1 == cfg.max_steps):
            on_log(entry)
        if (step + 1) % (cfg.val_every or cfg.max_steps) == 0 or step + 1 == cfg.max_steps:
            held_out(step + 1)
        if (step + 1) % cfg.checkpoint_every == 0 or step + 1 == cfg.max_steps:
            state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": step + 1,
                     "history": history, "val_history": val_history}  # fmt: skip
            save_atomic(out / "checkpoints" / f"step-{step + 1:07d}.pt", state)
            for old in sorted((out / "checkpoints").glob("step-*.pt"))[:-2]:  # the last two kept, as train's
                old.unlink()
    save_atomic(out / "model.pt", {"model": model.state_dict(), "config": asdict(model_cfg)})
    return {"history": history, "val_history": val_history, "device": str(device), "params": model.num_params()}
