"""95% intervals and verdicts for evaluation numbers: seeded bootstrap over documents or items.

A metric here is a ratio of sums over units (documents or items): bits per byte is summed NLL bits
over summed bytes, an accuracy is summed correct over item count. Resampling units keeps the ratio
honest for documents of different lengths. A comparison of two runs is paired: both are resampled
with the same unit indices, so the variance the two share (hard documents are hard for both) cancels.
With several seeds per run the bootstrap resamples seeds too, so the interval includes their spread.
Everything is seeded: the same inputs print the same intervals.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

REPLICATES = 2000
LEVEL = 0.95
SEED = 0
CHUNK = 100


@dataclass(frozen=True)
class Units:
    """Per-unit numerator and denominator of a ratio metric, one row per seed: shape (seeds, units)."""

    num: np.ndarray
    den: np.ndarray

    @classmethod
    def of(cls, num, den=None) -> Units:
        num = np.atleast_2d(np.asarray(num, dtype=np.float64))
        den = np.ones_like(num) if den is None else np.atleast_2d(np.asarray(den, dtype=np.float64))
        if num.shape != den.shape:
            raise ValueError(f"numerator {num.shape} and denominator {den.shape} differ")
        return cls(num, den)

    @property
    def value(self) -> float:
        """The metric: the mean over seeds of each seed's ratio of sums."""
        return float(np.mean(self.num.sum(axis=1) / np.maximum(self.den.sum(axis=1), 1e-300)))

    def replicate(self, unit_idx: np.ndarray, seed_idx: np.ndarray) -> np.ndarray:
        """The metric under resampled units (replicates, units) and seeds (replicates, seeds)."""
        out = np.empty(len(unit_idx))
        for start in range(0, len(unit_idx), CHUNK):  # bounded memory: (chunk, seeds, units) at a time
            u, s = unit_idx[start : start + CHUNK, None, :], seed_idx[start : start + CHUNK, :, None]
            num, den = self.num[s, u].sum(axis=2), self.den[s, u].sum(axis=2)
            out[start : start + CHUNK] = (num / np.maximum(den, 1e-300)).mean(axis=1)
        return out


def _draws(n_units: int, seeds: list[int], replicates: int, seed: int) -> tuple[np.ndarray, list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    unit_idx = rng.integers(0, n_units, size=(replicates, n_units))
    seed_idx = [rng.integers(0, s, size=(replicates, s)) if s > 1 else np.zeros((replicates, 1), int) for s in seeds]
    return unit_idx, seed_idx


def _percentiles(samples: np.ndarray, level: float) -> tuple[float, float]:
    lo, hi = np.quantile(samples, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def interval(units: Units, replicates: int = REPLICATES, level: float = LEVEL, seed: int = SEED) -> dict:
    """{"value", "ci": [lo, hi]} by the percentile bootstrap; no interval for fewer than 2 units."""
    n_units = units.num.shape[1]
    if n_units < 2:
        return {"value": units.value, "ci": None}
    unit_idx, (seed_idx,) = _draws(n_units, [units.num.shape[0]], replicates, seed)
    return {"value": units.value, "ci": list(_percentiles(units.replicate(unit_idx, seed_idx), level))}


def paired_delta(a: Units, b: Units, lower_is_better: bool, replicates: int = REPLICATES, level: float = LEVEL,
                 seed: int = SEED) -> dict:  # fmt: skip
    """B - A on the same units, its interval, and a verdict for B relative to A."""
    if a.num.shape[1] != b.num.shape[1]:
        raise ValueError(f"a paired comparison needs the same units: {a.num.shape[1]} vs {b.num.shape[1]}")
    delta = b.value - a.value
    if a.num.shape[1] < 2:
        return {"delta": delta, "ci": None, "verdict": "not distinguishable"}
    unit_idx, (seeds_a, seeds_b) = _draws(a.num.shape[1], [a.num.shape[0], b.num.shape[0]], replicates, seed)
    samples = b.replicate(unit_idx, seeds_b) - a.replicate(unit_idx, seeds_a)
    ci = _percentiles(samples, level)
    return {"delta": delta, "ci": list(ci), "verdict": verdict(ci, lower_is_better)}


def verdict(ci: tuple[float, float], lower_is_better: bool) -> str:
    """better / worse when the interval of B - A excludes zero, else not distinguishable."""
    lo, hi = ci
    if lo > 0 or hi < 0:
        improved = (hi < 0) if lower_is_better else (lo > 0)
        return "better" if improved else "worse"
    return "not distinguishable"


def contains(ci: list[float] | None, value: float | None) -> bool:
    return ci is not None and value is not None and ci[0] <= value <= ci[1]


def fmt_ci(value: float | None, ci: list[float] | None, digits: int = 4) -> str:
    """`0.31 [0.25, 0.37]` (or the value alone without an interval)."""
    if value is None:
        return ""
    if ci is None:
        return f"{value:.{digits}g}"
    return f"{value:.{digits}g} [{ci[0]:.{digits}g}, {ci[1]:.{digits}g}]"


def wilson(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson's 95% interval for a proportion: honest at 0 and 1 and for a few dozen trials."""
    if n == 0:
        return (0.0, 1.0)
    p = successes / n
    centre, half = p + z * z / (2 * n), z * ((p * (1 - p) + z * z / (4 * n)) / n) ** 0.5
    return (max(0.0, (centre - half) / (1 + z * z / n)), min(1.0, (centre + half) / (1 + z * z / n)))
