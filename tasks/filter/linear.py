"""A linear classifier on hashed words, for learning an LLM judge's rule from a few hundred annotations.

fastText averages word vectors over the whole document, so a judge's cue that a few words carry fades
in a long page: after 600 annotations of the sample by a judge with a hidden additive rubric, fastText
reached F1 0.48 on the pages nobody annotated, this 0.67 (benchmarks/judge_learning_curve.py). Features:
each distinct word and punctuation run (any script: letters with their marks; each letter and letter
pair where the script has no spaces) hashed into 2^18 slots, present or not, and the document's length
in words; logistic regression with L2 and balanced class weights (scikit-learn, the `judge` extra) learns
them (boosted stumps on the same words, stumps.py, reach 0.84 there). Scoring needs numpy only,
and the model answers like a fastText model (`predict`, `get_labels`), so the filter scores either.
"""

from __future__ import annotations

import hashlib
import importlib
import os
from pathlib import Path

import numpy as np

from storage.errors import UserError
from tasks.languages.chars import WORD_OR_PUNCT
from tasks.languages.segmenters import unspaced_letter

N_FEATURES = 1 << 18
POSITIVE, NEGATIVE = "__label__hq", "__label__lq"
MAGIC = b"PK\x03\x04"  # an .npz is a zip file; a fastText model is not


def _slot(token: str) -> int:
    return int.from_bytes(hashlib.blake2b(token.encode(), digest_size=8).digest(), "little") % N_FEATURES


def tokens(text: str) -> set[str]:
    """Distinct lower-cased words and punctuation runs (`()`, `>>>` say code); a run of letters of an
    unspaced script gives its letters and letter pairs."""
    found: set[str] = set()
    for run in WORD_OR_PUNCT.findall(text.lower()):
        if any(unspaced_letter(ch) for ch in run):
            found.update(run)
            found.update(run[i : i + 2] for i in range(len(run) - 1))
        else:
            found.add(run)
    return found


def slots(text: str) -> list[int]:
    """The feature slots of the text's tokens, each once, in order."""
    return sorted({_slot(t) for t in tokens(text)})


def length_features(text: str) -> np.ndarray:
    n = np.log1p(len(text.split())) / 4.0
    return np.array([n, n * n])


def feature_matrix(texts: list[str]):
    from scipy import sparse

    rows, cols = [], []
    for i, text in enumerate(texts):
        present = slots(text)
        rows += [i] * len(present)
        cols += present
    words = sparse.csr_matrix((np.ones(len(cols)), (rows, cols)), shape=(len(texts), N_FEATURES))
    lengths = sparse.csr_matrix(np.array([length_features(t) for t in texts]).reshape(len(texts), 2))
    return sparse.hstack([words, lengths]).tocsr()


class JudgeModel:
    """A judge route's own model: P(good) of a text, answered as a fastText model answers (`predict`,
    `get_labels`), its arrays saved as one .npz."""

    def probability(self, text: str) -> float:
        raise NotImplementedError

    def arrays(self) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def predict(self, text: str, k: int = -1) -> tuple[tuple[str, ...], np.ndarray]:
        p = self.probability(text)
        return (POSITIVE, NEGATIVE), np.array([p, 1.0 - p])

    def get_labels(self) -> list[str]:
        return [POSITIVE, NEGATIVE]

    def save(self, path: Path) -> None:
        tmp = path.with_name(f".{path.name}.tmp.npz")
        np.savez(tmp, **self.arrays())
        os.replace(tmp, path)


class LinearModel(JudgeModel):
    def __init__(self, weights: np.ndarray, bias: float):
        self.weights, self.bias = weights, bias

    def probability(self, text: str) -> float:
        words = self.weights[np.asarray(slots(text), dtype=np.int64)].sum()
        z = words + self.weights[N_FEATURES:] @ length_features(text) + self.bias
        return float(1.0 / (1.0 + np.exp(-z)))

    def arrays(self) -> dict[str, np.ndarray]:
        return {"weights": self.weights, "bias": np.array([self.bias])}

    @classmethod
    def from_arrays(cls, data) -> LinearModel:
        return cls(data["weights"], float(data["bias"][0]))


def is_npz_model(path: str) -> bool:
    with open(path, "rb") as f:
        return f.read(4) == MAGIC


def sklearn_or_hint(learner: str, module: str):
    """scikit-learn's `module`, or one error saying which extra installs it."""
    try:
        return importlib.import_module(f"sklearn.{module}")
    except ImportError as e:
        raise UserError(f"filter.quality.annotate.learner={learner} needs scikit-learn",
                        hint="pip install 'crawl2model[judge]', or set learner: fasttext") from e  # fmt: skip


def train_linear(texts: list[str], good: list[bool], c: float = 0.3, seed: int = 0) -> LinearModel:
    linear_model = sklearn_or_hint("linear", "linear_model")
    fit = linear_model.LogisticRegression(C=c, class_weight="balanced", max_iter=5000, random_state=seed)
    fit.fit(feature_matrix(texts), np.array(good))
    return LinearModel(fit.coef_[0].astype(np.float32), float(fit.intercept_[0]))
