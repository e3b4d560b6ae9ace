"""The whole history of one document, from its WARC record to the token shards (`crawl2model explain`).

Everything comes from the catalog's views of the latest completed outputs, except the filter rules:
those are measured again on the filter stage's input with the config of the run that produced it,
so every rule's value and verdict is shown, not only the first rule that failed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import duckdb

from storage.catalog import Catalog, create_artifact_views


def _views(con: duckdb.DuckDBPyConnection) -> set[str]:
    return {r[0] for r in con.execute("select view_name from duckdb_views() where temporary").fetchall()}


def _rows(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any]) -> list[dict[str, Any]]:
    cur = con.execute(sql, params)
    cols = [d[0] for d in cur.description]
    return [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]


def find_doc_ids(con: duckdb.DuckDBPyConnection, key: str, views: set[str]) -> list[str]:
    found: list[str] = []
    for view in ("extract_docs", "extract_removed"):
        if view in views:
            rows = con.execute(f"select distinct doc_id from {view} where doc_id = ? or url = ?", [key, key])
            found += [r[0] for r in rows.fetchall() if r[0] not in found]
    return found


def _filter_rules(con: duckdb.DuckDBPyConnection, doc: dict[str, Any]) -> list[dict[str, Any]]:
    """Every filter rule's value and verdict, measured again with the latest completed run's config."""
    from tasks.config import PipelineConfig
    from tasks.filter_stage import build_checks
    from tasks.filters.c4 import C4Filter

    row = con.execute(
        "select config_json from runs where status = 'completed' order by finished_at desc limit 1"
    ).fetchone()
    cfg = PipelineConfig.model_validate(json.loads(row[0]) if row else {}).filter
    url_filter, *text_checks = build_checks(cfg)
    verdict = url_filter.check(doc["url"] or "", doc["host"] or "")
    rules = [{"rule": "url_filter", "value": None, "passed": verdict is None, "detail": verdict[0] if verdict else ""}]
    text = doc["text"]
    for check in text_checks:
        if isinstance(check, C4Filter):
            text, dropped = check.clean(text)
            rules.append({"rule": "c4_lines_dropped", "value": sum(dropped.values()), "passed": True,
                          "detail": ", ".join(f"{k}: {v}" for k, v in sorted(dropped.items()))})  # fmt: skip
        rules += [{"rule": r, "value": v, "passed": ok, "detail": ""} for r, v, ok in check.measure(text)]
    out = con.execute(
        "select output_dir from stage_runs where stage = 'filter' and status = 'completed' "
        "order by finished_at desc limit 1"
    ).fetchone()
    model, facts = (Path(out[0]) / "quality_model.bin", Path(out[0]) / "quality_model.json") if out else (None, None)
    if cfg.quality.enabled and model is not None and model.exists() and facts.exists():
        from tasks.quality import quality_score

        threshold = json.loads(facts.read_text())["quality_threshold"]
        score = quality_score(str(model), text, cfg.quality.positive_label)
        rules.append({"rule": "quality_classifier", "value": score, "passed": score >= threshold,
                      "detail": f"threshold {threshold:.4g}"})  # fmt: skip
    return rules


def explain(workdir: Path, key: str) -> list[dict[str, Any]]:
    """One history per document matching `key` (a doc_id or a URL)."""
    catalog = Catalog(workdir)
    histories = []
    with catalog.connect(read_only=True) as con:
        create_artifact_views(con, workdir)
        views = _views(con)
        for doc_id in find_doc_ids(con, key, views):
            history: dict[str, Any] = {"doc_id": doc_id, "stages": []}
            filter_input = None
            for stage in ("extract", "filter", "dedup", "mix", "tokenize"):
                entry: dict[str, Any] = {"stage": stage}
                if f"{stage}_removed" in views:
                    removed = _rows(con, f"select rule, value, detail from {stage}_removed where doc_id = ?", [doc_id])
                    if removed:
                        entry["removed"] = removed[0]
                if f"{stage}_docs" in views:
                    docs = _rows(con, f"select * from {stage}_docs where doc_id = ? limit 1", [doc_id])
                    if docs:
                        entry["kept"] = {k: v for k, v in docs[0].items() if k != "text"}
                        if stage == "extract":
                            history["url"], filter_input = docs[0]["url"], docs[0]
                if stage == "filter" and filter_input is not None:
                    entry["rules"] = _filter_rules(con, filter_input)
                history["stages"].append(entry)
                if "removed" in entry:
                    break
            if "tokens" in views:
                n = con.execute("select count(*) from tokens where list_contains(doc_ids, ?)", [doc_id]).fetchone()[0]
                history["token_rows"] = n
            histories.append(history)
    return histories
