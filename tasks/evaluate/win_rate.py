"""Pairwise win rate against a reference model's answers, judged by an LLM, length-controlled.

For each prompt the judge sees the instruction and two responses, in an order drawn per prompt (a
judge's position bias then averages out), and ends with `Winner: A` or `Winner: B`; anything else is
malformed, counted and left out. The win rate is the share of prompts won. Judges prefer longer
answers, so, as AlpacaEval 2 does, a logistic model of the outcome on the length difference,
P(win) = sigmoid(a + b * tanh(d / sd(d))) with d the difference in characters, gives the
length-controlled win rate sigmoid(a): the rate at equal length. Both carry bootstrap intervals over
prompts. Answers are cached in the workdir by (template, judge model, prompt and responses).
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

import numpy as np

from model.intervals import LEVEL, REPLICATES, SEED
from tasks.llm_endpoint import AnswerCache, ChatClient, ask_all, preflight, text_hash

SETTING = "evaluate.judge"
TEMPLATE = """Two assistants answered the same instruction. Decide which response follows the instruction \
better: every requirement it states met, and the answer correct and useful. Ignore which one comes first, \
and do not prefer a response for being longer.

Instruction:
<<<
{instruction}
>>>

Response A:
<<<
{a}
>>>

Response B:
<<<
{b}
>>>

Explain in one or two sentences, then end with a final line of exactly this form:
Winner: <A or B>"""
WINNER = re.compile(r"^[\s*_#>]*winner[\s*_]*:[\s*_]*([AB])[\s*_.]*$", re.IGNORECASE)


def parse_winner(answer: str) -> str | None:
    lines = [line for line in answer.strip().splitlines() if line.strip()]
    match = WINNER.match(lines[-1]) if lines else None
    return match.group(1).upper() if match else None


def model_first(prompt: str, name: str) -> bool:
    """Whether the model's answer is shown as A for this prompt (a seeded coin per prompt and model)."""
    return hashlib.sha256(f"{name}\0{prompt}".encode()).digest()[0] % 2 == 0


def judge_prompts(name: str, prompts: list[str], answers: list[str], reference: list[str]) -> list[str]:
    shown = []
    for prompt, mine, theirs in zip(prompts, answers, reference, strict=True):
        a, b = (mine, theirs) if model_first(prompt, name) else (theirs, mine)
        shown.append(TEMPLATE.format(instruction=prompt, a=a, b=b))
    return shown


def outcomes(cfg: Any, cache_dir: Path, name: str, prompts: list[str], answers: list[str],
             reference: list[str]) -> list[float | None]:  # fmt: skip
    """Per prompt: 1 the model won, 0 it lost, None malformed or no answer."""
    cache = AnswerCache(cache_dir, TEMPLATE, cfg.model)
    shown = judge_prompts(name, prompts, answers, reference)
    keys = [text_hash(s) for s in shown]
    todo = [i for i, k in enumerate(keys) if cache.get(k) is None]
    if todo:
        preflight(cfg, SETTING)
        client = ChatClient(cfg, SETTING)

        def record(i: int, reply: Any) -> None:
            if reply.text is not None:
                winner = parse_winner(reply.text)
                cache.put(keys[i], None if winner is None else int(winner == "A"), reply.text)

        try:
            ask_all(lambda i: client.complete(shown[i]), todo, cfg.concurrency, record)
        finally:
            client.close()
    results: list[float | None] = []
    for prompt, key in zip(prompts, keys, strict=True):
        entry = cache.get(key)
        a_won = None if entry is None else entry["score"]
        results.append(None if a_won is None else float(a_won == int(model_first(prompt, name))))
    return results


def _fit_intercept(wins: np.ndarray, x: np.ndarray, iterations: int = 50, ridge: float = 1e-3) -> float:
    """The intercept of a logistic regression of wins on x (Newton's method, a small ridge on the slope
    so a perfect separation stays finite)."""
    design = np.stack([np.ones_like(x), x], 1)
    w = np.zeros(2)
    penalty = np.diag([0.0, ridge])
    for _ in range(iterations):
        p = 1 / (1 + np.exp(-design @ w))
        gradient = design.T @ (p - wins) + penalty @ w
        hessian = design.T @ (design * (p * (1 - p))[:, None]) + penalty + 1e-9 * np.eye(2)
        w -= np.linalg.solve(hessian, gradient)
    return float(w[0])


def length_controlled(wins: np.ndarray, length_diff: np.ndarray) -> float:
    scale = length_diff.std() or 1.0
    return float(1 / (1 + np.exp(-_fit_intercept(wins, np.tanh(length_diff / scale)))))


def win_rates(results: list[float | None], answers: list[str], reference: list[str]) -> dict[str, Any]:
    """Win rate and length-controlled win rate with bootstrap intervals over the judged prompts."""
    judged = [i for i, r in enumerate(results) if r is not None]
    if len(judged) < 2:
        return {"judged": len(judged), "malformed": len(results) - len(judged)}
    wins = np.array([results[i] for i in judged], dtype=float)
    diff = np.array([len(answers[i]) - len(reference[i]) for i in judged], dtype=float)
    rng = np.random.default_rng(SEED)
    draws = rng.integers(0, len(judged), size=(REPLICATES, len(judged)))
    raw = wins[draws].mean(1)
    lc = np.array([length_controlled(wins[d], diff[d]) for d in draws[: REPLICATES // 10]])
    tail = (1 - LEVEL) / 2 * 100
    return {"judged": len(judged), "malformed": len(results) - len(judged),
            "win_rate": {"value": float(wins.mean()), "ci": list(np.percentile(raw, [tail, 100 - tail]))},
            "lc_win_rate": {"value": length_controlled(wins, diff), "ci": list(np.percentile(lc, [tail, 100 - tail]))},
            "mean_length_diff": float(diff.mean())}  # fmt: skip
