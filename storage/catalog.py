"""The DuckDB catalog: runs, stage runs, artifacts, lineage and metrics.

Only the flow process writes it (DuckDB allows one read-write process per file). Connections are
short-lived so that `crawl2model sql` can read between writes.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from storage.objects import store_of

SCHEMA = """
create table if not exists runs (
    run_id varchar primary key, started_at timestamp, finished_at timestamp, status varchar,
    config_name varchar, config_json json, workdir varchar, seconds double
);
create table if not exists stage_runs (
    run_id varchar, stage varchar, fingerprint varchar, status varchar, cache_hit boolean,
    started_at timestamp, finished_at timestamp, seconds double,
    docs_in bigint, docs_out bigint, docs_removed bigint, output_dir varchar, error varchar
);
create table if not exists artifacts (
    stage varchar, fingerprint varchar, path varchar, kind varchar, rows bigint, bytes bigint,
    sha256 varchar, created_at timestamp, primary key (fingerprint, path)
);
create table if not exists lineage (
    child_stage varchar, child_fingerprint varchar, parent_stage varchar, parent_fingerprint varchar,
    primary key (child_fingerprint, parent_fingerprint)
);
create table if not exists warnings (
    run_id varchar, stage varchar, fingerprint varchar, message varchar
);
create table if not exists metrics (
    run_id varchar, stage varchar, fingerprint varchar, name varchar, step bigint, value double
);
create table if not exists experiments (
    experiment_id varchar primary key, kind varchar, started_at timestamp, finished_at timestamp,
    status varchar, params_json json, result_json json, report_path varchar
);
create table if not exists exports (
    export_id varchar primary key, format varchar, stage varchar, source_fingerprint varchar,
    out_dir varchar, files bigint, bytes bigint, created_at timestamp
);
create table if not exists experiment_runs (
    experiment_id varchar, run_id varchar, label varchar, setting_json json, metric varchar, value double
);
"""
# Experiments run several pipeline slices on threads of one process: one connection at a time.
_CONNECTION_LOCK = threading.RLock()

# Parquet-backed views: (view name, artifact kind). Each view reads the files of the latest
# completed stage output that holds that kind.
ARTIFACT_VIEWS = {
    "documents": "docs",
    "removed": "removed",
    "tokens": "tokens",
    "token_counts": "token_counts",
}


def now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


class Catalog:
    def __init__(self, workdir: Path):
        self.workdir = Path(workdir)
        self.path = self.workdir / "catalog.duckdb"

    @contextmanager
    def connect(self, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        if read_only and not self.path.exists():
            raise FileNotFoundError(f"no catalog at {self.path}: run the pipeline first")
        self.workdir.mkdir(parents=True, exist_ok=True)
        with _CONNECTION_LOCK:
            con = duckdb.connect(str(self.path), read_only=read_only)
            try:
                if not read_only:
                    con.execute(SCHEMA)
                yield con
            finally:
                con.close()

    # --- writes (flow process only) -------------------------------------------------------
    def start_run(self, run_id: str, config_name: str, config: dict[str, Any]) -> None:
        with self.connect() as con:
            con.execute(
                "insert into runs values (?, ?, null, 'running', ?, ?, ?, null)",
                [run_id, now(), config_name, json.dumps(config), str(self.workdir)],
            )

    def finish_run(self, run_id: str, status: str) -> None:
        with self.connect() as con:
            con.execute(
                "update runs set finished_at = ?, status = ?, "
                "seconds = date_diff('millisecond', started_at, ?) / 1000.0 where run_id = ?",
                [now(), status, now(), run_id],
            )

    def record_stage(
        self,
        run_id: str,
        stage: str,
        fingerprint: str,
        result: dict[str, Any] | None,
        *,
        cache_hit: bool,
        started_at: datetime,
        parents: list[tuple[str, str]],
        error: str | None = None,
    ) -> None:
        finished = now()
        counts = (result or {}).get("counts", {})
        with self.connect() as con:
            con.execute(
                "insert into stage_runs values (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                [
                    run_id,
                    stage,
                    fingerprint,
                    "failed" if error else "completed",
                    cache_hit,
                    started_at,
                    finished,
                    (finished - started_at).total_seconds(),
                    counts.get("docs_in"),
                    counts.get("docs_out"),
                    counts.get("docs_removed"),
                    (result or {}).get("output_dir"),
                    error,
                ],
            )
            if result is None:
                return
            # Kept per run, cached or not: a rerun from cache repeats what the first run warned of.
            if warnings := result.get("info", {}).get("warnings", []):
                rows = [[run_id, stage, fingerprint, w] for w in warnings]
                con.executemany("insert into warnings values (?,?,?,?)", rows)
            _insert_artifacts(con, stage, fingerprint, result.get("files", []), parents, finished)
            if not cache_hit:  # a cache hit's metrics are already recorded under its fingerprint
                _insert_metrics(con, run_id, stage, fingerprint, result.get("metrics", []))

    def record_export(self, manifest: dict[str, Any], parents: list[tuple[str, str]]) -> None:
        """An export (tasks/export): a row in `exports`, its files as artifacts (stage `export`,
        absolute paths) and lineage to the stage outputs it was made from."""
        files = [{**f, "path": str(Path(manifest["out"]) / f["path"])} for f in manifest["files"]]
        source = dict(parents)[manifest["stage"]]
        with self.connect() as con:
            con.execute(
                "insert or replace into exports values (?,?,?,?,?,?,?,?)",
                [manifest["key"], manifest["format"], manifest["stage"], source, manifest["out"], len(files),
                 sum(f["bytes"] for f in files), now()],
            )  # fmt: skip
            _insert_artifacts(con, "export", manifest["key"], files, parents, now())

    def start_experiment(self, experiment_id: str, kind: str, params: dict[str, Any]) -> None:
        with self.connect() as con:
            con.execute(
                "insert into experiments values (?, ?, ?, null, 'running', ?, null, null)",
                [experiment_id, kind, now(), json.dumps(params)],
            )

    def add_experiment_run(
        self, experiment_id: str, run_id: str, label: str, setting: dict[str, Any], metrics: dict[str, float]
    ) -> None:
        with self.connect() as con:
            for name, value in metrics.items():
                con.execute(
                    "insert into experiment_runs values (?, ?, ?, ?, ?, ?)",
                    [experiment_id, run_id, label, json.dumps(setting), name, value],
                )

    def finish_experiment(self, experiment_id: str, status: str, result: dict[str, Any], report: str | None) -> None:
        with self.connect() as con:
            con.execute(
                "update experiments set finished_at = ?, status = ?, result_json = ?, report_path = ? "
                "where experiment_id = ?",
                [now(), status, json.dumps(result), report, experiment_id],
            )

    # --- reads ----------------------------------------------------------------------------
    def query(self, sql: str, params: list[Any] | None = None) -> tuple[list[str], list[tuple]]:
        with self.connect(read_only=True) as con:
            create_artifact_views(con, self.workdir)
            cur = con.execute(sql, params or [])
            cols = [d[0] for d in cur.description] if cur.description else []
            return cols, cur.fetchall()


def _insert_artifacts(
    con: duckdb.DuckDBPyConnection, stage: str, fingerprint: str, files: list[dict[str, Any]],
    parents: list[tuple[str, str]], created: datetime,
) -> None:  # fmt: skip
    for f in files:
        con.execute(
            "insert or replace into artifacts values (?,?,?,?,?,?,?,?)",
            [stage, fingerprint, f["path"], f["kind"], f["rows"], f["bytes"], f["sha256"], created],
        )
    for parent_stage, parent_fp in parents:
        con.execute("insert or ignore into lineage values (?,?,?,?)", [stage, fingerprint, parent_stage, parent_fp])


def latest_files_by_kind(con: duckdb.DuckDBPyConnection, workdir: Path) -> dict[str, list[str]]:
    """Parquet files of each kind, from the most recent completed stage run that wrote that kind."""
    rows = con.execute(
        """
        with last as (
            select stage, fingerprint, row_number() over (partition by stage order by finished_at desc) rn
            from stage_runs where status = 'completed'
        )
        select a.stage, a.kind, a.path, s.output_dir from artifacts a
        join last l on l.fingerprint = a.fingerprint and l.rn = 1
        join (select distinct fingerprint, output_dir from stage_runs where status = 'completed') s
            on s.fingerprint = a.fingerprint
        where a.path like '%.parquet' order by a.stage, a.path
        """
    ).fetchall()
    files: dict[str, list[str]] = {}
    for stage, kind, path, out in rows:
        files.setdefault(f"{stage}:{kind}", []).append(str(Path(out) / path))
        files.setdefault(kind, []).append(str(Path(out) / path))
    return files


def lineage_depths(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Each stage's distance from the first stage, along the recorded lineage (longest parent chain)."""
    parents: dict[str, set[str]] = {}
    for stage, parent in con.execute("select distinct child_stage, parent_stage from lineage").fetchall():
        parents.setdefault(stage, set()).add(parent)
    depths: dict[str, int] = {}

    def depth(stage: str, seen: frozenset[str] = frozenset()) -> int:
        if stage not in depths:
            ups = [p for p in parents.get(stage, ()) if p not in seen]
            depths[stage] = 1 + max((depth(p, seen | {stage}) for p in ups), default=-1)
        return depths[stage]

    for stage in parents:
        depth(stage)
    return depths


