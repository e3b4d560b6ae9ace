"""dedup phases 1 and 2, shared by the stage and its quality check: signatures, buckets, clusters.

Phase 1 (per shard, process pool): datasketch signatures, the exact-text key, and LSH band buckets
as `(bucket, doc_id)` Parquet, a folder per band. Phase 2 (global, partitioned): `clusters.find_clusters`.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from storage.shards import atomic_write_json, read_json, write_parquet
from tasks.dedup.clusters import find_clusters
from tasks.dedup.config import DedupConfig
from tasks.dedup.minhash import band_buckets, exact_key, normalize, signatures
from tasks.stage import map_shards

SIGNATURE_COLUMNS = ["doc_id", "text", "lang", "quality_score", "n_words"]


def signature_shard(in_path: str, work: Path, cfg: DedupConfig, index: int) -> dict[str, Any]:
    """Phase 1 for one shard: signatures + exact keys, and the shard's LSH bucket rows."""
    table = pq.read_table(in_path, columns=SIGNATURE_COLUMNS)
    texts, langs = table.column("text").to_pylist(), table.column("lang").to_pylist()
    normalized = [normalize(t, lang) for t, lang in zip(texts, langs, strict=True)]
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
    doc_ids = table.column("doc_id").cast(pa.string())
    for band in range(cfg.bands):  # one folder per band: the global phase takes a band per task
        write_parquet(pa.table({"bucket": pa.array(buckets[:, band]), "doc_id": doc_ids}),
                      work / "buckets" / f"band-{band:05d}" / f"part-{index:05d}.parquet")  # fmt: skip
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
