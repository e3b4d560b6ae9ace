"""Multiple-choice benchmarks scored by log-likelihood, the way lm-evaluation-harness does it.

Each item is a context and a list of continuations; a choice's score is the summed log-probability
of its continuation tokens given the context (the context+continuation string is encoded whole and
the context's tokens split off, as the harness does). `acc` takes the best summed log-probability,
`acc_norm` the best per byte of continuation. The items and their loaders are in `model.items`.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

from model.gpt import GPT
from model.items import Item

Encode = Callable[[str], list[int]]


@torch.no_grad()
def continuation_logprob(model: GPT, encode: Encode, context: str, continuation: str) -> tuple[float, bool]:
    """(summed log-probability of the continuation's tokens, whether each was the greedy choice)."""
    whole = encode(context + continuation)
    n_ctx = len(encode(context))
    n_cont = max(len(whole) - n_ctx, 1)
    tokens = whole[-(model.cfg.seq_len + 1) :]  # keep the end: the continuation and as much context as fits
    n_cont = min(n_cont, len(tokens) - 1)
    device = next(model.parameters()).device
    x = torch.tensor([tokens[:-1]], device=device)
    logprobs = F.log_softmax(model(x)[0][0], dim=-1)
    targets = torch.tensor(tokens[1:], device=device)
    picked = logprobs[-n_cont:].gather(1, targets[-n_cont:, None]).squeeze(1)
    greedy = bool((logprobs[-n_cont:].argmax(-1) == targets[-n_cont:]).all())
    return float(picked.sum()), greedy


def item_results(model: GPT, encode: Encode, items: list[Item]) -> list[dict[str, float]]:
    """Per item: correct by summed log-probability (`acc`) and by log-probability per byte (`acc_norm`)."""
    out = []
    for item in items:
        scores = [continuation_logprob(model, encode, item.context_of(i), c)[0] for i, c in enumerate(item.choices)]
        norm = [s / max(len(c.encode()), 1) for s, c in zip(scores, item.choices, strict=True)]
        out.append({"task": item.task, "item_id": item.item_id, "choices": len(item.choices),
                    "acc": float(max(range(len(scores)), key=scores.__getitem__) == item.label),
                    "acc_norm": float(max(range(len(norm)), key=norm.__getitem__) == item.label),
                    **continuous(scores, item.label)})  # fmt: skip
    return out


def continuous(scores: list[float], label: int) -> dict[str, float]:
    """Signals that still rank small models whose accuracy sits at chance: the probability of the
    gold choice (softmax over the choices' log-likelihoods) and its margin over the best other choice."""
    top = max(scores)
    weights = [math.exp(s - top) for s in scores]
    others = [s for i, s in enumerate(scores) if i != label]
    return {"p_correct": weights[label] / sum(weights), "margin": scores[label] - max(others) if others else 0.0}


def summarize(results: list[dict[str, float]]) -> dict[str, float]:
    """Accuracy and length-normalized accuracy over multiple-choice items, and the chance level."""
    if not results:
        return {"n": 0}
    n = len(results)
    out = {"n": n, "chance": sum(1 / r["choices"] for r in results) / n}
    for key in ("acc", "acc_norm", "p_correct", "margin"):
        out[key] = sum(r[key] for r in results) / n
    return out


def score_items(model: GPT, encode: Encode, items: list[Item]) -> dict[str, float]:
    return summarize(item_results(model, encode, items))


def last_word_results(model: GPT, encode: Encode, items: list[Item]) -> list[dict[str, float]]:
    """Per item: whether greedy decoding gives the last word (`acc`), and its log-probability."""
    results = [continuation_logprob(model, encode, item.context_of(0), item.choices[0]) for item in items]
    return [{"task": item.task, "item_id": item.item_id, "acc": float(greedy), "logprob": lp}
            for item, (lp, greedy) in zip(items, results, strict=True)]  # fmt: skip


def summarize_last_word(results: list[dict[str, float]]) -> dict[str, float]:
    if not results:
        return {"n": 0}
    n = len(results)
    return {"n": n, "acc": sum(r["acc"] for r in results) / n,
            "word_perplexity": math.exp(-sum(r["logprob"] for r in results) / n)}  # fmt: skip


def score_last_word(model: GPT, encode: Encode, items: list[Item]) -> dict[str, float]:
    return summarize_last_word(last_word_results(model, encode, items))
