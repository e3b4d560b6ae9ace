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
        out = model.generate(idx, max_new_tokens, temperature, top_k, generator=g, stop_token=eos_id,
                             vocab_limit=sp.vocab_size())  # fmt: skip
        samples.append({"prompt": prompt, "completion": sp.decode(out[0, idx.shape[1] :].tolist())})
    return samples


@torch.no_grad()
def document_nll(model: GPT, documents: list[list[int]], start_id: int, batch_size: int = 32) -> np.ndarray:
    """Summed NLL (nats) of each document's tokens, the first predicted from `start_id` (the document
    separator the model trained with), the rest from the tokens before them in windows of the model's
    context length (non-overlapping: a window's first tokens see little context, the usual trade of
    one forward pass per seq_len tokens)."""
    seq_len = model.cfg.seq_len
    windows = [(i, ([start_id] + ids)[s : s + seq_len + 1]) for i, ids in enumerate(documents)
               for s in range(0, len(ids), seq_len)]  # fmt: skip
    device = next(model.parameters()).device
    totals = np.zeros(len(documents))
    for b in range(0, len(windows), batch_size):
        batch = windows[b : b + batch_size]
        width = max(len(w) for _, w in batch) - 1
        x = torch.zeros((len(batch), width), dtype=torch.long)
        y = torch.full((len(batch), width), -100, dtype=torch.long)  # ignored by cross_entropy: padding
        for j, (_, w) in enumerate(batch):
            x[j, : len(w) - 1], y[j, : len(w) - 1] = torch.tensor(w[:-1]), torch.tensor(w[1:])
        _, nll = model(x.to(device), y.to(device), reduction="none")
        np.add.at(totals, [i for i, _ in batch], nll.view(len(batch), width).sum(dim=1).double().cpu().numpy())
    return totals
