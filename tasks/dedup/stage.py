"""dedup: exact (normalized-text hash) and MinHash near-duplicates, global over all shards.

Three resumable phases, each bounded in memory:
1. per shard (process pool): datasketch signatures, the exact-text key, and LSH band buckets written
   as `(band, bucket, doc_id)` Parquet (`_state/minhash/`);
2. global (DuckDB, out of core): buckets grouped into candidate pairs, pairs verified per config,
   union-find into clusters; one survivor per cluster by the `keep` rule (`phases`, `clusters`);
3. per shard: documents split into kept and removed (rule, similarity, cluster).
The optional quality check measures the same code against exact Jaccard (`quality_check`).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from storage.section import config_json
from storage.shards import atomic_write_json, read_json
from tasks.dedup.config import DedupConfig
from tasks.dedup.phases import cluster_documents
from tasks.dedup.quality_check import QUALITY_CHECK_VERSION, measure_quality
from tasks.documents import DEDUP_COLUMNS, removed_row, write_shard
from tasks.stage import StageInput, StageOutcome, map_shards, sum_stats, workdir_cache

STAGE = "dedup"


@dataclass(frozen=True)
class OutputShard:
    """Phase 3's argument: the global cluster table every shard reads its rows from."""

    clusters: str | None  # None: dedup is switched off, every document is its own cluster


def output_shard(in_path: str, out: Path, params: OutputShard, index: int) -> dict[str, Any]:
    """Phase 3 for one shard: cluster facts on every document, non-survivors to `removed`."""
    where = [("shard", "=", index)]
    mine = {}
    if params.clusters is not None:
        mine = {r["doc_id"]: r for r in pq.read_table(params.clusters, filters=where).to_pylist()}
    kept, removed = [], []
    for doc in pq.read_table(in_path).to_pylist():
        row = mine.get(doc["doc_id"])
        doc["dup_cluster"] = row["cluster"] if row else doc["doc_id"]
        doc["dup_cluster_size"] = row["size"] if row else 1
        if row and row["rule"]:
            removed.append(removed_row(doc, STAGE, row["rule"], row["similarity"], f"cluster={row['cluster']}"))
        else:
            kept.append(doc)
    return write_shard(out, index, kept, removed, DEDUP_COLUMNS)


# Settings that change how documents are processed, not what dedup finds.
NOT_IN_RESULTS = {"workers", "memory_limit_mb", "partitions"}


def cached_quality_check(cfg: DedupConfig, out: Path) -> dict[str, Any]:
    """The quality check on the generated near-duplicates alone, cached by the dedup settings: a filter
    change reruns dedup on new input but finds this measurement done (`cache: hit`)."""
    settings = {k: v for k, v in config_json(cfg).items() if k not in NOT_IN_RESULTS}
    key = hashlib.sha256(json.dumps({"v": QUALITY_CHECK_VERSION, **settings}, sort_keys=True).encode()).hexdigest()
    cached = workdir_cache(out, "dedup-quality") / f"{key[:24]}.json"
    if cached.exists():
        return {**read_json(cached), "cache": "hit"}
    result = measure_quality([], cfg, out / "_state" / "quality")
    cached.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(cached, result)  # concurrent variants write the same bytes; the last rename wins
    return {**result, "cache": "computed"}


def run(inputs: dict[str, StageInput], cfg: DedupConfig, out: Path) -> StageOutcome:
    shards = inputs["filter"].files("docs")
    work = out / "_state" / "minhash"
    clusters = cluster_documents(shards, cfg, work) if cfg.enabled else {}
    params = OutputShard(str(work / "clusters.parquet") if cfg.enabled else None)
    counts = sum_stats(map_shards(output_shard, shards, out, params, cfg.workers, "dedup"))
    outcome = StageOutcome(counts["docs_in"], counts["docs_out"], counts["docs_removed"])
    outcome.info = {"enabled": cfg.enabled, "num_perm": cfg.num_perm, "bands": cfg.bands, "rows_per_band": cfg.rows,
                    **clusters}  # fmt: skip
    if cfg.quality_check_docs and cfg.enabled:
        outcome.info["quality"] = cached_quality_check(cfg, out)
        outcome.info["quality_check_docs"] = cfg.quality_check_docs
    for name, value in outcome.info.items():
        if isinstance(value, int | float):
            outcome.metric(name, value)
    for name, value in outcome.info.get("quality", {}).items():
        if isinstance(value, int | float):
            outcome.metric(f"quality.{name}", value)
    return outcome
