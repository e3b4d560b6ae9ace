"""dedup: exact (normalized-text hash), then near-duplicate (MinHash + LSH), global over all shards.

Signatures come from datasketch. LSH banding is a DuckDB group-by over (band, bucket) rows: each
bucket links its members to its smallest member, candidate links are verified against the
estimated Jaccard similarity, and a union-find over the verified links forms the clusters. One
document per cluster (the smallest doc_id) is kept, so the result depends on content only.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from datasketch import MinHash
from datasketch.lsh import _optimal_param

from storage.progress import progress_bar
from tasks import STAGE_VERSIONS
from tasks.config import DedupConfig
from tasks.documents import DEDUP_COLUMNS, removed_row, write_shard
from tasks.stage import StageInput, StageOutcome

VERSION = STAGE_VERSIONS["dedup"]
STAGE = "dedup"
PUNCT = re.compile(r"[^\w\s]")


def normalize(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).lower()
    return " ".join(PUNCT.sub(" ", text).split())


def shingles(normalized: str, k: int) -> set[bytes]:
    words = normalized.split()
    if len(words) < k:
        return {" ".join(words).encode()}
    return {" ".join(words[i : i + k]).encode() for i in range(len(words) - k + 1)}


def signature(normalized: str, cfg: DedupConfig) -> np.ndarray:
    mh = MinHash(num_perm=cfg.num_perm, seed=cfg.seed)
    mh.update_batch(list(shingles(normalized, cfg.shingle_words)))
    return mh.hashvalues


class UnionFind:
    def __init__(self, n: int):
        self.parent = list(range(n))

    def find(self, x: int) -> int:
        while self.parent[x] != x:
            self.parent[x] = self.parent[self.parent[x]]
            x = self.parent[x]
        return x

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            # The smaller index becomes the root; indices follow doc_id order, so roots are kept docs.
            self.parent[max(ra, rb)] = min(ra, rb)


def band_rows(signatures: np.ndarray, bands: int, rows: int) -> pa.Table:
    """(doc, band, bucket) rows: bucket = 64-bit hash of the band's slice of the signature."""
    docs, band_ids, buckets = [], [], []
    for doc, sig in enumerate(signatures):
        for b in range(bands):
            digest = hashlib.blake2b(sig[b * rows : (b + 1) * rows].tobytes(), digest_size=8).digest()
            docs.append(doc)
            band_ids.append(b)
            buckets.append(int.from_bytes(digest, "big", signed=True))
    return pa.table(
        {
            "doc": pa.array(docs, pa.int32()),
            "band": pa.array(band_ids, pa.int16()),
            "bucket": pa.array(buckets, pa.int64()),
        }
    )


def candidate_links(table: pa.Table, tmp_dir: Path) -> list[tuple[int, int]]:
    """Each LSH bucket links every member to its smallest member: linear in bucket size."""
    con = duckdb.connect()
    try:
        tmp_dir.mkdir(parents=True, exist_ok=True)
        con.execute(f"set temp_directory = '{tmp_dir}'")  # spills to disk past the memory limit
        con.register("bands", table)
        return con.execute(
            """
            select distinct root, doc from (
                select doc, min(doc) over (partition by band, bucket) as root from bands
            ) where root <> doc order by root, doc
            """
        ).fetchall()
    finally:
        con.close()


def find_clusters(
    docs: list[dict[str, Any]], cfg: DedupConfig, tmp_dir: Path
) -> tuple[UnionFind, dict[int, tuple[str, float]]]:
    """Return the union-find over doc indices and, per removed index, (rule, similarity)."""
    n = len(docs)
    uf = UnionFind(n)
    why: dict[int, tuple[str, float]] = {}
    normalized = [normalize(d["text"]) for d in docs]
    first_by_hash: dict[str, int] = {}
    unique = []
    for i, text in enumerate(normalized):
        key = hashlib.sha1(text.encode()).hexdigest()
        if key in first_by_hash:
            uf.union(first_by_hash[key], i)
            why[i] = ("exact_duplicate", 1.0)
        else:
            first_by_hash[key] = i
            unique.append(i)
    bands, rows = _optimal_param(cfg.threshold, cfg.num_perm, 0.5, 0.5)
    sigs = np.zeros((len(unique), cfg.num_perm), dtype=np.uint64)
    with progress_bar("dedup: minhash", total=len(unique)) as advance:
        for j, i in enumerate(unique):
            sigs[j] = signature(normalized[i], cfg)
            advance()
    for a, b in candidate_links(band_rows(sigs, bands, rows), tmp_dir):
        similarity = float(np.mean(sigs[a] == sigs[b]))
        if similarity >= cfg.threshold:
            uf.union(unique[a], unique[b])
            why.setdefault(unique[b], ("near_duplicate", similarity))
    return uf, why


def run(inputs: dict[str, StageInput], cfg: DedupConfig, out: Path) -> StageOutcome:
    shards = inputs["filter"].files("docs")
    tables = [pq.read_table(p) for p in shards]
    docs = [row for t in tables for row in t.to_pylist()]
    shard_of = [i for i, t in enumerate(tables) for _ in range(t.num_rows)]
    # Clusters are decided in doc_id order so the kept document does not depend on sharding.
    order = sorted(range(len(docs)), key=lambda i: docs[i]["doc_id"])
    ordered = [docs[i] for i in order]
    uf, why = find_clusters(ordered, cfg, out / "_state" / "duckdb-tmp")
    roots = [uf.find(i) for i in range(len(ordered))]
    sizes: dict[int, int] = {}
    for r in roots:
        sizes[r] = sizes.get(r, 0) + 1
    kept: list[list[dict]] = [[] for _ in shards]
    removed: list[list[dict]] = [[] for _ in shards]
    counts = {"exact_duplicate": 0, "near_duplicate": 0}
    for pos, doc in enumerate(ordered):
        shard = shard_of[order[pos]]
        root = roots[pos]
        doc["dup_cluster"] = ordered[root]["doc_id"]
        doc["dup_cluster_size"] = sizes[root]
        if root == pos:
            kept[shard].append(doc)
            continue
        rule, similarity = why.get(pos, ("near_duplicate", 0.0))  # joined through a chain of links
        counts[rule] += 1
        removed[shard].append(removed_row(doc, STAGE, rule, similarity, f"cluster={doc['dup_cluster']}"))
    for i in range(len(shards)):
        kept[i].sort(key=lambda d: d["doc_id"])
        write_shard(out, i, kept[i], removed[i], DEDUP_COLUMNS)
    n_kept = sum(len(k) for k in kept)
    outcome = StageOutcome(len(docs), n_kept, len(docs) - n_kept)
    bands, rows = _optimal_param(cfg.threshold, cfg.num_perm, 0.5, 0.5)
    outcome.info = {"bands": bands, "rows_per_band": rows, "clusters": sum(1 for s in sizes.values() if s > 1)}
    for name, value in {**counts, **outcome.info}.items():
        outcome.metric(name, value)
    return outcome
