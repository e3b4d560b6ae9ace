"""Weighting by quality bucket inside each domain (copies scale with the bucket's weight; each
domain's weights normalised so its token share stays what the domain mixture asked for), and the
anneal mixture's copies."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from tasks.documents import estimated_tokens
from tasks.mix.config import AnnealMixConfig, MixConfig, bucket_ranges


def bucket_weight(bucket: int | None, ranges: list[tuple[int, int, float]]) -> float:
    if bucket is None:
        return 1.0
    return next((w for lo, hi, w in ranges if lo <= bucket <= hi), 1.0)


def document_weight(doc: dict[str, Any], cfg: MixConfig) -> float:
    """The document's quality-bucket weight times its rehydration weight (by duplicate cluster size)."""
    weight = bucket_weight(doc.get("quality_bucket"), bucket_ranges(cfg.bucket_weights))
    if rehydrate := cfg.rehydrate_weights:
        weight *= bucket_weight(doc.get("dup_cluster_size") or 1, bucket_ranges(rehydrate, "rehydrate"))
    return weight


def domain_norms(docs: list[dict[str, Any]], cfg: MixConfig) -> dict[str, float]:
    """Per domain: tokens / sum(tokens x document weight), so the weighted copies keep its tokens
    (0 when every document of the domain has weight 0)."""
    plain: dict[str, float] = defaultdict(float)
    weighted: dict[str, float] = defaultdict(float)
    for doc in docs:
        plain[doc["domain"]] += estimated_tokens(doc)
        weighted[doc["domain"]] += estimated_tokens(doc) * document_weight(doc, cfg)
    return {d: (plain[d] / weighted[d] if weighted[d] else 0.0) for d in plain}


def document_rate(doc: dict[str, Any], domain_rate: float, norms: dict[str, float], cfg: MixConfig) -> float:
    """Copies of this document: the domain's rate, times its normalised weight, capped."""
    if not cfg.weighs_documents:
        return domain_rate
    return min(domain_rate * document_weight(doc, cfg) * norms[doc["domain"]], float(cfg.max_repeats))


def anneal_copies(doc: dict[str, Any], cfg: AnnealMixConfig | None) -> int:
    """Copies of a kept document in the anneal mixture (0 without one, or when it does not qualify)."""
    if cfg is None or (cfg.domains is not None and doc["domain"] not in cfg.domains):
        return 0
    if cfg.min_bucket is not None and (doc.get("quality_bucket") is None or doc["quality_bucket"] < cfg.min_bucket):
        return 0
    return cfg.repeats
