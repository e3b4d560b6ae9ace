"""A classifier trained on an LLM judge's scores (the FineWeb-Edu recipe: boosted stumps by default,
logistic regression or fastText on request), and its agreement with the judge on held-out
annotations: F1 at the threshold and the confusion matrix."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from model.intervals import Units, interval
from storage.fingerprint import unit_interval
from storage.shards import iter_rows
from tasks.fasttext_training import train_and_save
from tasks.filter.annotate import annotate
from tasks.filter.config import AnnotateConfig, QualityClassifierConfig
from tasks.filter.linear import train_linear
from tasks.filter.quality import POSITIVE, one_line, score_text
from tasks.filter.stumps import train_stumps

NEGATIVE = "__label__lq"


def label(score: int, cfg: AnnotateConfig) -> str:
    if cfg.classes == "scores":
        return f"__label__{score}"
    return POSITIVE if score >= cfg.threshold else NEGATIVE


def keep_threshold(cfg: AnnotateConfig) -> float:
    """Binary: P(good) >= 0.5; scores: the expected score rounds to the threshold or more."""
    return 0.5 if cfg.classes == "binary" else cfg.threshold - 0.5


def sample_texts(doc_paths: list[str], n: int, seed: int, cfg: QualityClassifierConfig | None = None
                 ) -> tuple[dict[str, str], dict[str, str]]:  # fmt: skip
    """The `n` documents with the lowest hash among the classifier's languages (the same ones whatever
    the shard order or count): (doc_id -> text, doc_id -> language)."""
    rows = iter_rows(doc_paths, ["doc_id", "text", "lang"])
    ranked = sorted((unit_interval(seed, "annotate", r["doc_id"]), r["doc_id"], r["text"], r.get("lang"))
                    for r in rows if cfg is None or cfg.scores(r.get("lang")))  # fmt: skip
    return {d: text for _, d, text, _ in ranked[:n]}, {d: lang for _, d, _, lang in ranked[:n] if lang}


def agreement(model_path: str, heldout: list[tuple[str, int]], cfg: QualityClassifierConfig) -> dict[str, Any]:
    """The classifier against the judge on annotations it never saw, both cut at the threshold."""
    threshold, cut = cfg.annotate.threshold, keep_threshold(cfg.annotate)
    matrix = [[0, 0] for _ in range(6)]  # judge score 0..5 x (predicted bad, predicted good)
    outcomes = []  # per held-out document: (true positive, false positive, false negative)
    for text, score in heldout:
        kept, good = score_text(model_path, text, cfg) >= cut, score >= threshold
        matrix[score][int(kept)] += 1
        outcomes.append((kept and good, kept and not good, good and not kept))
    tp, fp, fn = (sum(o[i] for o in outcomes) for i in range(3))
    precision, recall = tp / max(tp + fp, 1), tp / max(tp + fn, 1)
    # F1 = 2TP / (2TP + FP + FN), a ratio of per-document sums: bootstrapped over held-out documents.
    f1 = interval(Units.of([2 * t for t, _, _ in outcomes], [2 * t + p + n for t, p, n in outcomes]))
    lo, hi = f1["ci"] or (f1["value"], f1["value"])
    return {"quality_judge_f1": f1["value"], "quality_judge_f1_lo": lo, "quality_judge_f1_hi": hi,
            "quality_judge_precision": precision, "quality_judge_recall": recall,
            "quality_judge_heldout": len(heldout), "quality_judge_confusion": matrix}  # fmt: skip


def stratified_split(labelled: list[tuple[float, str, int]], cfg: AnnotateConfig
                     ) -> tuple[list[tuple[str, int]], list[tuple[str, int]]]:  # fmt: skip
    """(held out, train), both in hash order: the same share of the good and of the bad annotations
    held out, so a judge that finds few good pages still leaves some of them to measure recall on."""
    out: set[int] = set()
    for good in (True, False):
        group = [i for i, (_, _, s) in enumerate(labelled) if (s >= cfg.threshold) == good]
        out.update(group[: min(max(round(len(group) * cfg.heldout_fraction), 2), len(group) // 2)])
    heldout = [(t, s) for i, (_, t, s) in enumerate(labelled) if i in out]
    return heldout, [(t, s) for i, (_, t, s) in enumerate(labelled) if i not in out]


def balanced(train: list[tuple[str, int]], judge: AnnotateConfig) -> list[tuple[str, int]]:
    """The rarer class repeated (in order) until both classes are as large: fastText has no class weights."""
    by_class = [[x for x in train if (x[1] >= judge.threshold) == good] for good in (True, False)]
    small, large = sorted(by_class, key=len)
    return large + [small[i % len(small)] for i in range(len(large))] if small else train


def fit(train: list[tuple[str, int]], cfg: QualityClassifierConfig, out_path: Path) -> dict[str, Any]:
    """Learn the judge from `train` into `out_path` with the configured learner."""
    judge = cfg.annotate
    if judge.learner == "stumps" and judge.classes == "binary":
        model = train_stumps([t for t, _ in train], [s for _, s in train], judge.threshold, seed=cfg.seed)
        model.save(out_path)
        return {"quality_learner": "stumps", "quality_stumps": len(model.features), "quality_stump_cut": model.cut}
    if judge.learner == "linear" and judge.classes == "binary":
        texts = [one_line(t) for t, _ in train]
        train_linear(texts, [s >= judge.threshold for _, s in train], seed=cfg.seed).save(out_path)
        return {"quality_learner": "linear"}
    lines = balanced(train, judge) if judge.classes == "binary" else train
    lines = sorted(lines, key=lambda ts: unit_interval(cfg.seed, "order", ts[0]))
    train_file = out_path.with_suffix(".train.txt")
    train_file.write_text("".join(f"{label(s, judge)} {one_line(t)}\n" for t, s in lines))
    result = train_and_save(train_file, out_path, cfg.lr, cfg.lr_retries, None, epoch=judge.epochs, wordNgrams=2,
                            bucket=1 << 17, dim=32, minCount=2, seed=cfg.seed)  # fmt: skip
    train_file.unlink()
    return {"quality_learner": "fasttext", "quality_lr": result["lr"]}


def learning_curve(train: list[tuple[str, int]], heldout: list[tuple[str, int]], cfg: QualityClassifierConfig,
                   out_path: Path) -> list[dict[str, Any]]:  # fmt: skip
    """F1 on the same held-out annotations of classifiers trained on the first 1/4, 1/2, 3/4 of them."""
    curve = []
    for share in (0.25, 0.5, 0.75):
        part = train[: round(len(train) * share)]
        if len({s >= cfg.annotate.threshold for _, s in part}) < 2:
            continue
        path = out_path.with_name(f"{out_path.stem}.curve-{int(share * 100)}{out_path.suffix}")
        fit(part, cfg, path)
        measured = agreement(str(path), heldout, cfg)
        path.unlink()
        curve.append({"annotations": len(part), "f1": measured["quality_judge_f1"],
                      "ci": [measured["quality_judge_f1_lo"], measured["quality_judge_f1_hi"]]})  # fmt: skip
    return curve


def train_on_annotations(
    doc_paths: list[str], cfg: QualityClassifierConfig, out_path: Path, cache_dir: Path
) -> dict[str, Any]:
    judge = cfg.annotate
    texts, langs = sample_texts(doc_paths, judge.sample, cfg.seed, cfg)
    scores, counts = annotate(texts, judge, cache_dir, langs)
    labelled = sorted((unit_interval(cfg.seed, "heldout", d), texts[d], s) for d, s in scores.items())
    heldout, train = stratified_split(labelled, judge)
    if len({label(s, judge) for _, s in train}) < 2:
        raise ValueError(f"the judge's {len(train)} usable scores give fewer than two classes: nothing to learn "
                         f"(counts: {counts})")  # fmt: skip
    learned = fit(train, cfg, out_path)
    histogram = {f"annotate_score_{k}": sum(s == k for s in scores.values()) for k in range(6)}
    info = {**counts, **histogram, "quality_train_lines": len(train), **learned}
    if heldout:
        info |= agreement(str(out_path), heldout, cfg)
        if judge.learning_curve:
            full = {
                "annotations": len(train),
                "f1": info["quality_judge_f1"],
                "ci": [info["quality_judge_f1_lo"], info["quality_judge_f1_hi"]],
            }
            info["quality_judge_curve"] = [*learning_curve(train, heldout, cfg, out_path), full]
    return info