def create_artifact_views(con: duckdb.DuckDBPyConnection, workdir: Path) -> None:
    """Temp views so every intermediate artifact is one SQL query away (no catalog writes)."""
    files = latest_files_by_kind(con, workdir)
    store = store_of(workdir)
    if store is not None:
        con.register_filesystem(store.fs)  # the views read what the local mirror lacks from the store

    def readable(paths: list[str]) -> list[str]:
        """Each file where it can be read: the local copy, else (with a store) its URL there."""
        return [p if Path(p).exists() else store.url_of(store.rel(p)) for p in paths
                if Path(p).exists() or (store is not None and store.owns(p))]  # fmt: skip

    for key, paths in files.items():
        stage, _, kind = key.partition(":")
        if not kind:
            continue
        existing = readable(paths)
        if existing:
            con.execute(
                f"create or replace temp view {stage}_{kind} as "
                f"select * from read_parquet({existing!r}, union_by_name=true)"
            )
    for view, kind in ARTIFACT_VIEWS.items():
        if kind == "docs":
            _documents_view(con, files, readable)
            continue
        paths = readable(files.get(kind, []))
        if not paths:
            continue
        if kind == "tokens":
            # Shards are named <split>-<n>.parquet: the split is a column, so tokens count per split in SQL.
            con.execute(
                f"create or replace temp view {view} as select * exclude (filename), "
                f"regexp_extract(filename, '([A-Za-z0-9_]+)-[0-9]+[.]parquet$', 1) as split "
                f"from read_parquet({paths!r}, union_by_name=true, filename=true)"
            )
        else:
            con.execute(
                f"create or replace temp view {view} as select * from read_parquet({paths!r}, union_by_name=true)"
            )


