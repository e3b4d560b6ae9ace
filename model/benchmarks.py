"""Multiple-choice benchmarks scored by log-likelihood, the way lm-evaluation-harness does it.

Each item is a context and a list of continuations; a choice's score is the summed log-probability
of its continuation tokens given the context (the context+continuation string is encoded whole and
the context's tokens split off, as the harness does). `acc` takes the best summed log-probability,
`acc_norm` the best per character of the choice (its text without the delimiter before it, as the
harness's multiple-choice metric counts it; parity tested against lm-evaluation-harness itself).
The items and their loaders are in `model.items`.
"""

from __future__ import annotations

import contextlib
import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from model.gpt import GPT
from model.items import Item
from model.packing import EOS_ID

Encode = Callable[[str], list[int]]


@torch.no_grad()
def continuation_logprob(model: GPT, encode: Encode, context: str, continuation: str) -> tuple[float, bool]:
    """(summed log-probability of the continuation's tokens, whether each was the greedy choice); an
    empty context is the document start (`EOS_ID`)."""
    whole = ([] if context else [EOS_ID]) + encode(context + continuation)
    n_ctx = len(encode(context)) if context else 1
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


@dataclass(frozen=True)
class Request:
    """One (context, continuation) to score: the model's input row and how many of its last targets
    are the continuation (encoded whole and split as `continuation_logprob` does)."""

    tokens: tuple[int, ...]
    n_cont: int
    truncated: bool = False  # the context's start was cut to fit the model's window


def make_request(encode: Encode, context: str, continuation: str, seq_len: int, start_id: int = EOS_ID) -> Request:
    """Longer than the window: the context is cut from the left, as the harness does. An empty context
    (XNLI, PAWS-X) is the document start the model trained with, so every continuation token is scored
    (the harness's HFLM puts its end-of-text token there)."""
    prefix = [] if context else [start_id]
    whole = prefix + encode(context + continuation)
    n_cont = max(len(whole) - len(prefix) - len(encode(context)), 1)
    tokens = whole[-(seq_len + 1) :]
    return Request(tuple(tokens), min(n_cont, len(tokens) - 1), len(whole) > len(tokens))


@torch.no_grad()
def score_requests(model: GPT, requests: list[Request], batch_size: int = 32) -> list[tuple[float, bool]]:
    """`continuation_logprob` for many requests at once: rows padded on the right (causal attention
    keeps padding out of every real position), longest first so a batch wastes little, bf16 on CUDA.
    Requests with the same input row (an item's one-token choices, MMLU's " A".." D") share one row.
    Only the continuation positions are turned into log-probabilities (not a row x vocab per row)."""
    device = next(model.parameters()).device
    by_row: dict[tuple[int, ...], list[int]] = {}
    for i, r in enumerate(requests):
        by_row.setdefault(r.tokens[:-1], []).append(i)
    rows = sorted(by_row, key=len, reverse=True)
    out: list[tuple[float, bool]] = [(0.0, False)] * len(requests)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else contextlib.nullcontext()
    for start in range(0, len(rows), batch_size):
        batch = rows[start : start + batch_size]
        x = torch.zeros((len(batch), len(batch[0])), dtype=torch.long)
        for j, row in enumerate(batch):
            x[j, : len(row)] = torch.tensor(row)
        with autocast:
            logits = model(x.to(device))[0]
        for j, row in enumerate(batch):
            need = max(requests[i].n_cont for i in by_row[row])
            lp = F.log_softmax(logits[j, len(row) - need : len(row)].float(), dim=-1)
            for i in by_row[row]:
                r = requests[i]
                mine, targets = lp[need - r.n_cont :], torch.tensor(r.tokens[-r.n_cont :], device=lp.device)
                picked = mine.gather(1, targets[:, None]).squeeze(1)
                out[i] = (float(picked.sum()), bool((mine.argmax(-1) == targets).all()))
    return out


# OLMES's prompt for each choice's unconditional log-probability: PMI normalisation scores a choice by
# how much the question raises its probability over this, so an answer likely anywhere gains nothing.
UNCONDITIONED = "Answer:"


