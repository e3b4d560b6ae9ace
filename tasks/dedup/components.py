"""Clusters as connected components, out of core: DuckDB tables of links, never an array per document.

The links are the verified near-duplicate pairs and each exact copy's link to its exact root. The
components come from random-priority contraction: each pass maps every linked document to the
highest-priority (smallest hash) member of its neighbourhood and rewrites the links between those
representatives, dropping links inside one; a constant share of the documents vanishes per pass on
any graph (a chain included), so a few dozen passes at most, each a join over the links, which DuckDB
spills past its memory limit. Each document follows its chain of representatives to the last; a
component's label is then its smallest document number, which is its survivor.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb

MAX_PASSES = 200  # expected passes grow with log(documents): 200 is far past any real graph


def label_components(con: duckdb.DuckDBPyConnection) -> int:
    """Table `label` (x, l) for every linked document, from table `links` (a, b). Returns the passes made."""
    con.execute("create table nbr as select a as x, b as y from links where a <> b union select b, a from links "
                "where a <> b")  # fmt: skip
    con.execute("create table rep as select distinct x, x as r from nbr")
    passes = 0
    while con.execute("select count(*) from nbr").fetchone()[0]:
        passes += 1
        if passes > MAX_PASSES:
            raise RuntimeError(f"connected components did not settle in {MAX_PASSES} passes")
        con.execute(
            """create or replace table m as select x, arg_min(y, hash(y)) as l
            from (select x, y from nbr union all select distinct x, x from nbr) group by x"""
        )
        con.execute(
            """create or replace table nbr as select distinct ma.l as x, mb.l as y
            from nbr join m ma on ma.x = nbr.x join m mb on mb.x = nbr.y where ma.l <> mb.l"""
        )
        con.execute(
            "create or replace table rep as select p.x, coalesce(m.l, p.r) as r from rep p left join m on m.x = p.r"
        )
    con.execute("create table label as select x, min(x) over (partition by r) as l from rep")
    return passes


def find_components(con: duckdb.DuckDBPyConnection, docs: Path, measured: Path, threshold: float) -> dict[str, Any]:
    """Tables `links`, `label` and `best` (each linked document's best verified similarity); the counts."""
    con.execute(f"create or replace view docs as select * from read_parquet('{docs}')")
    con.execute(f"create table measured as select * from read_parquet('{measured}/*.parquet', union_by_name=true)")
    has_similarity = "similarity" in [c for (c, *_) in con.execute("describe measured").fetchall()]
    similarity = "similarity" if has_similarity else "cast(null as double)"
    con.execute(
        f"""create table verified as select a, b, {similarity} as similarity from measured
        where {f"similarity >= {threshold}" if has_similarity else "true"}"""
    )
    con.execute(
        """create table links as select a, b from verified
        union all select exact_root, idx from docs where exact_root <> idx"""
    )
    passes = label_components(con)
    con.execute(
        """create table best as select idx, max(similarity) as similarity
        from (select a as idx, similarity from verified union all select b, similarity from verified) group by idx"""
    )
    (candidates,), (verified,) = (con.execute(f"select count(*) from {t}").fetchone() for t in ("measured", "verified"))
    return {"candidate_pairs": int(candidates), "verified_pairs": int(verified), "component_passes": passes}


def write_clusters(con: duckdb.DuckDBPyConnection, out: Path) -> dict[str, Any]:
    """`out` (clusters.parquet): every document of a cluster of two or more: doc_id, its shard, the
    survivor's doc_id (`cluster`), the cluster size, and for removed documents the rule and the best
    similarity of a verified link (1.0 for an exact copy)."""
    con.execute("create table sizes as select l, count(*) as size from label group by l")
    con.execute(
        """create table clustered as select m.x as idx, m.l as root, s.size,
            case when m.x = m.l then null when d.exact_root <> d.idx then 'exact_duplicate'
                 else 'near_duplicate' end as rule,
            case when m.x = m.l then null when d.exact_root <> d.idx then 1.0
                 else cast(cast(b.similarity as float) as double) end as similarity
        from label m join sizes s using (l) join docs d on d.idx = m.x left join best b on b.idx = m.x"""
    )
    tmp = out.with_name(f".{out.name}.tmp")
    con.execute(
        f"""copy (select d.doc_id, d.shard, r.doc_id as cluster, c.size, c.rule, c.similarity
        from clustered c join docs d on d.idx = c.idx join docs r on r.idx = c.root order by d.doc_id)
        to '{tmp}' (format parquet)"""
    )
    tmp.replace(out)
    exact, near = con.execute(
        "select count(*) filter (rule = 'exact_duplicate'), count(*) filter (rule = 'near_duplicate') from clustered"
    ).fetchone()
    clusters, largest = con.execute("select count(*), coalesce(max(size), 0) from sizes").fetchone()
    return {"exact_duplicates": int(exact), "near_duplicates": int(near), "clusters": int(clusters),
            "largest_cluster": int(largest)}  # fmt: skip
