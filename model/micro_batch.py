"""The largest micro-batch that fits on the GPU, then gradient accumulation up to `tokens_per_step`.

Bigger micro-batches keep the GPU's matmuls large (MFU); the fused loss makes bigger ones fit. The
search halves from the whole step's rows until one forward and backward at that size runs without
running out of memory. The choice is written beside the checkpoints (`micro_batch.json`) so a resumed
run uses the same one (the data order depends on it).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path

import torch

from model.gpt import GPT

log = logging.getLogger("crawl2model")


def largest_fitting(fits: Callable[[int], bool], start: int) -> int:
    """The first of start, start/2, start/4, ... 1 for which `fits` holds (1 if none does)."""
    batch = max(1, start)
    while batch > 1 and not fits(batch):
        batch //= 2
    return batch


def cuda_fits(model: GPT, batch: int, seq_len: int, fused_loss: str) -> bool:
    """One bf16 forward and backward of `batch` rows on the model's device; False on out-of-memory."""
    device = next(model.parameters()).device
    model.fused_loss = fused_loss
    try:
        x = torch.randint(0, model.cfg.vocab_size, (batch, seq_len + 1), device=device)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            _, loss = model(x[:, :-1], x[:, 1:], return_logits=False)
        loss.backward()
        return True
    except torch.cuda.OutOfMemoryError:
        return False
    finally:
        model.zero_grad(set_to_none=True)
        torch.cuda.empty_cache()


def choose_micro_batch(model: GPT, rows_per_step: int, seq_len: int, fused_loss: str, out: Path) -> int:
    """The micro-batch for this run: the one recorded at its start, or the largest that fits now."""
    record = out / "micro_batch.json"
    if record.exists():
        return int(json.loads(record.read_text())["batch_size"])
    # 10% of memory left for the optimizer's state, created after this search.
    batch = largest_fitting(lambda b: cuda_fits(model, b + max(1, b // 10), seq_len, fused_loss), rows_per_step)
    record.parent.mkdir(parents=True, exist_ok=True)
    record.write_text(json.dumps({"batch_size": batch}))
    log.info("train: micro-batch %d rows fits (of %d per step)", batch, rows_per_step)
    return batch
