"""The pretraining loop: AdamW, warmup + cosine, grad clipping and accumulation, exact resume.

CPU for tests and the sample; on CUDA it uses bf16 autocast, TF32 matmuls, fused AdamW and
torch.compile. Checkpoints hold model, optimizer, RNG and data position and load with
weights_only=True.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from model.data import BatchSampler
from model.gpt import GPT, GPTConfig
from tasks.config import TrainConfig

log = logging.getLogger("crawl2model")

# Dense bf16 peak FLOP/s by device name fragment, for MFU. Unknown devices report no MFU.
PEAK_FLOPS = {
    "H200": 989e12,
    "H100": 989e12,
    "A100": 312e12,
    "L40S": 362e12,
    "A10G": 125e12,
    "L4": 121e12,
    "RTX 4090": 165e12,
    "RTX 3090": 71e12,
    "V100": 125e12,
    "T4": 65e12,
}


def pick_device(setting: str) -> torch.device:
    if setting == "cuda" or (setting == "auto" and torch.cuda.is_available()):
        return torch.device("cuda")
    return torch.device("cpu")


def peak_flops(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((v for k, v in PEAK_FLOPS.items() if k in name), None)


def lr_at(step: int, cfg: TrainConfig) -> float:
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(1, cfg.max_steps - cfg.warmup_steps)
    floor = cfg.lr * cfg.min_lr_ratio
    return floor + 0.5 * (cfg.lr - floor) * (1 + math.cos(math.pi * min(progress, 1.0)))


def make_optimizer(model: GPT, cfg: TrainConfig, device: torch.device) -> torch.optim.AdamW:
    # Weight decay on matrices only; norms and biases are not decayed.
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(0.9, 0.95), fused=device.type == "cuda")


def latest_checkpoint(ckpt_dir: Path) -> Path | None:
    found = sorted(ckpt_dir.glob("step-*.pt"))
    return found[-1] if found else None


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def train(
    train_rows: torch.Tensor,
    model_cfg: GPTConfig,
    cfg: TrainConfig,
    out: Path,
    on_log: Callable[[dict[str, float]], None] | None = None,
) -> dict[str, Any]:
    device = pick_device(cfg.device)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    model = GPT(model_cfg).to(device)
    optimizer = make_optimizer(model, cfg, device)
    sampler = BatchSampler(len(train_rows), min(cfg.batch_size, len(train_rows)), cfg.seed)
    ckpt_dir = out / "checkpoints"
    start_step, history = 0, []
    if (ckpt := latest_checkpoint(ckpt_dir)) is not None:
        state = torch.load(ckpt, map_location=device, weights_only=True)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        sampler.load_state_dict(state["sampler"])
        torch.set_rng_state(state["rng_cpu"])
        start_step, history = state["step"], state["history"]
        log.info("train: resumed from %s at step %d", ckpt.name, start_step)
    use_compile = cfg.compile == "on" or (cfg.compile == "auto" and device.type == "cuda")
    step_model = torch.compile(model) if use_compile else model
    autocast = (
        torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else torch.autocast("cpu", enabled=False)
    )
    tokens_per_step = sampler.batch_size * cfg.grad_accum * model_cfg.seq_len
    peak = peak_flops(device)
    flops_per_token = model.flops_per_token()
    t_last, steps_since = time.perf_counter(), 0

    def checkpoint(step: int) -> None:
        save_checkpoint(
            ckpt_dir / f"step-{step:07d}.pt",
            {
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "sampler": sampler.state_dict(),
                "rng_cpu": torch.get_rng_state(),
                "step": step,
                "history": history,
            },
        )
        for old in sorted(ckpt_dir.glob("step-*.pt"))[:-2]:  # keep the last two
            old.unlink()

    model.train()
    for step in range(start_step, cfg.max_steps):
        lr = lr_at(step, cfg)
        for group in optimizer.param_groups:
            group["lr"] = lr
        loss_sum = 0.0
        for _ in range(cfg.grad_accum):
            batch = train_rows[sampler.next()].to(device, non_blocking=True)
            with autocast:
                _, loss = step_model(batch[:, :-1], batch[:, 1:])
            (loss / cfg.grad_accum).backward()
            loss_sum += loss.item()
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip).item()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        steps_since += 1
        entry = {"step": step + 1, "loss": loss_sum / cfg.grad_accum, "lr": lr, "grad_norm": grad_norm}
        if (step + 1) % cfg.log_every == 0 or step + 1 == cfg.max_steps:
            if device.type == "cuda":
                torch.cuda.synchronize()
            elapsed = time.perf_counter() - t_last
            entry["tokens_per_s"] = tokens_per_step * steps_since / elapsed
            if peak:
                entry["mfu"] = entry["tokens_per_s"] * flops_per_token / peak
            t_last, steps_since = time.perf_counter(), 0
            if on_log:
                on_log(entry)
        history.append(entry)
        if (step + 1) % cfg.checkpoint_every == 0 or step + 1 == cfg.max_steps:
            checkpoint(step + 1)
    final = out / "model.pt"
    save_checkpoint(final, {"model": model.state_dict(), "config": asdict(model_cfg)})
    return {
        "history": history,
        "device": str(device),
        "compiled": use_compile,
        "params": model.num_params(),
        "tokens_per_step": tokens_per_step,
    }


def load_model(path: str | Path, device: torch.device | None = None) -> GPT:
    state = torch.load(path, map_location=device or "cpu", weights_only=True)
    model = GPT(GPTConfig(**state["config"]))
    model.load_state_dict(state["model"])
    return model.to(device or "cpu").eval()
