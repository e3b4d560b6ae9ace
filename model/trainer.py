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

from model.chat import IGNORE
from model.config import TrainConfig
from model.data import TokenLoader, inputs_and_targets, load_rows
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


class Batches:
    """The training rows, a micro-batch at a time: the train split, and for the last steps of an
    annealing run (`train.anneal.fraction`) the anneal split; each keeps its own position."""

    def __init__(self, train_files: list[str], anneal_files: list[str] | None, cfg: TrainConfig, ctx: DistContext):
        self.main = TokenLoader(train_files, cfg.batch_size, cfg.seed, ctx.rank, ctx.world_size)
        self.anneal_start = cfg.max_steps - round(cfg.max_steps * cfg.anneal.fraction)
        self.anneal = (TokenLoader(anneal_files, cfg.batch_size, cfg.seed, ctx.rank, ctx.world_size)
                       if anneal_files and cfg.anneal.fraction > 0 else None)  # fmt: skip

    def at(self, step: int) -> TokenLoader:
        return self.anneal if self.anneal is not None and step >= self.anneal_start else self.main

    def state_dict(self) -> dict[str, Any]:
        anneal = {"anneal_loader": self.anneal.state_dict()} if self.anneal else {}
        return {"loader": self.main.state_dict(), **anneal}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.main.load_state_dict(state["loader"])
        if self.anneal is not None and "anneal_loader" in state:
            self.anneal.load_state_dict(state["anneal_loader"])


class Throughput:
    """Tokens/s (and MFU where the device's peak is known) since the last logged step."""

    def __init__(self, tokens_per_step: int, peak: float | None, flops_per_token: float, world_size: int):
        self.tokens_per_step, self.peak, self.flops_per_token = tokens_per_step, peak, flops_per_token
        self.world_size, self.since, self.steps = world_size, time.perf_counter(), 0

    def measure(self, entry: dict[str, float], now: float) -> None:
        entry["tokens_per_s"] = self.tokens_per_step * self.steps / (now - self.since)
        if self.peak:
            entry["mfu"] = entry["tokens_per_s"] * self.flops_per_token / (self.peak * self.world_size)
        self.since, self.steps = now, 0


def unwrapped(model: torch.nn.Module) -> GPT:
    """The GPT inside a DDP wrapper (FSDP shards it in place)."""
    return getattr(model, "module", model)


def step_scope(step: int) -> contextlib.AbstractContextManager:
    """Everything one optimizer step does runs inside this: a profiler label (the sync benchmark and
    the host-read test hook in here)."""
    return torch.profiler.record_function(f"train step {step}")


