"""Boosted decision stumps on the judge's score: an additive model of which words a page has, and how long it is.

A judge that scores with a rubric (FineWeb-Edu's prompt adds a point for each quality it sees) gives a
score that is a sum of steps: a point once any of a few words appears, a point past a length. Stumps
learn exactly such steps, each on one hashed word (present or not) or on the page's length in words,
and gradient boosting adds them up against the judge's 0-5 score, not only good/bad, so each point of
the rubric is learnt from every page that shows it. Words in fewer than three training pages are left
out (a stump on a word seen once learns that page). The cut on the predicted score is the one with
the best F1 on out-of-fold predictions of the training annotations (regression shrinks toward the mean,
so the judge's own threshold would be too high). After 600 annotations of a hidden five-point rubric:
F1 0.83 on the pages nobody annotated, against 0.67 logistic regression and 0.48 fastText
(benchmarks/judge_learning_curve.py). Scoring needs numpy only and reads the whole page.
"""

from __future__ import annotations

import numpy as np

from tasks.filter.linear import N_FEATURES, JudgeModel, LinearModel, sklearn_or_hint, slots

LENGTH = N_FEATURES  # the feature index of the page's length in words
MIN_PAGES = 3
STUMPS, LEARNING_RATE = 300, 0.1
STEEPNESS = 4.0  # P(good) = sigmoid(STEEPNESS * (predicted score - cut)): 0.5 at the cut


def feature_matrix(texts: list[str], columns: np.ndarray):
    """Pages x `columns` (hashed word slots, and LENGTH): 1 where the page has the word, its word count for LENGTH."""
    from scipy import sparse

    where = {slot: j for j, slot in enumerate(columns.tolist())}
    rows, cols, values = [], [], []
    for i, text in enumerate(texts):
        for slot in slots(text):
            if slot in where:
                rows.append(i), cols.append(where[slot]), values.append(1.0)
        rows.append(i), cols.append(where[LENGTH]), values.append(float(len(text.split())))
    return sparse.csr_matrix((values, (rows, cols)), shape=(len(texts), len(columns)))


def frequent_slots(texts: list[str]) -> np.ndarray:
    counts = np.bincount(np.concatenate([np.asarray(slots(t), dtype=np.int64) for t in texts]), minlength=N_FEATURES)
    return np.append(np.flatnonzero(counts >= MIN_PAGES), LENGTH)


class StumpModel(JudgeModel):
    """base + the sum over stumps of (left if feature <= threshold else right)."""

    reads_whole_text = True

    def __init__(self, features: np.ndarray, thresholds: np.ndarray, left: np.ndarray, right: np.ndarray,
                 base: float, cut: float):  # fmt: skip
        self.features, self.thresholds, self.left, self.right = features, thresholds, left, right
        self.base, self.cut = base, cut

    def score(self, text: str) -> float:
        """The judge's score this model expects for the page."""
        present = np.isin(self.features, np.asarray(slots(text), dtype=np.int64)).astype(np.float64)
        x = np.where(self.features == LENGTH, float(len(text.split())), present)
        return float(self.base + np.where(x <= self.thresholds, self.left, self.right).sum())

    def probability(self, text: str) -> float:
        return float(1.0 / (1.0 + np.exp(-STEEPNESS * (self.score(text) - self.cut))))

    def arrays(self) -> dict[str, np.ndarray]:
        return {"stump_features": self.features, "thresholds": self.thresholds, "left": self.left,
                "right": self.right, "base_cut": np.array([self.base, self.cut])}  # fmt: skip

    @classmethod
    def from_arrays(cls, data) -> StumpModel:
        base, cut = data["base_cut"].tolist()
        return cls(data["stump_features"], data["thresholds"], data["left"], data["right"], base, cut)


def _boosting(seed: int):
    ensemble = sklearn_or_hint("stumps", "ensemble")
    return ensemble.GradientBoostingRegressor(max_depth=1, n_estimators=STUMPS, learning_rate=LEARNING_RATE,
                                              subsample=0.8, random_state=seed)  # fmt: skip


def best_cut(texts: list[str], scores: np.ndarray, good: np.ndarray, columns: np.ndarray, seed: int) -> float:
    """The predicted-score cut with the best F1 on 5-fold out-of-fold predictions."""
    selection = sklearn_or_hint("stumps", "model_selection")
    folds = min(5, int(good.sum()), int((~good).sum()))
    if folds < 2:
        return float(scores[good].min()) - 0.5
    split = selection.StratifiedKFold(folds, shuffle=True, random_state=seed).split(texts, good)
    predicted = selection.cross_val_predict(_boosting(seed), feature_matrix(texts, columns), scores, cv=list(split))
    cuts = np.unique(np.round(predicted, 3))
    f1 = [2 * (p & good).sum() / max(2 * (p & good).sum() + (p & ~good).sum() + (~p & good).sum(), 1)
          for p in (predicted[:, None] >= cuts[None, :]).T]  # fmt: skip
    return float(cuts[int(np.argmax(f1))])


def train_stumps(texts: list[str], scores: list[int], threshold: int, seed: int = 0) -> StumpModel:
    """Fit the judge's `scores` (0-5); good means score >= `threshold`."""
    target, good = np.asarray(scores, dtype=np.float64), np.asarray(scores) >= threshold
    columns = frequent_slots(texts)
    fit = _boosting(seed).fit(feature_matrix(texts, columns), target)
    trees = [t[0].tree_ for t in fit.estimators_ if t[0].tree_.node_count == 3]
    values = np.array([[t.value[1].item(), t.value[2].item()] for t in trees]).reshape(-1, 2) * LEARNING_RATE
    return StumpModel(columns[[t.feature[0] for t in trees]].astype(np.int64),
                      np.array([t.threshold[0] for t in trees]), values[:, 0], values[:, 1],
                      float(fit.init_.constant_.item()), best_cut(texts, target, good, columns, seed))  # fmt: skip


def load_npz_model(path: str) -> StumpModel | LinearModel:
    """The judge route's own models (numpy arrays in an .npz): boosted stumps or logistic regression."""
    with np.load(path) as data:
        return (StumpModel if "stump_features" in data else LinearModel).from_arrays(data)
