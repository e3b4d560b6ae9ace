"""A fastText quality classifier the pipeline trains itself: reference-quality prose vs random web.

The DCLM recipe in small: positives are reference text (the user's files, or the Python language
reference that ships with every Python), negatives a seeded random sample of the documents being
filtered. The score is P(reference-like) and is kept as the `quality_score` column.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

from storage.fingerprint import unit_interval
from storage.shards import iter_rows
from tasks.fasttext_training import train_and_save
from tasks.filter.config import QualityClassifierConfig
from tasks.filter.remote import local_copy, read_texts

POSITIVE, NEGATIVE = "__label__hq", "__label__web"


def one_line(text: str, max_words: int = 200) -> str:
    # Same length window for training and scoring, so the model cannot learn "long = web".
    return " ".join(text.lower().split()[:max_words])


def _chunks(paragraphs: list[str], words: int = 200) -> list[str]:
    chunks, current = [], []
    for p in paragraphs:
        current.append(p)
        if sum(len(c.split()) for c in current) >= words:
            chunks.append("\n\n".join(current))
            current = []
    return chunks


def _pieces(text: str, whole_below: int | None) -> list[str]:
    """~200-word chunks of a long text; a record shorter than `whole_below` words is one piece."""
    if whole_below is not None and len(text.split()) < whole_below:
        return [text]
    return _chunks(re.split(r"\n\s*\n", text))


def reference_texts(cfg: QualityClassifierConfig, cache_dir: Path) -> list[str]:
    """Positives: text files cut into chunks; JSONL / Parquet records (each a document) kept whole
    unless long. Sources named by URL are fetched once into `cache_dir`."""
    if not cfg.reference_paths:
        from pydoc_data.topics import topics

        return [c for name in sorted(topics) for c in _pieces(topics[name], None)]
    pieces = []
    for source in cfg.reference_paths:
        path = local_copy(source, cache_dir, cfg.download)
        texts, records = read_texts(path, source.text_key)
        pieces += [c for text in texts for c in _pieces(text, 200 if records else None)]
    return pieces


def train_classifier(
    doc_paths: list[str], cfg: QualityClassifierConfig, out_path: Path, cache_dir: Path
) -> dict[str, float]:
    positives = reference_texts(cfg, cache_dir)
    # Hash-ranked sample: the same documents whatever the shard order or count.
    rows = iter_rows(doc_paths, ["doc_id", "text", "lang"])
    ranked = sorted((unit_interval(cfg.seed, r["doc_id"]), r["text"]) for r in rows if cfg.scores(r.get("lang")))
    # Balanced classes keep the score calibrated around the decision boundary.
    negatives = [text for _, text in ranked[: min(cfg.negatives, len(positives))]]
    lines = [f"{POSITIVE} {one_line(t)}" for t in positives] + [f"{NEGATIVE} {one_line(t)}" for t in negatives]
    lines.sort(key=lambda line: unit_interval(cfg.seed, line))
    heldout = [line for line in lines if unit_interval(cfg.seed, "heldout", line) < cfg.heldout_fraction]
    train = [line for line in lines if unit_interval(cfg.seed, "heldout", line) >= cfg.heldout_fraction]
    train_file, test_file = out_path.with_suffix(".train.txt"), out_path.with_suffix(".heldout.txt")
    train_file.write_text("\n".join(train) + "\n")
    if heldout:
        test_file.write_text("\n".join(heldout) + "\n")
    result = train_and_save(
        train_file,
        out_path,
        cfg.lr,
        cfg.lr_retries,
        test_file if heldout else None,
        epoch=cfg.epochs,
        wordNgrams=2,
        bucket=1 << 17,  # 2M default buckets make a 256 MB model; 131k is plenty here
        dim=32,
        minCount=2,
        seed=cfg.seed,
    )
    info: dict[str, float] = {
        "quality_positives": len(positives),
        "quality_negatives": len(negatives),
        "quality_train_lines": len(train),
        "quality_lr": result["lr"],
    }
    if heldout:
        # One label per line: precision at 1 is the accuracy.
        info.update(quality_heldout_lines=result["test_lines"], quality_heldout_accuracy=result["test_precision_at_1"])
        test_file.unlink()
    train_file.unlink()
    return info


def sample_scores(
    model_path: str, doc_paths: list[str], cfg: QualityClassifierConfig, sample: int = 5000
) -> list[float]:
    """Scores of a hash-chosen sample of up to `sample` documents, highest first: the classifier's
    distribution, for its keep threshold and its percentile buckets."""
    rows = iter_rows(doc_paths, ["doc_id", "text", "lang"])
    ranked = sorted((unit_interval(cfg.seed, "top", r["doc_id"]), r["text"]) for r in rows if cfg.scores(r.get("lang")))
    ranked = ranked[:sample]
    return sorted((score_text(model_path, text, cfg) for _, text in ranked), reverse=True)


def score_threshold(scores: list[float], cfg: QualityClassifierConfig, fixed: float) -> float:
    """The score above which `keep_top_fraction` of the sampled documents lie (`fixed` when no
    fraction is set, or no document to rank)."""
    if cfg.keep_top_fraction is None or not scores:
        return fixed
    return scores[min(len(scores) - 1, max(0, round(len(scores) * cfg.keep_top_fraction) - 1))]


def bucket_edges(scores: list[float], buckets: int) -> list[float]:
    """`buckets - 1` ascending cut points at the sample's percentiles: bucket k holds the k-th of
    `buckets` equal shares, 0 the lowest scores (Nemotron-CC's percentile buckets)."""
    ascending = scores[::-1]
    return [ascending[len(ascending) * k // buckets] for k in range(1, buckets)] if ascending else []


@functools.cache
def load_classifier(path: str):
    """A fastText model, or one of the judge route's own models (which answer the same calls)."""
    from tasks.filter.linear import is_npz_model
    from tasks.filter.stumps import load_npz_model

    if is_npz_model(path):
        return load_npz_model(path)
    import fasttext

    return fasttext.load_model(path)


def model_input(model, text: str) -> str:
    """What the model was trained on: the whole page, or its first 200 words on one line."""
    return text if getattr(model, "reads_whole_text", False) else one_line(text)


def quality_score(model_path: str, text: str, label: str = POSITIVE) -> float:
    model = load_classifier(model_path)
    labels, probs = model.predict(model_input(model, text), k=-1)
    return float(dict(zip(labels, probs, strict=True)).get(label, 0.0))


def score_text(model_path: str, text: str, cfg: QualityClassifierConfig) -> float:
    """The document's quality score: P(good); with a judge trained per score (0..5), the expected score."""
    if cfg.annotate is None or cfg.annotate.classes == "binary":
        return quality_score(model_path, text, cfg.positive_label)
    model = load_classifier(model_path)
    labels, probs = model.predict(model_input(model, text), k=-1)
    return float(sum(int(label.removeprefix("__label__")) * p for label, p in zip(labels, probs, strict=True)))


KNOWN_POSITIVE_LABELS = ("__label__hq", "__label__1", "__label__pos", "__label__positive", "__label__good",
                         "__label__high", "__label__quality")  # fmt: skip


def positive_label(model_path: str, cfg: QualityClassifierConfig) -> str:
    """The label that means "good" in a published model: the configured one when set and present,
    else the one known positive label among the model's; anything else is ambiguous."""
    labels = list(load_classifier(model_path).get_labels())
    if "positive_label" in cfg.model_fields_set:
        if cfg.positive_label not in labels:
            raise ValueError(f"positive_label {cfg.positive_label} is not a label of the model: {labels}")
        return cfg.positive_label
    known = [label for label in labels if label in KNOWN_POSITIVE_LABELS]
    if len(known) != 1:
        raise ValueError(f"cannot tell which of the model's labels {labels} means good: set "
                         "filter.quality.positive_label")  # fmt: skip
    return known[0]