def item_results(model: GPT, encode: Encode, items: list[Item], batch_size: int = 32,
                 pmi: bool = False) -> list[dict[str, float]]:  # fmt: skip
    """Per item: correct by summed log-probability (`acc`), per character of the choice (`acc_norm`),
    per token (`acc_token`) and, with `pmi`, less the choice's log-probability after `Answer:` alone
    (`acc_pmi`); and the continuous signals (DataDecide's): the gold answer's probability among the
    choices (`p_correct`) and its log-probability per character (`logprob_norm`)."""
    seq_len = model.cfg.seq_len
    requests = [[make_request(encode, item.context_of(i), c, seq_len) for i, c in enumerate(item.choices)]
                for item in items]  # fmt: skip
    alone = [[make_request(encode, UNCONDITIONED, c, seq_len) for c in item.choices] for item in items] if pmi else []
    scored = iter(score_requests(model, [r for rs in requests + alone for r in rs], batch_size))
    conditional = [[next(scored)[0] for _ in rs] for rs in requests]
    unconditional = [[next(scored)[0] for _ in rs] for rs in alone]
    out = []
    for k, item in enumerate(items):
        scores = conditional[k]
        norm = [s / max(len(choice_text(c)), 1) for s, c in zip(scores, item.choices, strict=True)]
        ranked = {"acc": scores, "acc_norm": norm,
                  "acc_token": [s / r.n_cont for s, r in zip(scores, requests[k], strict=True)]}  # fmt: skip
        if pmi:
            ranked["acc_pmi"] = [s - u for s, u in zip(scores, unconditional[k], strict=True)]
        picked = {key: max(range(len(xs)), key=xs.__getitem__) for key, xs in ranked.items()}
        out.append({"task": item.task, "item_id": item.item_id, "choices": len(item.choices),
                    "truncated": float(any(r.truncated for r in requests[k])), "gold": item.label,
                    "pred": picked["acc"], "pred_norm": picked["acc_norm"],
                    **{key: float(p == item.label) for key, p in picked.items()},
                    "logprob_norm": norm[item.label], **continuous(scores, item.label)})  # fmt: skip
    return out


def choice_text(continuation: str) -> str:
    """The choice without its delimiter (the one whitespace character the loaders put before it)."""
    return continuation[1:] if continuation[:1].isspace() else continuation


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
    for key in ("acc", "acc_norm", "acc_token", "acc_pmi", "p_correct", "margin", "logprob_norm"):
        if key in results[0]:
            out[key] = sum(r[key] for r in results) / n
    out["truncated"] = sum(r.get("truncated", 0.0) for r in results) / n  # share of items whose context was cut
    return out | baselines(results)


CONSTANT = 0.9  # a model that picks one position for more than this share of items is flagged


def baselines(results: list[dict[str, Any]]) -> dict[str, Any]:
    """What a model that knows nothing scores: always the most frequent gold position (`majority`,
    BoolQ's "always yes"); and whether the model itself picks one position for > 90% of items (a
    constant predictor, whatever its accuracy: MMLU's "always A")."""
    if not results or "gold" not in results[0]:
        return {}
    n = len(results)
    golds = Counter(r["gold"] for r in results)
    out: dict[str, Any] = {"majority": golds.most_common(1)[0][1] / n}
    for key in ("pred", "pred_norm"):
        position, count = Counter(r[key] for r in results).most_common(1)[0]
        if count / n > CONSTANT:
            out[f"{key.replace('pred', 'acc')}_constant"] = f"picks {position_name(position)} for {count}/{n}"
    return out


def position_name(position: int) -> str:
    return f"choice {'ABCDEFGHIJ'[position]}" if position < 10 else f"choice {position}"


def score_items(model: GPT, encode: Encode, items: list[Item]) -> dict[str, float]:
    return summarize(item_results(model, encode, items))


def last_word_results(model: GPT, encode: Encode, items: list[Item]) -> list[dict[str, float]]:
    """Per item: whether greedy decoding gives the last word (`acc`), and its log-probability."""
    requests = [make_request(encode, item.context_of(0), item.choices[0], model.cfg.seq_len) for item in items]
    results = score_requests(model, requests)
    return [{"task": item.task, "item_id": item.item_id, "acc": float(greedy), "logprob": lp,
             "truncated": float(r.truncated)}
            for item, r, (lp, greedy) in zip(items, requests, results, strict=True)]  # fmt: skip


def summarize_last_word(results: list[dict[str, float]]) -> dict[str, float]:
    if not results:
        return {"n": 0}
    n = len(results)
    return {"n": n, "acc": sum(r["acc"] for r in results) / n,
            "word_perplexity": math.exp(-sum(r["logprob"] for r in results) / n),
            "truncated": sum(r.get("truncated", 0.0) for r in results) / n}  # fmt: skip


def score_last_word(model: GPT, encode: Encode, items: list[Item]) -> dict[str, float]:
    return summarize_last_word(last_word_results(model, encode, items))
