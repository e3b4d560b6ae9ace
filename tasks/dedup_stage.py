"""dedup: exact (normalized-text hash) and MinHash near-duplicates, global over all shards.

Three resumable phases, each bounded in memory:
1. per shard (process pool): datasketch signatures, the exact-text key, and LSH band buckets written
   as `(band, bucket, doc_id)` Parquet (`_state/minhash/`);
2. global (DuckDB, out of core): buckets grouped into candidate pairs, pairs verified per config,
   union-find into clusters; one survivor per cluster by the `keep` rule (`lsh_clusters`);
3. per shard: documents split into kept and removed (rule, similarity, cluster).
The optional quality check measures the same code against exact Jaccard (`dedup_quality`).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from storage.shards import atomic_write_json, read_json, write_parquet
from tasks import STAGE_VERSIONS
from tasks.config import DedupConfig
from tasks.documents import DEDUP_COLUMNS, removed_row, write_shard
from tasks.lsh_clusters import find_clusters
from tasks.minhash import band_buckets, exact_key, normalize, signatures
from tasks.stage import StageInput, StageOutcome, map_shards, sum_stats

VERSION = STAGE_VERSIONS["dedup"]
STAGE = "dedup"
SIGNATURE_COLUMNS = ["doc_id", "text", "quality_score", "n_words"]


def signature_shard(in_path: str, work: Path, cfg: DedupConfig, index: int) -> dict[str, Any]:
    """Phase 1 for one shard: signatures + exact keys, and the shard's LSH bucket rows."""
    table = pq.read_table(in_path, columns=SIGNATURE_COLUMNS)
    normalized = [normalize(t) for t in table.column("text").to_pylist()]
    sigs = signatures(normalized, cfg.num_perm, cfg.shingle_words, cfg.seed)
    n = len(normalized)
    write_parquet(
        pa.table(
            {
                "doc_id": table.column("doc_id"),
                "shard": pa.array(np.full(n, index, dtype=np.int32)),
                "exact_key": pa.array([exact_key(t) for t in normalized], pa.binary(16)),
                "quality_score": table.column("quality_score"),
                "n_words": table.column("n_words"),
                "signature": pa.array([row.tobytes() for row in sigs], pa.binary()),
            }
        ),
        work / "sigs" / f"part-{index:05d}.parquet",
    )
    buckets = band_buckets(sigs, cfg.bands, cfg.rows)
    write_parquet(
        pa.table(
            {
                "band": pa.array(np.tile(np.arange(cfg.bands, dtype=np.int16), n)),
                "bucket": pa.array(buckets.ravel()),
                "doc_id": pa.array(np.repeat(np.array(table.column("doc_id").to_pylist(), dtype=object), cfg.bands)),
            }
        ),
        work / "buckets" / f"part-{index:05d}.parquet",
    )
    return {"signature_docs": n}


def cluster_documents(shards: list[str], cfg: DedupConfig, work: Path) -> dict[str, Any]:
    """Phases 1 and 2 over any document shards; resumes each phase from what `work` holds."""
    if (work / "clusters.json").exists() and (work / "clusters.parquet").exists():
        return read_json(work / "clusters.json")
    started = time.perf_counter()
    map_shards(signature_shard, shards, work, cfg, workers=cfg.workers, label="dedup: minhash")
    signature_seconds = time.perf_counter() - started
    stats = {**find_clusters(work, shards, cfg), "signature_seconds": round(signature_seconds, 3)}
    atomic_write_json(work / "clusters.json", stats)  # written last: marks phase 2 done
    return stats


def output_shard(in_path: str, out: Path, clusters: str, index: int) -> dict[str, Any]:
    """Phase 3 for one shard: cluster facts on every document, non-survivors to `removed`."""
    mine = {r["doc_id"]: r for r in pq.read_table(clusters, filters=[("shard", "=", index)]).to_pylist()}
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


def run(inputs: dict[str, StageInput], cfg: DedupConfig, out: Path) -> StageOutcome:
    shards = inputs["filter"].files("docs")
    work = out / "_state" / "minhash"
    clusters = cluster_documents(shards, cfg, work)
    counts = sum_stats(map_shards(output_shard, shards, out, str(work / "clusters.parquet"), cfg.workers, "dedup"))
    outcome = StageOutcome(counts["docs_in"], counts["docs_out"], counts["docs_removed"])
    outcome.info = {"num_perm": cfg.num_perm, "bands": cfg.bands, "rows_per_band": cfg.rows, **clusters}
    if cfg.quality_check_docs:
        from tasks.dedup_quality import measure_quality

        outcome.info["quality"] = measure_quality(shards, cfg, out / "_state" / "quality")
        outcome.info["quality_check_docs"] = cfg.quality_check_docs
    for name, value in outcome.info.items():
        if isinstance(value, int | float):
            outcome.metric(name, value)
    for name, value in outcome.info.get("quality", {}).items():
        if isinstance(value, int | float):
            outcome.metric(f"quality.{name}", value)
    return outcome
