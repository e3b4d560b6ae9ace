"""Intrinsic evaluation: validation loss, perplexity and bits per byte, with a unigram baseline.

Bits per byte divides the summed negative log-likelihood (in bits) by the UTF-8 bytes the target
tokens stand for, so models with different tokenizers compare fairly.
"""

from __future__ import annotations

import math

import numpy as np
import sentencepiece as spm
import torch

from model.data import iter_row_groups
from model.gpt import GPT


def token_byte_lengths(sp: spm.SentencePieceProcessor) -> np.ndarray:
    """UTF-8 bytes each token id stands for; control tokens (EOS, a document break) count as one."""
    lengths = np.zeros(sp.get_piece_size(), dtype=np.int64)
    for i in range(sp.get_piece_size()):
        if sp.is_byte(i) or sp.is_control(i) or sp.is_unknown(i):
            lengths[i] = 1
        else:
            lengths[i] = len(sp.id_to_piece(i).replace("\u2581", " ").encode())
    return lengths


@torch.no_grad()
def validation_nll(model: GPT, rows: torch.Tensor, batch_size: int = 32) -> tuple[float, int, torch.Tensor]:
    """(summed NLL in nats, number of targets, per-target NLL flattened)."""
    device = next(model.parameters()).device
    total, count, per_token = 0.0, 0, []
    for start in range(0, len(rows), batch_size):
        batch = rows[start : start + batch_size].to(device)
        _, nll = model(batch[:, :-1], batch[:, 1:], reduction="none")
        per_token.append(nll.cpu())
        total += float(nll.sum())
        count += nll.numel()
    return total, count, torch.cat(per_token)


def bits_per_byte(nll_nats: float, n_bytes: int) -> float:
    return nll_nats / math.log(2) / max(n_bytes, 1)


def unigram_counts(train_paths: list[str], vocab_size: int) -> torch.Tensor:
    """Target-token counts of the train split, streamed one row group at a time."""
    counts = torch.zeros(vocab_size, dtype=torch.float64)
    for rows in iter_row_groups(train_paths):
        counts += torch.bincount(torch.from_numpy(rows[:, 1:].reshape(-1)), minlength=vocab_size).double()
    return counts


def unigram_nll(counts: torch.Tensor, val_rows: torch.Tensor) -> float:
    """Summed NLL of the val targets under add-one-smoothed unigram frequencies of the train targets."""
    counts = counts + 1.0
    logp = torch.log(counts / counts.sum())
    return float(-logp[val_rows[:, 1:].reshape(-1)].sum())


def generate_samples(
    model: GPT,
    sp: spm.SentencePieceProcessor,
    prompts: list[str],
    max_new_tokens: int,
    temperature: float,
    top_k: int,
    seed: int,
    eos_id: int,
) -> list[dict[str, str]]:
    device = next(model.parameters()).device
    g = torch.Generator(device=device).manual_seed(seed)
    samples = []
    for prompt in prompts:
        idx = torch.tensor([sp.encode(prompt)], dtype=torch.long, device=device)
        out = model.generate(idx, max_new_tokens, temperature, top_k, generator=g, stop_token=eos_id)
        samples.append({"prompt": prompt, "completion": sp.decode(out[0, idx.shape[1] :].tolist())})
    return samples
