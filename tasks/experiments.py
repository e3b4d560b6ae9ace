"""The math of data experiments, free of Prefect and torch: mixture sampling, the mixture
regression (RegMix-style), rank correlation, power-law fits, and parsing of varied settings.

RegMix (Liu et al. 2024) trains many small proxies on sampled mixtures, regresses the target metric
on the mixture weights, and takes the mixture the regression predicts best, averaged over the top
predicted candidates so that one noisy optimum does not decide it. The regression here is ridge on
the weights (with an intercept); its quality is the leave-one-out rank correlation between
predicted and measured metrics.
"""

from __future__ import annotations

import itertools
import json
import math
from typing import Any

import numpy as np

from storage.errors import UserError


def sample_mixtures(natural: dict[str, float], n: int, concentration: float, seed: int) -> list[dict[str, float]]:
    """`n` mixtures from a Dirichlet centred on the natural mixture (larger concentration = closer)."""
    domains = sorted(natural)
    total = sum(natural.values()) or 1.0
    alpha = np.array([max(natural[d] / total, 1e-3) * concentration * len(domains) for d in domains])
    draws = np.random.default_rng(seed).dirichlet(alpha, size=n)
    return [{d: round(float(w), 6) for d, w in zip(domains, row, strict=True)} for row in draws]


def design(mixtures: list[dict[str, float]], domains: list[str]) -> np.ndarray:
    return np.array([[m.get(d, 0.0) for d in domains] for m in mixtures])


def fit_ridge(x: np.ndarray, y: np.ndarray, alpha: float = 1e-3) -> np.ndarray:
    """Coefficients [intercept, w_1..w_k] minimizing ||y - Xb||^2 + alpha ||w||^2 (intercept free)."""
    xa = np.hstack([np.ones((len(x), 1)), x])
    penalty = alpha * np.eye(xa.shape[1])
    penalty[0, 0] = 0.0
    return np.linalg.solve(xa.T @ xa + penalty, xa.T @ y)


def predict(coef: np.ndarray, x: np.ndarray) -> np.ndarray:
    return coef[0] + x @ coef[1:]


