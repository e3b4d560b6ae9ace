"""The pretraining loop: AdamW, warmup + cosine, clipping, accumulation, spike detection, exact resume.

CPU for tests and the sample; on CUDA it uses bf16 autocast, TF32 matmuls, fused AdamW and
torch.compile. Under torchrun it trains data-parallel (DDP or FSDP). Checkpoints hold the full model
and optimizer state, the RNG and the data position, are written atomically by rank 0, and load
with weights_only=True on any number of ranks.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from torch.distributed.checkpoint.state_dict import StateDictOptions, get_state_dict, set_state_dict

from model.config import TrainConfig
from model.data import TokenLoader, load_rows
from model.distributed import DistContext, barrier, mean_across_ranks, setup, wrap
from model.gpt import GPT, GPTConfig
from model.loss import liger_usable
from model.micro_batch import choose_micro_batch

log = logging.getLogger("crawl2model")

# Dense bf16 peak FLOP/s by device name fragment, for MFU. Unknown devices report no MFU.
PEAK_FLOPS = {
    "H200": 989e12, "H100": 989e12, "A100": 312e12, "L40S": 362e12, "A10G": 125e12, "L4": 121e12,
    "RTX 4090": 165e12, "RTX 3090": 71e12, "V100": 125e12, "T4": 65e12,
}  # fmt: skip


def peak_flops(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((v for k, v in PEAK_FLOPS.items() if k in name), None)


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Linear warmup, then cosine to the floor, or (wsd) flat at the peak until a linear decay to
    the floor over the last `decay_fraction` of steps."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    floor = cfg.lr * cfg.min_lr_ratio
    if cfg.schedule == "wsd":
        decay_steps = max(1, round(cfg.max_steps * cfg.decay_fraction))
        into_decay = min(1.0, max(0, step + 1 - (cfg.max_steps - decay_steps)) / decay_steps)
        return cfg.lr - (cfg.lr - floor) * into_decay
    progress = (step - cfg.warmup_steps) / max(1, cfg.max_steps - cfg.warmup_steps)
    return floor + 0.5 * (cfg.lr - floor) * (1 + math.cos(math.pi * min(progress, 1.0)))


def grad_accum_steps(cfg: TrainConfig, seq_len: int, world_size: int) -> int:
    """Micro-batches per optimizer step: from tokens_per_step when given, else grad_accum."""
    if cfg.tokens_per_step is None:
        return cfg.grad_accum
    return max(1, math.ceil(cfg.tokens_per_step / (cfg.batch_size * seq_len * world_size)))


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig, device: torch.device) -> torch.optim.AdamW:
    # Weight decay on matrices only; norms and biases are not decayed.
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": cfg.weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]
    # The fused kernel (CUDA, and CPU since torch 2.4) updates each tensor in one pass instead of a
    # dozen elementwise ops: about 4x faster on CPU, where the update is memory-bound.
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(0.9, 0.95), fused=device.type in ("cuda", "cpu"))


def resolve_fused_loss(cfg: TrainConfig, device: torch.device) -> str:
    """auto: Liger's fused kernel where installed and working, else our chunked loss, on CUDA; the plain
    loss on CPU."""
    if cfg.fused_loss != "auto":
        return cfg.fused_loss
    if device.type != "cuda":
        return "off"
    return "liger" if liger_usable(str(device)) else "chunked"


def latest_checkpoint(ckpt_dir: Path) -> Path | None:
    found = sorted(ckpt_dir.glob("step-*.pt"))
    return found[-1] if found else None


def save_atomic(path: Path, state: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


FULL = StateDictOptions(full_state_dict=True, cpu_offload=True)


def rng_state(device: torch.device) -> dict[str, torch.Tensor]:
    state = {"rng_cpu": torch.get_rng_state()}
    if device.type == "cuda":
        state["rng_cuda"] = torch.cuda.get_rng_state(device)
    return state


def restore_rng(state: dict[str, Any], ctx: DistContext) -> None:
    """Rank 0 gets its saved generators back; other ranks reseed from (seed, rank, step)."""
    if ctx.is_main:
        torch.set_rng_state(state["rng_cpu"])
        if "rng_cuda" in state and ctx.device.type == "cuda":
            torch.cuda.set_rng_state(state["rng_cuda"], ctx.device)
    else:
        torch.manual_seed(hash((state["step"], ctx.rank)) % 2**31)


class SpikeDetector:
    """Flags a step whose loss exceeds `factor` x the running mean of recent losses."""

    def __init__(self, factor: float | None, warmup: int):
        self.factor, self.warmup, self.mean, self.seen = factor, warmup, 0.0, 0

    def is_spike(self, loss: float) -> bool:
        spike = self.factor is not None and self.seen >= self.warmup and loss > self.factor * self.mean
        if not spike:
            self.mean = loss if self.seen == 0 else 0.9 * self.mean + 0.1 * loss
            self.seen += 1
        return spike

    def state_dict(self) -> dict[str, float]:
        return {"mean": self.mean, "seen": self.seen}

    def load_state_dict(self, state: dict[str, float]) -> None:
        self.mean, self.seen = state["mean"], int(state["seen"])


def reads_every_step(cfg: TrainConfig, device: torch.device) -> bool:
    """Per-step loss and grad norm stay on the device until a flush (log and checkpoint steps): reading
    them every step is a host sync that drains the GPU's queue. Skipping spikes needs the loss before
    the update, so it (and the CPU, where there is no queue) reads every step."""
    return cfg.skip_spikes or device.type != "cuda"


class Trainer:
    """One training run: built in the order the seeded RNG expects, resumed from the last checkpoint,
    then stepped to `max_steps`. Per-step loss and grad norm wait in `pending` until a flush."""

    def __init__(self, train_files: list[str], model_cfg: GPTConfig, cfg: TrainConfig, out: Path,
                 on_log: Callable[[dict[str, float]], None] | None, ctx: DistContext,
                 val_files: list[str] | None = None, anneal_files: list[str] | None = None):  # fmt: skip
        self.cfg, self.model_cfg, self.ctx, self.on_log = cfg, model_cfg, ctx, on_log
        self.device = device = ctx.device
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        torch.manual_seed(cfg.seed)
        if device.type == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
        self.raw = GPT(model_cfg).to(device)
        if cfg.micro_batch == "auto" and device.type == "cuda":
            rows = (cfg.tokens_per_step or cfg.batch_size * cfg.grad_accum * model_cfg.seq_len) // model_cfg.seq_len
            batch = choose_micro_batch(self.raw, max(1, rows // ctx.world_size), model_cfg.seq_len,
                                       resolve_fused_loss(cfg, device), out)  # fmt: skip
            tokens = cfg.tokens_per_step or cfg.batch_size * cfg.grad_accum * model_cfg.seq_len * ctx.world_size
            self.cfg = cfg = cfg.model_copy(update={"batch_size": batch, "tokens_per_step": tokens})
        self.model = wrap(self.raw, cfg.strategy, ctx)
        self.optimizer = make_optimizer(self.model, cfg, device)
        self.loader = TokenLoader(train_files, cfg.batch_size, cfg.seed, ctx.rank, ctx.world_size)
        # Annealing: from `anneal_start` on, batches come from the anneal split (its own position).
        self.anneal_start = cfg.max_steps - round(cfg.max_steps * cfg.anneal.fraction)
        self.anneal_loader = (TokenLoader(anneal_files, cfg.batch_size, cfg.seed, ctx.rank, ctx.world_size)
                              if anneal_files and cfg.anneal.fraction > 0 else None)  # fmt: skip
        self.spikes = SpikeDetector(cfg.spike_factor, max(cfg.warmup_steps, 10))
        self.accum = grad_accum_steps(cfg, model_cfg.seq_len, ctx.world_size)
        self.out, self.ckpt_dir = out, out / "checkpoints"
        self.start_step, self.history, self.val_history = 0, [], []
        # A fixed slice of the held-out split, scored every `val_every` steps: the validation curve.
        self.val_rows = load_rows(val_files, cfg.val_rows) if val_files and cfg.val_every else None
        self.pending: list[tuple[int, float, torch.Tensor, torch.Tensor]] = []

    def resume(self) -> None:
        if (ckpt := latest_checkpoint(self.ckpt_dir)) is None:
            return
        state = torch.load(ckpt, map_location="cpu", weights_only=True)
        set_state_dict(self.model, self.optimizer, model_state_dict=state["model"],
                       optim_state_dict=state["optimizer"], options=StateDictOptions(full_state_dict=True))  # fmt: skip
        self.loader.load_state_dict(state["loader"])
        if self.anneal_loader is not None and "anneal_loader" in state:
            self.anneal_loader.load_state_dict(state["anneal_loader"])
        self.spikes.load_state_dict(state["spikes"])
        restore_rng(state, self.ctx)
        self.start_step, self.history = state["step"], state["history"]
        self.val_history = state.get("val_history", [])
        if self.ctx.is_main:
            log.info("train: resumed from %s at step %d", ckpt.name, self.start_step)

    def prepare_steps(self) -> None:
        """Compile and autocast on CUDA; throughput bookkeeping for tokens/s and MFU."""
        cfg, device = self.cfg, self.device
        self.use_compile = cfg.compile == "on" or (cfg.compile == "auto" and device.type == "cuda")
        self.raw.fused_loss, self.raw.loss_chunk_rows = resolve_fused_loss(cfg, device), cfg.loss_chunk_rows
        self.step_model = torch.compile(self.model) if self.use_compile else self.model
        self.autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda"
                         else contextlib.nullcontext())  # fmt: skip
        self.tokens_per_step = cfg.batch_size * self.accum * self.model_cfg.seq_len * self.ctx.world_size
        self.peak, self.flops_per_token = peak_flops(device), self.raw.flops_per_token()
        self.t_last, self.steps_since = time.perf_counter(), 0
        self.read_every_step = reads_every_step(cfg, device)

    def checkpoint(self, step: int) -> None:
        # Every rank joins the gather; rank 0 writes.
        msd, osd = get_state_dict(self.model, self.optimizer, options=FULL)
        if self.ctx.is_main:
            save_atomic(self.ckpt_dir / f"step-{step:07d}.pt", {
                "model": msd, "optimizer": osd, "loader": self.loader.state_dict(),
                **({"anneal_loader": self.anneal_loader.state_dict()} if self.anneal_loader else {}),
                "spikes": self.spikes.state_dict(), **rng_state(self.device), "step": step, "history": self.history,
                "val_history": self.val_history,
            })  # fmt: skip
            for old in sorted(self.ckpt_dir.glob("step-*.pt"))[:-2]:  # keep the last two
                old.unlink()
            if self.cfg.milestone_every and step % self.cfg.milestone_every == 0:
                # Weights only (a third of a checkpoint): what scoring the metric-vs-tokens curve needs.
                weights = {"model": msd, "config": asdict(self.model_cfg)}
                save_atomic(self.out / "milestones" / f"step-{step:07d}.pt", weights)
        barrier(self.ctx)

    def flush(self) -> bool:
        """Turn pending steps into history entries (one sync, one all-reduce); True if the last spiked."""
        losses = mean_across_ranks(torch.stack([loss for _, _, loss, _ in self.pending]).double(), self.ctx).tolist()
        norms = torch.stack([norm for _, _, _, norm in self.pending]).double().tolist()
        now, spike = time.perf_counter(), False
        for (step, lr, _, _), loss_value, grad_norm in zip(self.pending, losses, norms, strict=True):
            entry: dict[str, float] = {"step": step, "loss": loss_value, "lr": lr, "grad_norm": grad_norm}
            spike = self.spikes.is_spike(loss_value)
            if spike:
                entry["spike"] = 1.0
                log.warning("train: loss spike at step %d: %.4f vs running mean %.4f%s", step, loss_value,
                            self.spikes.mean, " (step skipped)" if self.cfg.skip_spikes else "")  # fmt: skip
            if step % self.cfg.log_every == 0 or step == self.cfg.max_steps:
                self._log_throughput(entry, now)
            self.history.append(entry)
        self.pending.clear()
        return spike

    def _log_throughput(self, entry: dict[str, float], now: float) -> None:
        entry["tokens_per_s"] = self.tokens_per_step * self.steps_since / (now - self.t_last)
        if self.peak:
            entry["mfu"] = entry["tokens_per_s"] * self.flops_per_token / (self.peak * self.ctx.world_size)
        self.t_last, self.steps_since = now, 0
        if self.on_log and self.ctx.is_main:
            self.on_log(entry)

    def loader_at(self, step: int) -> TokenLoader:
        annealing = self.anneal_loader is not None and step >= self.anneal_start
        return self.anneal_loader if annealing else self.loader

    def to_device(self, batch: torch.Tensor) -> torch.Tensor:
        """From pinned memory the copy is queued like a kernel and the host runs on ahead of the GPU; from
        pageable memory CUDA may first wait for the stream to stage it (a host sync per micro-batch)."""
        if self.device.type != "cuda":
            return batch
        return batch.pin_memory().to(self.device, non_blocking=True)

    def forward_backward(self, step: int) -> torch.Tensor:
        """One optimizer step's micro-batches; returns the mean loss (still on the device)."""
        loss_sum = torch.zeros((), device=self.device)
        loader = self.loader_at(step)
        for micro in range(self.accum):
            batch = self.to_device(loader.next())
            # DDP: all-reduce gradients only on the last micro-batch.
            last = micro == self.accum - 1 or not hasattr(self.model, "no_sync")
            with contextlib.nullcontext() if last else self.model.no_sync():
                with self.autocast:
                    _, loss = self.step_model(batch[:, :-1], batch[:, 1:], return_logits=False)
                (loss / self.accum).backward()
            loss_sum += loss.detach()
        return loss_sum / self.accum

    def step(self, step: int) -> None:
        cfg = self.cfg
        lr = lr_at(step, cfg)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        loss = self.forward_backward(step)
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
        grad_norm = grad_norm.full_tensor() if hasattr(grad_norm, "full_tensor") else grad_norm
        self.pending.append((step + 1, lr, loss, grad_norm.detach()))
        self.steps_since += 1
        log_step = (step + 1) % cfg.log_every == 0 or step + 1 == cfg.max_steps
        checkpoint_step = ((step + 1) % cfg.checkpoint_every == 0 or step + 1 == cfg.max_steps
                           or bool(cfg.milestone_every and (step + 1) % cfg.milestone_every == 0))  # fmt: skip
        spiked = self.flush() if self.read_every_step or log_step or checkpoint_step else False
        if not (spiked and cfg.skip_spikes):
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        if self.val_rows is not None and ((step + 1) % cfg.val_every == 0 or step + 1 == cfg.max_steps):
            self.validate(step + 1)
        if checkpoint_step:
            self.checkpoint(step + 1)

    @torch.no_grad()
    def validate(self, step: int) -> None:
        """Mean loss on the fixed validation rows (every rank computes it: FSDP needs all of them)."""
        self.model.eval()
        total, count = torch.zeros((), device=self.device, dtype=torch.float64), 0
        for start in range(0, len(self.val_rows), self.cfg.batch_size):
            batch = self.val_rows[start : start + self.cfg.batch_size].to(self.device)
            with self.autocast:
                _, loss = self.model(batch[:, :-1], batch[:, 1:], reduction="sum", return_logits=False)
            total += loss.double()
            count += batch[:, 1:].numel()
        self.model.train()
        self.val_history.append({"step": step, "val_loss": float(total) / count})

    def finish(self) -> dict[str, Any]:
        msd, _ = get_state_dict(self.model, self.optimizer, options=FULL)
        if self.ctx.is_main:
            save_atomic(self.out / "model.pt", {"model": msd, "config": asdict(self.model_cfg)})
        barrier(self.ctx)
        return {"history": self.history, "val_history": self.val_history, "device": str(self.device),
                "compiled": self.use_compile, "params": self.raw.num_params(), "tokens_per_step": self.tokens_per_step,
                "grad_accum": self.accum, "world_size": self.ctx.world_size,
                "strategy": self.cfg.strategy if self.ctx.distributed else "single"}  # fmt: skip


def train(
    train_files: list[str],
    model_cfg: GPTConfig,
    cfg: TrainConfig,
    out: Path,
    on_log: Callable[[dict[str, float]], None] | None = None,
    ctx: DistContext | None = None,
    val_files: list[str] | None = None,
    anneal_files: list[str] | None = None,
) -> dict[str, Any]:
    """Train (or resume) to `cfg.max_steps`; checkpoints, then the final model, under `out`."""
    trainer = Trainer(train_files, model_cfg, cfg, out, on_log, ctx or setup(cfg.device), val_files, anneal_files)
    trainer.resume()
    trainer.prepare_steps()
    trainer.model.train()
    for step in range(trainer.start_step, cfg.max_steps):
        trainer.step(step)
    return trainer.finish()


def load_model(path: str | Path, device: torch.device | None = None) -> GPT:
    state = torch.load(path, map_location=device or "cpu", weights_only=True)
    model = GPT(GPTConfig(**state["config"]))
    model.load_state_dict(state["model"])
    return model.to(device or "cpu").eval()
