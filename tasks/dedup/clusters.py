"""The global half of dedup: LSH buckets -> candidate pairs -> verification -> clusters.

Nothing here holds the corpus, or anything that grows with it, in memory:
- the document table (each document's number in survivor order, its shard, its exact-duplicate
  root) is one sort in DuckDB, which spills to disk past `memory_limit_mb`;
- candidate pairs and their verification are partitioned shard tasks (`pair_tasks.py`), each
  within the memory limit, run like every other shard task (the pool, Dask, Ray; shared-nothing
  with a store);
- clusters are the connected components of the verified and exact-duplicate links, found in DuckDB
  by min-label propagation with pointer jumping (out of core, a few passes over the links).

Documents are numbered in survivor order (the config's `keep` rule, then doc_id) and a component's
label is its smallest number, so each cluster's survivor is the same whatever the sharding, the
partitioning or the order in which pairs are found.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import duckdb

from tasks.dedup.components import find_components, write_clusters
from tasks.dedup.config import DedupConfig
from tasks.dedup.pair_tasks import GlobalStep, band_pairs, partition_requests, route_values, verify_partition
from tasks.stage import map_shards

SURVIVOR_ORDER = {
    "smallest_doc_id": "doc_id",
    "highest_quality": "quality_score desc nulls last, doc_id",
    "longest": "n_words desc, doc_id",
}


def connect(cfg: DedupConfig, tmp_dir: Path) -> duckdb.DuckDBPyConnection:
    """A fresh on-disk database: its tables live in files, so only `memory_limit_mb` is in RAM."""
    tmp_dir.mkdir(parents=True, exist_ok=True)
    for old in tmp_dir.glob("lsh.duckdb*"):  # left by an interrupted run; the step restarts whole
        old.unlink()
    # Results are ordered explicitly where it matters; dropping insertion order lets DuckDB stream and spill.
    config = {"memory_limit": f"{cfg.memory_limit_mb}MB", "temp_directory": str(tmp_dir),
              "preserve_insertion_order": False}  # fmt: skip
    return duckdb.connect(str(tmp_dir / "lsh.duckdb"), config=config)


def write_docs(con: duckdb.DuckDBPyConnection, work: Path, cfg: DedupConfig) -> int:
    """`work/docs.parquet`: idx (survivor order), doc_id, shard, exact_root (the smallest idx with the
    same normalized text). Returns the number of documents."""
    con.execute(
        f"""create table docs as select row_number() over (order by {SURVIVOR_ORDER[cfg.keep]}) - 1 as idx,
        doc_id, shard, exact_key from read_parquet('{work}/sigs/*.parquet')"""
    )
    n, distinct = con.execute("select count(*), count(distinct doc_id) from docs").fetchone()
    if n != distinct:
        (dup,) = con.execute("select doc_id from docs group by doc_id having count(*) > 1 limit 1").fetchone()
        raise ValueError(f"dedup input has {n - distinct} repeated doc_id(s), e.g. {dup}: was a WARC given twice?")
    tmp = work / ".docs.parquet.tmp"
    con.execute(
        f"""copy (select idx, doc_id, shard, min(idx) over (partition by exact_key) as exact_root from docs
        order by idx) to '{tmp}' (format parquet, compression zstd)"""
    )
    tmp.replace(work / "docs.parquet")
    return int(n)


def candidate_and_measured_pairs(work: Path, text_shards: list[str], cfg: DedupConfig) -> Path:
    """The four partitioned steps; returns the folder of measured pairs (a, b, similarity)."""
    step, parts = GlobalStep(cfg, str(work / "docs.parquet")), range(cfg.partitions)
    bands = [str(work / "buckets" / f"band-{b:05d}") for b in range(cfg.bands)]
    map_shards(band_pairs, bands, work / "pairs", step, cfg.workers, "dedup: pairs")
    partitions = [str(work / "pairs" / f"part-{p:05d}") for p in parts]
    map_shards(partition_requests, partitions, work / "candidates", step, cfg.workers, "dedup: candidates")
    if cfg.verify == "none":
        return work / "candidates" / "candidates"
    requests = work / "candidates" / "requests"
    sources = text_shards if cfg.verify == "jaccard" else [str(work / "sigs" / f"part-{s:05d}.parquet")
                                                             for s in range(len(text_shards))]  # fmt: skip
    # Only the shards something was asked of: each task is given its shard and its requests folder.
    asked = [(s, path) for s, path in enumerate(sources) if (requests / f"shard={s:05d}").exists()]
    routed = [(path, str(requests / f"shard={s:05d}")) for s, path in asked]
    map_shards(_RouteShard(route_values, [s for s, _ in asked]), routed, work / "values", step, cfg.workers,
               "dedup: values")  # fmt: skip
    for p in parts:  # a partition nothing was routed to (no pairs) still gets its (empty) folder
        (work / "values" / f"part-{p:05d}").mkdir(parents=True, exist_ok=True)
    candidates, values = work / "candidates" / "candidates", work / "values"
    measured = [(str(candidates / f"part-{p:05d}.parquet"), str(values / f"part-{p:05d}")) for p in parts]
    map_shards(verify_partition, measured, work / "measured", step, cfg.workers, "dedup: verify")
    return work / "measured"


class _RouteShard:
    """`route_values` numbered by input shard, not by its place among the shards something was asked of."""

    def __init__(self, fn: Any, shards: list[int]):
        self.fn, self.shards = fn, shards

    def __call__(self, inputs: tuple[str, str], out: Path, step: GlobalStep, index: int) -> dict[str, Any]:
        return self.fn(inputs, out, step, self.shards[index])


def find_clusters(work: Path, text_shards: list[str], cfg: DedupConfig) -> dict[str, Any]:
    """Cluster the documents whose signatures and buckets are under `work` (phase 1's output);
    write `work/clusters.parquet` (see `components.write_clusters`). Each step resumes from its files."""
    started = time.perf_counter()
    seconds: dict[str, float] = {}
    con = connect(cfg, work / "duckdb-tmp")
    try:
        n = write_docs(con, work, cfg)
        seconds["docs_seconds"] = time.perf_counter() - started
        con.close()
        measured = candidate_and_measured_pairs(work, text_shards, cfg)
        seconds["pairs_seconds"] = time.perf_counter() - started - seconds["docs_seconds"]
        con = connect(cfg, work / "duckdb-tmp")
        stats = find_components(con, work / "docs.parquet", measured, cfg.threshold)
        stats |= write_clusters(con, work / "clusters.parquet")
    finally:
        con.close()
        for path in (work / "duckdb-tmp").glob("lsh.duckdb*"):
            path.unlink()
    stats["largest_cluster"] = stats["largest_cluster"] or min(n, 1)  # no cluster: the largest holds one document
    total = time.perf_counter() - started
    seconds["components_seconds"] = total - sum(seconds.values())
    return {"docs": n, **stats, **{k: round(v, 3) for k, v in seconds.items()}, "cluster_seconds": round(total, 3)}
