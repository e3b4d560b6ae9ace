"""Model sizing: Chinchilla-optimal size for a token or compute budget, and an inference-aware option.

Compute C = 6 N D. Compute-optimal training uses about 20 tokens per parameter (Hoffmann et al.
2022), so N = sqrt(C / 120). Serving many tokens favors a smaller model trained longer (Sardana et
al. 2024): the alternative here is a quarter of the parameters at the same compute (~320 tokens per
parameter). Loss estimates use the Chinchilla parametric fit L(N, D) = E + A/N^a + B/D^b.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from model.config import MODEL_PRESETS
from model.trainer import PEAK_FLOPS

TOKENS_PER_PARAM = 20.0
E, A, B, ALPHA, BETA = 1.69, 406.4, 410.7, 0.34, 0.28


def chinchilla_loss(params: float, tokens: float) -> float:
    return E + A / params**ALPHA + B / tokens**BETA


def preset_params(preset: str, vocab_size: int, seq_len: int) -> int:
    """Parameters of a preset GPT (tied embeddings, SwiGLU at 8/3 width rounded to 64), no torch needed."""
    n_layer, _, d = MODEL_PRESETS[preset]
    hidden = 64 * math.ceil(8 * d / 3 / 64)
    per_layer = 4 * d * d + 3 * d * hidden + 2 * d
    return vocab_size * d + n_layer * per_layer + d


@dataclass
class Plan:
    name: str
    params: float
    tokens: float
    flops: float
    tokens_per_param: float
    est_loss: float
    gpu_hours: float
    nearest_preset: str


def plan(
    *,
    tokens: float | None = None,
    flops: float | None = None,
    gpu_hours: float | None = None,
    gpu: str = "H100",
    mfu: float = 0.4,
    vocab_size: int = 32768,
    seq_len: int = 1024,
) -> list[Plan]:
    peak = next((v for k, v in PEAK_FLOPS.items() if k.lower() == gpu.lower()), None)
    if peak is None:
        raise ValueError(f"unknown GPU {gpu!r}; known: {', '.join(PEAK_FLOPS)}")
    if sum(x is not None for x in (tokens, flops, gpu_hours)) != 1:
        raise ValueError("give exactly one of tokens, flops, gpu_hours")
    if tokens is not None:
        params = tokens / TOKENS_PER_PARAM
        flops = 6 * params * tokens
    elif gpu_hours is not None:
        flops = gpu_hours * 3600 * peak * mfu
    assert flops is not None
    n_opt = math.sqrt(flops / (6 * TOKENS_PER_PARAM))
    plans = []
    for name, n in (("compute-optimal (Chinchilla)", n_opt), ("inference-aware (1/4 size, same compute)", n_opt / 4)):
        d = flops / (6 * n)
        nearest = min(MODEL_PRESETS, key=lambda p: abs(math.log(preset_params(p, vocab_size, seq_len) / n)))
        plans.append(Plan(name, n, d, flops, d / n, chinchilla_loss(n, d), flops / (peak * mfu) / 3600, nearest))
    return plans


def as_rows(plans: list[Plan]) -> list[dict]:
    return [asdict(p) for p in plans]
