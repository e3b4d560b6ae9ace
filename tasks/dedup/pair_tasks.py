"""The partitioned steps of dedup's global phase. Each is a shard task (`map_shards`): it runs in the
stage's pool or on the cluster's workers (shared-nothing with a store), in a DuckDB of its own
capped at `dedup.memory_limit_mb` that spills to its scratch directory past it, and writes Parquet
files that the next step reads by partition. Nothing in them grows with the corpus but disk:

1. `band_pairs`, one task per LSH band: documents sharing a bucket become candidate pairs (a < b),
   split into `partitions` by `a % partitions`, so every copy of a pair lands in one partition.
2. `partition_requests`, one task per partition: its distinct pairs, and the documents whose values
   (text, or signature) verifying them needs, filed under the input shard that holds each one.
3. `route_values`, one task per input shard: reads the shard once and sends each asked-for value to
   the partitions that asked.
4. `verify_partition`, one task per partition: joins its pairs with the values it received and
   measures each pair's similarity.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from tasks.dedup.config import DedupConfig
from tasks.dedup.minhash import SIGNATURE_DTYPE, jaccard, normalize, shingles

VERIFY_BATCH = 2048  # pairs (each with two texts) held in Python at once
MEASURED_SCHEMA = pa.schema([("a", pa.int64()), ("b", pa.int64()), ("similarity", pa.float64())])


@dataclass(frozen=True)
class GlobalStep:
    """What every task of the global phase is given: the settings and the document table."""

    cfg: DedupConfig
    docs: str  # docs.parquet: idx (survivor order), doc_id, shard, exact_root


def task_db(cfg: DedupConfig, scratch: Path) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB within the memory limit, spilling to `scratch`; one thread (the tasks run
    side by side, one per core)."""
    scratch.mkdir(parents=True, exist_ok=True)
    config = {"memory_limit": f"{cfg.memory_limit_mb}MB", "temp_directory": str(scratch), "threads": 1,
              "preserve_insertion_order": False}  # fmt: skip
    return duckdb.connect(":memory:", config=config)


def _copy(con: duckdb.DuckDBPyConnection, query: str, path: Path) -> None:
    """The query's rows as one Parquet file, renamed into place once complete."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    con.execute(f"copy ({query}) to '{tmp}' (format parquet, compression zstd)")
    tmp.replace(path)


def _write_split(con: duckdb.DuckDBPyConnection, table: str, key: str, keys: Iterable[int],
                 path_of: Callable[[int], Path], columns: str = "*") -> int:  # fmt: skip
    """One Parquet file per key value (the rows of `table` whose `key` equals it); returns the table's rows."""
    for value in keys:
        _copy(con, f"select {columns} from {table} where {key} = {value}", path_of(value))
    return int(con.execute(f"select count(*) from {table}").fetchone()[0])


def band_pairs(band_dir: str, out: Path, step: GlobalStep, band: int) -> dict[str, Any]:
    """Step 1 for one band: `out/part-<p>/band-<b>.parquet` (a, b) for every partition p."""
    cfg = step.cfg
    con = task_db(cfg, out / "_state" / f"duckdb-band-{band}")
    try:
        con.execute(
            f"""create table members as select k.bucket, d.idx from read_parquet('{band_dir}/*.parquet') k
            join read_parquet('{step.docs}') d using (doc_id) where d.exact_root = d.idx"""
        )  # exact copies are left out: their exact root stands for them
        con.execute(
            "create table multi as select *, count(*) over (partition by bucket) as n from members qualify n > 1"
        )
        # Small buckets give every pair (so verification can find the true neighbour); a huge bucket
        # (boilerplate, templates) links each member to its first one to stay linear.
        con.execute(
            f"""create table pairs as select distinct a, b from (
                select x.idx as a, y.idx as b from multi x join multi y on x.bucket = y.bucket
                where x.n <= {cfg.max_pair_bucket} and x.idx < y.idx
                union all
                select min(idx) over (partition by bucket) as a, idx as b from multi where n > {cfg.max_pair_bucket}
            ) where a <> b"""
        )
        pairs = _write_split(con, "pairs", f"a % {cfg.partitions}", range(cfg.partitions),
                             lambda part: out / f"part-{part:05d}" / f"band-{band:05d}.parquet", "a, b")  # fmt: skip
    finally:
        con.close()
    return {"band_pairs": pairs}


