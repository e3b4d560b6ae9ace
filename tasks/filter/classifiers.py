"""The filter's classifiers made ready before the shards run: trained (reference vs. web, or on an
LLM judge's scores) or taken (a path, a URL), each with its keep threshold and percentile buckets;
a resumed run reuses what an interrupted one prepared (`quality_model*.json`, written last)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from storage.fingerprint import file_sha256
from storage.shards import atomic_write_json, read_json
from tasks.filter.annotated import keep_threshold, train_on_annotations
from tasks.filter.config import FilterConfig, QualityClassifierConfig
from tasks.filter.ensemble import PRIMARY, PreparedClassifier, model_stem, with_model_label
from tasks.filter.quality import bucket_edges, positive_label, sample_scores, score_threshold, train_classifier
from tasks.filter.remote import fetch_pinned
from tasks.stage import workdir_cache


def given_model(cfg: QualityClassifierConfig, model_file: Path, downloads: Path) -> dict[str, Any]:
    """The user's classifier (a path, or a URL fetched once and pinned), with the label meaning good."""
    source = cfg.model_path or fetch_pinned(cfg.model_url, cfg.sha256, downloads, cfg.download)
    shutil.copyfile(source, model_file)
    label = positive_label(str(model_file), cfg)
    where = {"quality_model_path": cfg.model_path} if cfg.model_path else {"quality_model_url": cfg.model_url}
    return {"quality_model": "user" if cfg.model_path else "url", "quality_positive_label": label,
            "quality_model_sha256": file_sha256(str(model_file)), **where}  # fmt: skip


def _make_model(docs: list[str], cfg: QualityClassifierConfig, model_file: Path, out: Path) -> dict[str, Any]:
    if cfg.model_path or cfg.model_url:
        return given_model(cfg, model_file, workdir_cache(out, "downloads"))
    if cfg.annotate is not None:
        judged = train_on_annotations(docs, cfg, model_file, workdir_cache(out, "annotations"))
        return {"quality_model": "judge", **judged}
    return {"quality_model": "trained", **train_classifier(docs, cfg, model_file, workdir_cache(out, "downloads"))}


def prepare_classifier(
    docs: list[str], cfg: QualityClassifierConfig, out: Path, buckets: int = 20
) -> tuple[str, dict[str, Any]]:
    """Train the classifier (or take the user's) into `out`, with its facts beside it: threshold
    and bucket edges from the scores of a hash-chosen sample of the documents."""
    stem = model_stem(cfg.name)
    model_file, info_file = out / f"{stem}.bin", out / f"{stem}.json"
    if not info_file.exists():  # a resumed run keeps the model it already trained
        info = _make_model(docs, cfg, model_file, out)
        fixed = keep_threshold(cfg.annotate) if info["quality_model"] == "judge" else cfg.min_score
        scores = sample_scores(str(model_file), docs, with_model_label(cfg, info))
        info["quality_threshold"] = score_threshold(scores, cfg, fixed)
        info["quality_bucket_edges"] = bucket_edges(scores, buckets)
        atomic_write_json(info_file, info)
    return str(model_file), read_json(info_file)


def prepare_all(docs: list[str], cfg: FilterConfig, out: Path) -> tuple[list[PreparedClassifier], dict[str, Any]]:
    """Every enabled classifier, and the facts to record: the primary's at the top level (as with
    one classifier), the others under `classifiers.<name>`."""
    prepared, info = [], {}
    for classifier in cfg.classifiers():
        model_path, facts = prepare_classifier(docs, classifier, out, cfg.quality_buckets)
        prepared.append(PreparedClassifier.from_info(classifier, model_path, facts))
        if classifier.name == PRIMARY:
            info |= facts
        else:
            info.setdefault("classifiers", {})[classifier.name] = facts
    return prepared, info


def load_prepared(cfg: FilterConfig, out: Path) -> list[PreparedClassifier]:
    """The classifiers a finished filter output prepared (for `explain`); none it lacks."""
    prepared = []
    for classifier in cfg.classifiers():
        stem = model_stem(classifier.name)
        model_file, info_file = out / f"{stem}.bin", out / f"{stem}.json"
        if model_file.exists() and info_file.exists():
            prepared.append(PreparedClassifier.from_info(classifier, str(model_file), read_json(info_file)))
    return prepared