def ranks(values: np.ndarray) -> np.ndarray:
    """Ranks from 1, ties sharing their mean rank."""
    order = np.argsort(values, kind="stable")
    out = np.empty(len(values))
    sorted_vals = values[order]
    i = 0
    while i < len(values):
        j = i
        while j + 1 < len(values) and sorted_vals[j + 1] == sorted_vals[i]:
            j += 1
        out[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return out


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    ra, rb = ranks(np.asarray(a, float)), ranks(np.asarray(b, float))
    if ra.std() == 0 or rb.std() == 0:
        return float("nan")
    return float(np.corrcoef(ra, rb)[0, 1])


def leave_one_out(x: np.ndarray, y: np.ndarray, alpha: float = 1e-3) -> np.ndarray:
    """Each point predicted by the regression fitted on all the others."""
    preds = np.empty(len(y))
    for i in range(len(y)):
        keep = np.arange(len(y)) != i
        preds[i] = predict(fit_ridge(x[keep], y[keep], alpha), x[i : i + 1])[0]
    return preds


RIDGE_ALPHAS = (1e-3, 1e-2, 3e-2, 1e-1, 3e-1, 1.0)


def choose_alpha(x: np.ndarray, y: np.ndarray, alphas: tuple[float, ...] = RIDGE_ALPHAS) -> float:
    """The ridge penalty with the smallest leave-one-out squared error: with few proxies per domain an
    unpenalized fit chases noise into the weights of rarely sampled domains."""
    errors = [float(((leave_one_out(x, y, a) - y) ** 2).mean()) for a in alphas]
    return alphas[int(np.argmin(errors))]


def best_mixture(
    coef: np.ndarray,
    domains: list[str],
    natural: dict[str, float],
    concentration: float,
    seed: int,
    maximize: bool,
    candidates: int = 20000,
    top: int = 100,
) -> tuple[dict[str, float], float]:
    """The mean of the `top` candidate mixtures the regression predicts best, and its prediction."""
    pool = design(sample_mixtures(natural, candidates, concentration, seed + 1), domains)
    scores = predict(coef, pool)
    best = np.argsort(-scores if maximize else scores)[:top]
    mean = pool[best].mean(axis=0)
    mixture = {d: round(float(w), 4) for d, w in zip(domains, mean / mean.sum(), strict=True)}
    return mixture, float(predict(coef, mean[None, :])[0])


def predicted_change(x: np.ndarray, y: np.ndarray, natural: np.ndarray, best: np.ndarray) -> dict[str, Any]:
    """Another metric (one language's bits per byte) regressed on the same mixtures: its prediction at
    the natural and at the chosen mixture, the change, and the regression's leave-one-out error; the
    change is `not distinguishable` within 1.96 x sqrt(2) x that error (two predictions, each off by
    about that much)."""
    alpha = choose_alpha(x, y)
    coef = fit_ridge(x, y, alpha)
    at_natural, at_best = (float(predict(coef, m[None, :])[0]) for m in (natural, best))
    rmse = float(np.sqrt(((leave_one_out(x, y, alpha) - y) ** 2).mean()))
    change = at_best - at_natural
    verdict = "lower" if change < 0 else "higher"
    verdict = "not distinguishable" if abs(change) <= 1.96 * math.sqrt(2) * rmse else verdict
    return {"natural": at_natural, "best": at_best, "change": change, "loo_rmse": rmse, "verdict": verdict}


def fit_power_law(compute: list[float], loss: list[float]) -> dict[str, float]:
    """loss = a * C^-b + e, with the irreducible term e searched on a grid below the smallest loss
    (log-log least squares for a and b at each e); e = 0 when there are fewer than 4 points."""
    c, y = np.asarray(compute, float), np.asarray(loss, float)
    if len(c) < 2:
        raise UserError("a power law needs at least two sizes")
    grid = [0.0] if len(c) < 4 else list(np.linspace(0.0, float(y.min()) * 0.99, 100))
    best: dict[str, float] = {}
    for e in grid:
        slope, intercept = np.polyfit(np.log(c), np.log(y - e), 1)
        fitted = e + math.exp(intercept) * c**slope
        sse = float(((fitted - y) ** 2).sum())
        if not best or sse < best["sse"]:
            best = {"a": math.exp(intercept), "b": -float(slope), "e": float(e), "sse": sse}
    fitted = best["e"] + best["a"] * c ** -best["b"]
    total = float(((y - y.mean()) ** 2).sum())
    best["r2"] = 1.0 - best["sse"] / total if total > 0 else 1.0
    return best


def power_law(fit: dict[str, float], compute: float) -> float:
    return fit["e"] + fit["a"] * compute ** -fit["b"]


def parse_vary(specs: list[str]) -> list[dict[str, str]]:
    """`key=v1,v2` specs -> every combination as {key: raw value} (parsed later like --set values)."""
    axes = []
    for spec in specs:
        key, sep, values = spec.partition("=")
        if not sep or not key or not values:
            raise UserError(f"--vary expects KEY=V1,V2,...; got {spec!r}")
        axes.append([(key, v.strip()) for v in values.split(",") if v.strip()])
    return [dict(combo) for combo in itertools.product(*axes)]


def parse_size(size: str) -> dict[str, Any]:
    """A model preset name (`tiny`) or an explicit `<layers>x<heads>x<embd>` shape."""
    parts = size.lower().split("x")
    if len(parts) == 3 and all(p.isdigit() for p in parts):
        return {"preset": None, "n_layer": int(parts[0]), "n_head": int(parts[1]), "n_embd": int(parts[2])}
    from model.config import MODEL_PRESETS

    if size not in MODEL_PRESETS:
        raise UserError(f"unknown size {size!r}: a preset ({', '.join(MODEL_PRESETS)}) or LAYERSxHEADSxEMBD")
    n_layer, n_head, n_embd = MODEL_PRESETS[size]
    return {"preset": None, "n_layer": n_layer, "n_head": n_head, "n_embd": n_embd}


# Named curation recipes for `experiment recipes`: each is --set overrides on the configured pipeline.
# Stages a recipe switches off still run (cheaply) so the DAG and the catalog stay the same shape.
RECIPES: dict[str, dict[str, Any]] = {
    "raw": {"filter.enabled": False, "dedup.enabled": False, "mix.mode": "natural"},  # extract + language id
    "heuristic": {"filter.quality.enabled": False, "dedup.enabled": False, "mix.mode": "natural"},
    "classifier": {"dedup.enabled": False, "mix.mode": "natural"},
    "dedup": {"mix.mode": "natural"},
    "full": {},  # the configured pipeline, mixture included
    "full-resiliparse": {"extract.extractor": "resiliparse"},  # the same with DCLM's faster extractor
    # Annealing at equal compute: `wsd` is the baseline schedule; `anneal` spends its decay (the last
    # 20% of steps) on the top half of the quality buckets.
    "wsd": {"train.schedule": "wsd"},
    "anneal": {"train.schedule": "wsd", "mix.anneal": {"min_bucket": 10}, "train.anneal.fraction": 0.2},
}


def parse_recipes(spec: str) -> list[str]:
    names = [n.strip() for n in spec.split(",") if n.strip()]
    if unknown := [n for n in names if n not in RECIPES]:
        raise UserError(f"unknown recipe(s) {unknown}; known: {', '.join(RECIPES)}")
    if len(names) < 2 or len(set(names)) != len(names):
        raise UserError("give at least two different recipes; the first is the baseline")
    return names


POST_TRAINING = {"none": {"sft.enabled": False, "dpo.enabled": False},
                 "sft": {"sft.enabled": True, "dpo.enabled": False},
                 "sft,dpo": {"sft.enabled": True, "dpo.enabled": True}}  # fmt: skip


def post_train_overrides(spec: str | None) -> list[str]:
    """--set items giving every recipe the same post-training (`--post-train`); None: the config's own."""
    if spec is None:
        return []
    key = ",".join(s.strip() for s in spec.split(",") if s.strip())
    if key not in POST_TRAINING:
        raise UserError(f"--post-train {spec!r}: one of {', '.join(POST_TRAINING)}")
    return [f"{k}={json.dumps(v)}" for k, v in POST_TRAINING[key].items()]


def recipe_overrides(name: str, seed: int) -> list[str]:
    """--set items for one recipe trained with one seed (initialisation and data order; same data)."""
    return [f"{k}={json.dumps(v)}" for k, v in RECIPES[name].items()] + [f"train.seed={seed}"]