def _documents_view(
    con: duckdb.DuckDBPyConnection, files: dict[str, list[str]], readable: Callable[[list[str]], list[str]]
) -> None:
    """`documents` = what reached the end of the data side: the docs of the stage furthest down the
    lineage, less those a later stage that writes no docs of its own removed (tokenize's removals).
    The catalog knows the DAG from what was recorded, not by stage names."""
    with_docs = [k.partition(":")[0] for k in files if k.endswith(":docs")]
    if not with_docs:
        return
    depth = lineage_depths(con)
    newest = max(with_docs, key=lambda s: (depth.get(s, 0), s))
    later_stages = [
        k for k in files if k.endswith(":removed") and depth.get(k.partition(":")[0], 0) > depth.get(newest, 0)
    ]
    later = readable([p for k in later_stages for p in files[k]])
    where = f" where doc_id not in (select doc_id from read_parquet({later!r}))" if later else ""
    con.execute(f"create or replace temp view documents as select * from {newest}_docs{where}")


def _insert_metrics(
    con: duckdb.DuckDBPyConnection, run_id: str, stage: str, fingerprint: str, metrics: list[dict[str, Any]]
) -> None:
    if not metrics:
        return
    # One Arrow insert: executemany is row-at-a-time and slow for a loss curve.
    table = pa.table(
        {
            "run_id": [run_id] * len(metrics),
            "stage": [stage] * len(metrics),
            "fingerprint": [fingerprint] * len(metrics),
            "name": [m["name"] for m in metrics],
            "step": pa.array([m.get("step") for m in metrics], pa.int64()),
            "value": [float(m["value"]) for m in metrics],
        }
    )
    con.register("new_metrics", table)
    con.execute("insert into metrics select * from new_metrics")
    con.unregister("new_metrics")