def partition_requests(pair_dir: str, out: Path, step: GlobalStep, part: int) -> dict[str, Any]:
    """Step 2 for one partition: `out/candidates/part-<p>.parquet` (its distinct pairs) and, unless
    verification is off, `out/requests/shard=<s>/part-<p>.parquet` (idx, doc_id, part) per input shard."""
    con = task_db(step.cfg, out / "_state" / f"duckdb-part-{part}")
    try:
        con.execute(f"create table pairs as select distinct a, b from read_parquet('{pair_dir}/*.parquet')")
        _copy(con, "select a, b from pairs", out / "candidates" / f"part-{part:05d}.parquet")
        if step.cfg.verify != "none":
            con.execute(
                f"""create table wanted as select d.idx, d.doc_id, d.shard from read_parquet('{step.docs}') d
                semi join (select a as idx from pairs union select b from pairs) w on w.idx = d.idx"""
            )
            shards = [shard for (shard,) in con.execute("select distinct shard from wanted order by 1").fetchall()]
            _write_split(con, "wanted", "shard", shards, lambda shard: out / "requests" / f"shard={shard:05d}" /
                         f"part-{part:05d}.parquet", f"idx, doc_id, {part} as part")  # fmt: skip
        (pairs,) = con.execute("select count(*) from pairs").fetchone()
    finally:
        con.close()
    return {"candidate_pairs": int(pairs)}


def route_values(inputs: tuple[str, str], out: Path, step: GlobalStep, shard: int) -> dict[str, Any]:
    """Step 3 for one input shard: `out/part-<p>/shard-<s>.parquet` (idx and the value) per partition
    that asked. `inputs`: the shard's values file (documents, or signatures) and its requests folder."""
    values_file, requests = inputs
    columns = "v.signature" if step.cfg.verify == "signature" else "v.text, v.lang"
    con = task_db(step.cfg, out / "_state" / f"duckdb-shard-{shard}")
    try:
        con.execute(
            f"""create table routed as select r.part, r.idx, {columns} from read_parquet('{requests}/*.parquet') r
            join read_parquet('{values_file}') v using (doc_id)"""
        )
        parts = [p for (p,) in con.execute("select distinct part from routed order by 1").fetchall()]
        path_of = lambda part: out / f"part-{part:05d}" / f"shard-{shard:05d}.parquet"  # noqa: E731
        rows = _write_split(con, "routed", "part", parts, path_of, "* exclude (part)")
    finally:
        con.close()
    return {"routed_values": rows}


def verify_partition(inputs: tuple[str, str], out: Path, step: GlobalStep, part: int) -> dict[str, Any]:
    """Step 4 for one partition: `out/part-<p>.parquet` (a, b, similarity) for all its pairs.
    `inputs`: the partition's candidates file and the folder of values routed to it."""
    candidates, values = inputs
    cfg = step.cfg
    columns = ["sa", "sb"] if cfg.verify == "signature" else ["ta", "la", "tb", "lb"]
    select = (
        "va.signature as sa, vb.signature as sb"
        if cfg.verify == "signature"
        else "va.text as ta, va.lang as la, vb.text as tb, vb.lang as lb"
    )
    path = out / f"part-{part:05d}.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    con = task_db(cfg, out / "_state" / f"duckdb-verify-{part}")
    measured = 0
    try:
        routed = f"read_parquet('{values}/*.parquet')" if any(Path(values).glob("*.parquet")) else "values_schema"
        con.execute("create table values_schema (idx bigint, text varchar, lang varchar, signature blob)")
        con.execute(f"create table v as select * from {routed}")  # nothing routed: the partition has no pairs
        query = f"""select c.a, c.b, {select} from read_parquet('{candidates}') c
            join v va on va.idx = c.a join v vb on vb.idx = c.b"""
        with pq.ParquetWriter(tmp, MEASURED_SCHEMA, compression="zstd") as writer:
            for batch in con.sql(query).to_arrow_reader(VERIFY_BATCH):
                rows = zip(*(batch.column(c).to_pylist() for c in columns), strict=True)
                sims = pa.array([similarity(cfg, *row) for row in rows], pa.float64())
                writer.write_table(pa.table([batch.column("a"), batch.column("b"), sims], schema=MEASURED_SCHEMA))
                measured += batch.num_rows
    finally:
        con.close()
    tmp.replace(path)
    return {"measured_pairs": measured}


def similarity(cfg: DedupConfig, *values: Any) -> float:
    """A pair's similarity: signature agreement, or exact shingle Jaccard of the normalized texts."""
    if cfg.verify == "signature":
        x, y = values
        return float(np.mean(np.frombuffer(x, SIGNATURE_DTYPE) == np.frombuffer(y, SIGNATURE_DTYPE)))
    ta, la, tb, lb = values
    k = cfg.shingle_words
    return jaccard(shingles(normalize(ta, la), k), shingles(normalize(tb, lb), k))
