"""The global half of dedup: LSH buckets -> candidate pairs -> verification -> clusters.

Everything that grows with the corpus stays in DuckDB, which spills to disk past its memory limit:
the per-shard signature and bucket Parquet files are read there, grouped by (band, bucket), and the
candidate pairs stream back in record batches. Python holds only O(docs) integer arrays for the
union-find. Documents are numbered in survivor order (the config's `keep` rule, then doc_id), and a
union always keeps the smaller number as root, so each cluster's root is its survivor whatever the
sharding or the order the pairs arrive in.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from tasks.dedup.config import DedupConfig
from tasks.dedup.minhash import SIGNATURE_DTYPE, jaccard, normalize, shingles

SURVIVOR_ORDER = {
    "smallest_doc_id": "doc_id",
    "highest_quality": "quality_score desc nulls last, doc_id",
    "longest": "n_words desc, doc_id",
}
EXACT, NEAR = 1, 2
PAIR_BATCH = 65_536


def connect(cfg: DedupConfig, tmp_dir: Path) -> duckdb.DuckDBPyConnection:
    """A fresh on-disk database: its tables live in files, so only `memory_limit_mb` is in RAM."""
    tmp_dir.mkdir(parents=True, exist_ok=True)
    for old in tmp_dir.glob("lsh.duckdb*"):  # left by an interrupted run; phase 2 restarts whole
        old.unlink()
    # Results are ordered explicitly where it matters; dropping insertion order lets DuckDB stream and spill.
    config = {"memory_limit": f"{cfg.memory_limit_mb}MB", "temp_directory": str(tmp_dir),
              "preserve_insertion_order": False}  # fmt: skip
    return duckdb.connect(str(tmp_dir / "lsh.duckdb"), config=config)


class UnionFind:
    """Union by smaller root over numpy arrays (8 bytes per document)."""

    def __init__(self, n: int):
        self.parent = np.arange(n, dtype=np.int64)

    def find(self, x: int) -> int:
        parent = self.parent
        root = x
        while parent[root] != root:
            root = parent[root]
        while parent[x] != root:  # path compression
            parent[x], x = root, parent[x]
        return int(root)

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)

    def roots(self) -> np.ndarray:
        parent = self.parent
        while True:
            nxt = parent[parent]
            if np.array_equal(nxt, parent):
                return parent
            parent = nxt


def _load_docs(con: duckdb.DuckDBPyConnection, work: Path, cfg: DedupConfig) -> int:
    con.execute(
        f"""create table docs as select row_number() over (order by {SURVIVOR_ORDER[cfg.keep]}) - 1 as idx,
        doc_id, shard, exact_key from read_parquet('{work}/sigs/*.parquet')"""
    )
    n, distinct = con.execute("select count(*), count(distinct doc_id) from docs").fetchone()
    if n != distinct:
        (dup,) = con.execute("select doc_id from docs group by doc_id having count(*) > 1 limit 1").fetchone()
        raise ValueError(f"dedup input has {n - distinct} repeated doc_id(s), e.g. {dup}: was a WARC given twice?")
    return int(n)


def _candidate_pairs(con: duckdb.DuckDBPyConnection, work: Path, cfg: DedupConfig) -> None:
    """Pairs (a < b) that share a bucket in some band; exact-duplicate copies are left out."""
    con.execute("create table exact as select idx, min(idx) over (partition by exact_key) as root from docs")
    con.execute(
        f"""create table members as select k.band, k.bucket, d.idx
        from read_parquet('{work}/buckets/*.parquet') k join docs d using (doc_id) join exact e using (idx)
        where e.root = e.idx"""
    )
    con.execute(
        """create table multi as select m.*, count(*) over (partition by m.band, m.bucket) as n from members m
        qualify n > 1"""
    )
    # Small buckets give every pair (so verification can find the true neighbour); a huge bucket
    # (boilerplate, templates) links each member to its first one to stay linear.
    con.execute(
        f"""create table pairs as select distinct a, b from (
            select x.idx as a, y.idx as b from multi x join multi y on x.band = y.band and x.bucket = y.bucket
            where x.n <= {cfg.max_pair_bucket} and x.idx < y.idx
            union all
            select min(idx) over (partition by band, bucket) as a, idx as b from multi where n > {cfg.max_pair_bucket}
        ) where a <> b"""
    )


class ShardValues:
    """Per-document values (signature or shingle set) of the few most recent shards, by idx.

    Pairs arrive sorted by their two shards, so holding three shards is enough to load each shard
    about once per partner shard: memory is a few shards, whatever the corpus size.
    """

    def __init__(self, con: duckdb.DuckDBPyConnection, work: Path, text_shards: list[str], cfg: DedupConfig):
        # A cursor of its own: the pair stream keeps the main connection's result open.
        self.con, self.work, self.text_shards, self.cfg = con.cursor(), work, text_shards, cfg
        self.cache: OrderedDict[int, dict[int, Any]] = OrderedDict()

    def _load(self, shard: int) -> dict[int, Any]:
        ids = dict(self.con.execute("select doc_id, idx from docs where shard = ?", [shard]).fetchall())
        if self.cfg.verify == "signature":
            path, column = self.work / "sigs" / f"part-{shard:05d}.parquet", "signature"
        else:  # the text and its language (which decides its shingles)
            table = pq.read_table(self.text_shards[shard], columns=["doc_id", "text", "lang"])
            pairs = zip(table.column("text").to_pylist(), table.column("lang").to_pylist(), strict=True)
            return {ids[d]: v for d, v in zip(table.column("doc_id").to_pylist(), pairs, strict=True)}
        table = pq.read_table(path, columns=["doc_id", column])
        doc_ids, values = table.column("doc_id").to_pylist(), table.column(column).to_pylist()
        return {ids[d]: v for d, v in zip(doc_ids, values, strict=True)}

    def get(self, shard: int, idx: int) -> Any:
        if shard not in self.cache:
            self.cache[shard] = self._load(shard)
            if len(self.cache) > 3:
                self.cache.popitem(last=False)
        self.cache.move_to_end(shard)
        return self.cache[shard][idx]

    def similarity(self, a: int, sa: int, b: int, sb: int) -> float:
        x, y = self.get(sa, a), self.get(sb, b)
        if self.cfg.verify == "signature":
            return float(np.mean(np.frombuffer(x, SIGNATURE_DTYPE) == np.frombuffer(y, SIGNATURE_DTYPE)))
        k = self.cfg.shingle_words
        return jaccard(shingles(normalize(*x), k), shingles(normalize(*y), k))


def _verified_pairs(con: duckdb.DuckDBPyConnection, work: Path, text_shards: list[str], cfg: DedupConfig):
    """Yield (a, b, similarity) arrays per batch; similarity is NaN when verification is off."""
    if cfg.verify == "none":
        for batch in con.sql("select a, b from pairs").to_arrow_reader(PAIR_BATCH):
            a, b = (batch.column(c).to_numpy().astype(np.int64) for c in ("a", "b"))
            yield a, b, np.full(len(a), np.nan)
        return
    values = ShardValues(con, work, text_shards, cfg)
    query = """select a, b, x.shard as sa, y.shard as sb from pairs join docs x on x.idx = a join docs y on y.idx = b
        order by least(sa, sb), greatest(sa, sb)"""
    for batch in con.sql(query).to_arrow_reader(PAIR_BATCH):
        a, b, sa, sb = (batch.column(c).to_numpy().astype(np.int64) for c in ("a", "b", "sa", "sb"))
        zipped = zip(a.tolist(), sa.tolist(), b.tolist(), sb.tolist(), strict=True)
        yield a, b, np.array([values.similarity(*row) for row in zipped])


def find_clusters(work: Path, text_shards: list[str], cfg: DedupConfig) -> dict[str, Any]:
    """Cluster the documents whose signatures are under `work`; write `work/clusters.parquet`.

    The clusters file lists every document of a cluster of two or more: doc_id, its shard, the
    survivor's doc_id (`cluster`), the cluster size, and for removed documents the rule and the best
    similarity of a verified link.
    """
    started = time.perf_counter()
    con = connect(cfg, work / "duckdb-tmp")
    try:
        n = _load_docs(con, work, cfg)
        _candidate_pairs(con, work, cfg)
        links = Links(n)
        links.add_exact(con.execute("select root, idx from exact where root <> idx").fetchnumpy())
        for a, b, sim in _verified_pairs(con, work, text_shards, cfg):
            links.add_verified(a, b, sim, cfg.threshold)
        roots, sizes = links.finish()
        _write_clusters(con, work / "clusters.parquet", links, roots, sizes)
        stats = {
            "docs": n,
            "exact_duplicates": int((links.rule == EXACT).sum()),
            "near_duplicates": int((links.rule == NEAR).sum()),
            "candidate_pairs": links.candidates,
            "verified_pairs": links.verified,
            "clusters": int((sizes > 1).sum()),
            "largest_cluster": int(sizes.max()) if n else 0,
            "cluster_seconds": round(time.perf_counter() - started, 3),
        }
    finally:
        con.close()
        for path in (work / "duckdb-tmp").glob("lsh.duckdb*"):
            path.unlink()
    return stats


class Links:
    """Union-find over document indexes, with each document's removal rule and best similarity."""

    def __init__(self, n: int):
        self.uf = UnionFind(n)
        self.rule = np.zeros(n, dtype=np.int8)
        self.best = np.full(n, np.nan, dtype=np.float32)
        self.candidates = self.verified = 0

    def add_exact(self, exact: dict[str, np.ndarray]) -> None:
        for root, idx in zip(exact["root"].tolist(), exact["idx"].tolist(), strict=True):
            self.uf.union(root, idx)
        self.rule[exact["idx"]] = EXACT
        self.best[exact["idx"]] = 1.0

    def add_verified(self, a: np.ndarray, b: np.ndarray, sim: np.ndarray, threshold: float) -> None:
        self.candidates += len(a)
        ok = np.isnan(sim) | (sim >= threshold)
        self.verified += int(ok.sum())
        for x, y, s in zip(a[ok].tolist(), b[ok].tolist(), sim[ok].tolist(), strict=True):
            self.uf.union(x, y)
            for d in (x, y):
                if self.rule[d] != EXACT and not s <= self.best[d]:  # NaN-safe max
                    self.best[d] = s

    def finish(self) -> tuple[np.ndarray, np.ndarray]:
        """Each document's root (its cluster's survivor) and each root's cluster size."""
        roots = self.uf.roots()
        sizes = np.bincount(roots, minlength=len(roots))
        members = np.flatnonzero(sizes[roots] > 1)
        removed = members[roots[members] != members]
        self.rule[removed[self.rule[removed] != EXACT]] = NEAR
        return roots, sizes


def _write_clusters(con: Any, out: Path, links: Links, roots: np.ndarray, sizes: np.ndarray) -> None:
    members = np.flatnonzero(sizes[roots] > 1)
    names = np.where(links.rule[members] == EXACT, "exact_duplicate", "near_duplicate")
    table = pa.table(
        {
            "idx": members,
            "root": roots[members],
            "size": sizes[roots[members]],
            "rule": pa.array(np.where(roots[members] == members, None, names).tolist(), pa.string()),
            "similarity": pa.array(links.best[members].astype(np.float64), from_pandas=True),
        }
    )
    con.register("clustered", table)
    tmp = out.with_suffix(".parquet.tmp")
    con.execute(
        f"""copy (select d.doc_id, d.shard, r.doc_id as cluster, c.size, c.rule,
            case when c.rule is null then null else c.similarity end as similarity
        from clustered c join docs d on d.idx = c.idx join docs r on r.idx = c.root order by d.doc_id)
        to '{tmp}' (format parquet)"""
    )
    tmp.replace(out)
