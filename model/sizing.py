"""Model sizing: Chinchilla-optimal size for a token or compute budget, and an inference-aware option.

Compute C = 6 N D. Compute-optimal training uses about 20 tokens per parameter (Hoffmann et al.
2022), so N = sqrt(C / 120). Serving many tokens favors a smaller model trained longer (Sardana et
al. 2024): with a compute budget the alternative is a quarter of the parameters at the same compute
(~320 tokens per parameter). A token budget is the data a team has: no plan reads more of it than
given; the smaller model trains on the same tokens, and `epochs` > 1 repeats them, with the
diminishing value of repeated data (Muennighoff et al. 2023) turned into effective tokens: repeated
data is worth U * R* * (1 - exp(-R / R*)) fresh tokens after R repetitions of U unique ones, R* ~ 15.4,
so about 4 epochs are worth nearly as much as new data and 40 are worth little more than 16.
Loss estimates use the Chinchilla parametric fit L(N, D) = E + A/N^a + B/D^b on effective tokens.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from model.config import MODEL_PRESETS
from model.trainer import PEAK_FLOPS
from storage.errors import UserError

TOKENS_PER_PARAM = 20.0
REPEAT_DECAY = 15.4  # Muennighoff et al. 2023, R*_D: repetitions after which repeated data is worth ~1/e
E, A, B, ALPHA, BETA = 1.69, 406.4, 410.7, 0.34, 0.28


def chinchilla_loss(params: float, tokens: float) -> float:
    return E + A / params**ALPHA + B / tokens**BETA


def preset_params(preset: str, vocab_size: int, seq_len: int) -> int:
    """Parameters of a preset GPT (tied embeddings, SwiGLU at 8/3 width rounded to 64), no torch needed."""
    n_layer, _, d = MODEL_PRESETS[preset]
    hidden = 64 * math.ceil(8 * d / 3 / 64)
    per_layer = 4 * d * d + 3 * d * hidden + 2 * d
    return vocab_size * d + n_layer * per_layer + d


def effective_tokens(unique: float, epochs: float) -> float:
    """Fresh-token equivalent of `epochs` passes over `unique` tokens (Muennighoff et al. 2023)."""
    repeats = max(epochs - 1.0, 0.0)
    return unique + unique * REPEAT_DECAY * (1 - math.exp(-repeats / REPEAT_DECAY))


@dataclass
class Plan:
    name: str
    params: float
    tokens: float  # tokens seen in training (unique tokens x epochs)
    flops: float
    tokens_per_param: float
    est_loss: float
    gpu_hours: float
    nearest_preset: str
    epochs: float = 1.0
    effective_tokens: float = 0.0  # what the tokens seen are worth as fresh data


def human(n: float) -> str:
    """124M, 2.0B, 350K: parameters and tokens as people write them."""
    for scale, unit in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K")):
        if abs(n) >= scale:
            return f"{n / scale:.3g}{unit}" if n / scale < 100 else f"{n / scale:.0f}{unit}"
    return f"{n:.0f}"


def plan(
    *,
    tokens: float | None = None,
    flops: float | None = None,
    gpu_hours: float | None = None,
    gpu: str = "H100",
    mfu: float = 0.4,
    vocab_size: int = 32768,
    seq_len: int = 1024,
    epochs: float = 1.0,
) -> list[Plan]:
    """Plans for one budget: `tokens` (the data available, never exceeded but by `epochs` repeats),
    `flops`, or `gpu_hours` on `gpu` at `mfu`."""
    peak = next((v for k, v in PEAK_FLOPS.items() if k.lower() == gpu.lower()), None)
    if peak is None:
        raise UserError(f"unknown GPU {gpu!r}; known: {', '.join(PEAK_FLOPS)}")
    if sum(x is not None for x in (tokens, flops, gpu_hours)) != 1:
        raise UserError("give exactly one of tokens, flops, gpu_hours")
    if epochs < 1 or (epochs != 1 and tokens is None):
        raise UserError("epochs >= 1, and only with a token budget (it repeats the data you have)")

    def make(name: str, n: float, seen: float, unique: float) -> Plan:
        effective = effective_tokens(unique, seen / unique)
        nearest = min(MODEL_PRESETS, key=lambda p: abs(math.log(preset_params(p, vocab_size, seq_len) / n)))
        return Plan(name, n, seen, 6 * n * seen, seen / n, chinchilla_loss(n, effective),
                    6 * n * seen / (peak * mfu) / 3600, nearest, seen / unique, effective)  # fmt: skip

    if tokens is not None:  # a data budget: the model the data supports, and a smaller one on the same data
        seen = tokens * epochs
        n_opt = effective_tokens(tokens, epochs) / TOKENS_PER_PARAM
        label = "compute-optimal (Chinchilla)" if epochs == 1 else f"compute-optimal, {epochs:g} epochs"
        return [make(label, n_opt, seen, tokens),
                make("inference-aware (1/4 size, same tokens)", n_opt / 4, seen, tokens)]  # fmt: skip
    flops = flops if flops is not None else gpu_hours * 3600 * peak * mfu
    n_opt = math.sqrt(flops / (6 * TOKENS_PER_PARAM))
    return [make(name, n, flops / (6 * n), flops / (6 * n))
            for name, n in (("compute-optimal (Chinchilla)", n_opt), ("inference-aware (1/4 size, same compute)",
                                                                     n_opt / 4))]  # fmt: skip


def as_rows(plans: list[Plan]) -> list[dict]:
    return [asdict(p) for p in plans]