def fit_micro_batch(cfg: TrainConfig, model: GPT, ctx: DistContext, out: Path) -> TrainConfig:
    """train.micro_batch=auto on CUDA: the largest micro-batch that fits, tokens per step kept."""
    if cfg.micro_batch != "auto" or ctx.device.type != "cuda":
        return cfg
    seq_len = model.cfg.seq_len
    rows = (cfg.tokens_per_step or cfg.batch_size * cfg.grad_accum * seq_len) // seq_len
    batch = choose_micro_batch(model, max(1, rows // ctx.world_size), seq_len, resolve_fused_loss(cfg, ctx.device), out)
    tokens = cfg.tokens_per_step or cfg.batch_size * cfg.grad_accum * seq_len * ctx.world_size
    return cfg.model_copy(update={"batch_size": batch, "tokens_per_step": tokens})


def resume(ckpt: Path | None, model: torch.nn.Module, optimizer: torch.optim.Optimizer, batches: Batches,
           spikes: SpikeDetector, ctx: DistContext) -> tuple[int, list[dict], list[dict]]:  # fmt: skip
    """Load the last checkpoint into everything built before it: (first step, history, validation history)."""
    if ckpt is None:
        return 0, [], []
    state = torch.load(ckpt, map_location="cpu", weights_only=True)
    set_state_dict(model, optimizer, model_state_dict=state["model"], optim_state_dict=state["optimizer"],
                   options=StateDictOptions(full_state_dict=True))  # fmt: skip
    batches.load_state_dict(state)
    spikes.load_state_dict(state["spikes"])
    restore_rng(state, ctx)
    if ctx.is_main:
        log.info("train: resumed from %s at step %d", ckpt.name, state["step"])
    return state["step"], state["history"], state.get("val_history", [])


def forward_backward(model: torch.nn.Module, compiled: torch.nn.Module, loader: TokenLoader, accum: int,
                     autocast: contextlib.AbstractContextManager, device: torch.device) -> torch.Tensor:  # fmt: skip
    """One optimizer step's micro-batches; the mean loss, still on the device."""
    loss_sum = torch.zeros((), device=device)
    for micro in range(accum):
        batch = loader.next()
        # From pinned memory the copy is queued like a kernel and the host runs on ahead of the GPU;
        # from pageable memory CUDA may first wait for the stream to stage it (a host sync per micro-batch).
        batch = batch.pin_memory().to(device, non_blocking=True) if device.type == "cuda" else batch
        # DDP: all-reduce gradients only on the last micro-batch.
        last = micro == accum - 1 or not hasattr(model, "no_sync")
        with contextlib.nullcontext() if last else model.no_sync():
            with autocast:
                _, loss = compiled(*inputs_and_targets(batch), return_logits=False)
            (loss / accum).backward()
        loss_sum += loss.detach()
    return loss_sum / accum


def flush(pending: list[tuple[int, float, torch.Tensor, torch.Tensor]], history: list[dict], spikes: SpikeDetector,
          meter: Throughput, cfg: TrainConfig, ctx: DistContext, on_log: Callable | None) -> bool:  # fmt: skip
    """Turn pending steps into history entries (one host read, one all-reduce); True if the last spiked."""
    losses = mean_across_ranks(torch.stack([loss for _, _, loss, _ in pending]).double(), ctx).tolist()
    norms = torch.stack([norm for _, _, _, norm in pending]).double().tolist()
    now, spike = time.perf_counter(), False
    for (step, lr, _, _), loss_value, grad_norm in zip(pending, losses, norms, strict=True):
        entry: dict[str, float] = {"step": step, "loss": loss_value, "lr": lr, "grad_norm": grad_norm}
        spike = spikes.is_spike(loss_value)
        if spike:
            entry["spike"] = 1.0
            log.warning("train: loss spike at step %d: %.4f vs running mean %.4f%s", step, loss_value, spikes.mean,
                        " (step skipped)" if cfg.skip_spikes else "")  # fmt: skip
        if step % cfg.log_every == 0 or step == cfg.max_steps:
            meter.measure(entry, now)
            if on_log and ctx.is_main:
                on_log(entry)
        history.append(entry)
    pending.clear()
    return spike


@torch.no_grad()
def validate(model: torch.nn.Module, rows: torch.Tensor, batch_size: int, autocast, device: torch.device) -> float:
    """Mean loss per token on the fixed validation rows (every rank computes it: FSDP needs all of them)."""
    model.eval()
    total, count = torch.zeros((), device=device, dtype=torch.float64), 0
    for start in range(0, len(rows), batch_size):
        inputs, targets = inputs_and_targets(rows[start : start + batch_size].to(device))
        with autocast:
            _, loss = model(inputs, targets, reduction="sum", return_logits=False)
        total += loss.double()
        count += int((targets != IGNORE).sum())
    model.train()
    return float(total) / count


def save_checkpoint(out: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, state: dict[str, Any],
                    milestone: dict[str, Any] | None, ctx: DistContext) -> None:  # fmt: skip
    """Every rank joins the gather; rank 0 writes the step's checkpoint (the last two are kept) and,
    at a milestone, the weights with the model config (what scoring the metric-vs-tokens curve needs)."""
    msd, osd = get_state_dict(model, optimizer, options=FULL)
    if ctx.is_main:
        name = f"step-{state['step']:07d}.pt"
        save_atomic(out / "checkpoints" / name, {"model": msd, "optimizer": osd, **state})
        for old in sorted((out / "checkpoints").glob("step-*.pt"))[:-2]:
            old.unlink()
        if milestone is not None:
            save_atomic(out / "milestones" / name, {"model": msd, "config": milestone})
    barrier(ctx)


def train(
    train_files: list[str],
    model_cfg: GPTConfig,
    cfg: TrainConfig,
    out: Path,
    on_log: Callable[[dict[str, float]], None] | None = None,
    ctx: DistContext | None = None,
    val_files: list[str] | None = None,
    anneal_files: list[str] | None = None,
    init_state: dict[str, torch.Tensor] | None = None,
) -> dict[str, Any]:
    """Train (or resume) to `cfg.max_steps`; checkpoints, then the final model, under `out`.
    `init_state`: start from these weights (fine-tuning) instead of a fresh initialisation.

    The whole run in one function, top-down, as nanoGPT's train.py reads: set-up, resume, then the
    step loop with its phases named. (The only function allowed past 60 lines: tests/test_layout.py.)
    """
    ctx = ctx or setup(cfg.device)
    device = ctx.device

    # --- set-up, in the order the seeded RNG expects: model, optimizer, data -----------------------------
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    gpt = GPT(model_cfg)
    if init_state is not None:
        gpt.load_state_dict(init_state)
    gpt = gpt.to(device)
    cfg = fit_micro_batch(cfg, gpt, ctx, out)
    model = wrap(gpt, cfg.strategy, ctx)  # the one model handle from here on (DDP, FSDP or the GPT itself)
    optimizer = make_optimizer(model, cfg, device)
    batches = Batches(train_files, anneal_files, cfg, ctx)
    spikes = SpikeDetector(cfg.spike_factor, max(cfg.warmup_steps, 10))
    accum = grad_accum_steps(cfg, model_cfg.seq_len, ctx.world_size)
    # A fixed slice of the held-out split, scored every `val_every` steps: the validation curve.
    val_rows = load_rows(val_files, cfg.val_rows) if val_files and cfg.val_every else None

    # --- resume: after everything it restores exists, before anything compiles ----------------------------
    start, history, val_history = resume(latest_checkpoint(out / "checkpoints"), model, optimizer, batches, spikes, ctx)

    # --- compile and autocast on CUDA; throughput bookkeeping ----------------------------------------------
    use_compile = cfg.compile == "on" or (cfg.compile == "auto" and device.type == "cuda")
    unwrapped(model).fused_loss, unwrapped(model).loss_chunk_rows = resolve_fused_loss(cfg, device), cfg.loss_chunk_rows
    compiled = torch.compile(model) if use_compile else model
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else contextlib.nullcontext()
    tokens_per_step = cfg.batch_size * accum * model_cfg.seq_len * ctx.world_size
    meter = Throughput(tokens_per_step, peak_flops(device), unwrapped(model).flops_per_token(), ctx.world_size)
    # Per-step loss and grad norm wait on the device until a flush (log and checkpoint steps).
    read_every_step, pending = reads_every_step(cfg, device), []

    model.train()
    for step in range(start, cfg.max_steps):
        with step_scope(step + 1):
            # schedule: the learning rate of this step
            lr = lr_at(step, cfg)
            for group in optimizer.param_groups:
                group["lr"] = lr
            # data, forward and backward over the micro-batches (gradient accumulation)
            loss = forward_backward(model, compiled, batches.at(step), accum, autocast, device)
            # clip
            grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            grad_norm = grad_norm.full_tensor() if hasattr(grad_norm, "full_tensor") else grad_norm
            pending.append((step + 1, lr, loss, grad_norm.detach()))
            meter.steps += 1
            # log: read the pending values (a host sync on a GPU) only at log and checkpoint steps
            log_step = (step + 1) % cfg.log_every == 0 or step + 1 == cfg.max_steps
            milestone = bool(cfg.milestone_every and (step + 1) % cfg.milestone_every == 0)
            checkpoint_step = (step + 1) % cfg.checkpoint_every == 0 or step + 1 == cfg.max_steps or milestone
            spiked = False
            if read_every_step or log_step or checkpoint_step:
                spiked = flush(pending, history, spikes, meter, cfg, ctx, on_log)
            # step the optimizer (a loss spike skips the update when train.skip_spikes asks)
            if not (spiked and cfg.skip_spikes):
                optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            # evaluate on the validation rows
            if val_rows is not None and ((step + 1) % cfg.val_every == 0 or step + 1 == cfg.max_steps):
                val_loss = validate(model, val_rows, cfg.batch_size, autocast, device)
                val_history.append({"step": step + 1, "val_loss": val_loss})
            # checkpoint: everything a resume needs to continue as if never stopped
            if checkpoint_step:
                state = {**batches.state_dict(), "spikes": spikes.state_dict(), **rng_state(device), "step": step + 1,
                         "history": history, "val_history": val_history}  # fmt: skip
                save_checkpoint(out, model, optimizer, state, asdict(model_cfg) if milestone else None, ctx)

    # --- the final model ------------------------------------------------------------------------------------
    msd, _ = get_state_dict(model, optimizer, options=FULL)
    if ctx.is_main:
        save_atomic(out / "model.pt", {"model": msd, "config": asdict(model_cfg)})
    barrier(ctx)
    return {"history": history, "val_history": val_history, "device": str(device), "compiled": use_compile,
            "params": unwrapped(model).num_params(), "tokens_per_step": tokens_per_step, "grad_accum": accum,
            "world_size": ctx.world_size, "strategy": cfg.strategy if ctx.distributed else "single"}  # fmt: skip


def load_model(path: str | Path, device: torch.device | None = None) -> GPT:
    state = torch.load(path, map_location=device or "cpu", weights_only=True)
    model = GPT(GPTConfig(**state["config"]))
    model.load_state_dict(state["model"])
    return model.to(device or "cpu").eval()
