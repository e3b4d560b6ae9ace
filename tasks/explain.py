"""The whole history of one document, from its WARC record to the token shards (`crawl2model explain`).

Everything comes from the catalog's views of the latest completed outputs, except the filter rules:
those are measured again on the filter stage's input with the config of the run that produced it,
so every rule's value and verdict is shown, not only the first rule that failed.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import duckdb

from storage.catalog import Catalog, create_artifact_views
from tasks.config import PipelineConfig
from tasks.filter.classifiers import load_prepared
from tasks.filter.judge import load_template
from tasks.filter.rules import measure_all
from tasks.filter.stage import build_rules
from tasks.llm_endpoint import AnswerCache, text_hash
from tasks.registry import STAGES
from tasks.stage import load_manifest, workdir_cache


def _views(con: duckdb.DuckDBPyConnection) -> set[str]:
    return {r[0] for r in con.execute("select view_name from duckdb_views() where temporary").fetchall()}


def _rows(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any]) -> list[dict[str, Any]]:
    cur = con.execute(sql, params)
    cols = [d[0] for d in cur.description]
    return [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]


def find_doc_ids(con: duckdb.DuckDBPyConnection, key: str, views: set[str]) -> list[str]:
    found: list[str] = []
    for view in ("extract_docs", "extract_removed", "extract_deferred"):
        if view in views:
            rows = con.execute(f"select distinct doc_id from {view} where doc_id = ? or url = ?", [key, key])
            found += [r[0] for r in rows.fetchall() if r[0] not in found]
    return found


def _latest_filter_config(con: duckdb.DuckDBPyConnection) -> Any:
    row = con.execute(
        "select config_json from runs where status = 'completed' order by finished_at desc limit 1"
    ).fetchone()
    return PipelineConfig.model_validate(json.loads(row[0]) if row else {}).filter


def _filter_output(con: duckdb.DuckDBPyConnection) -> Path | None:
    out = con.execute(
        "select output_dir from stage_runs where stage = 'filter' and status = 'completed' "
        "order by finished_at desc limit 1"
    ).fetchone()
    return Path(out[0]) if out else None


def _judge_entry(cfg: Any, out: Path, text: str) -> dict[str, Any] | None:
    """The LLM judge's cached score for this document, when it was one of the annotated sample."""
    annotate = cfg.quality.annotate
    cache = AnswerCache(workdir_cache(out, "annotations"), load_template(annotate.template_path), annotate.model)
    if (answer := cache.get(text_hash(text))) is None:
        return None
    score = answer["score"]
    passed = score is not None and score >= annotate.threshold
    return {"rule": "judge_score", "value": score, "passed": passed, "threshold": f">= {annotate.threshold}",
            "detail": f"LLM judge {annotate.model} (cached annotation)"}  # fmt: skip


def _filter_rules(con: duckdb.DuckDBPyConnection, doc: dict[str, Any]) -> list[dict[str, Any]]:
    """Every filter rule's value, threshold and verdict, measured again with the latest run's config
    through the same rule walk the filter stage uses (`measure_all`), without stopping at a failure;
    the judge's score beside the classifier's where the document was annotated."""
    cfg, out = _latest_filter_config(con), _filter_output(con)
    edits: Counter = Counter()
    manifest = load_manifest(out) if out is not None else None
    language_scores = (manifest or {}).get("info", {}).get("language_scores")  # the run's, when it made them
    rules_run = build_rules(cfg, load_prepared(cfg, out) if out is not None else [], language_scores)
    taken = measure_all(dict(doc), rules_run, edits, stop_at_failure=False)
    rules = [{"rule": m.rule, "value": m.value, "passed": m.passed, "threshold": m.describe_threshold(),
              "detail": m.detail} for m in taken]  # fmt: skip
    if dropped := {k: v for k, v in edits.items() if k.startswith("c4.lines_dropped.")}:
        detail = ", ".join(f"{k.rsplit('.', 1)[1]}: {v}" for k, v in sorted(dropped.items()))
        rules.append({"rule": "c4_lines_dropped", "value": sum(dropped.values()), "passed": True, "threshold": "",
                      "detail": detail})  # fmt: skip
    if cfg.quality.annotate is not None and out is not None and (judged := _judge_entry(cfg, out, doc["text"])):
        rules.append(judged)
    return rules


def doc_stages(views: set[str]) -> list[str]:
    """The stages whose outputs hold documents (views `<stage>_docs` / `<stage>_removed`), in DAG order."""
    return [s for s in STAGES if f"{s}_docs" in views or f"{s}_removed" in views]


def _survivor_url(con: duckdb.DuckDBPyConnection, views: set[str], removed: dict[str, Any]) -> str | None:
    """For a near-duplicate: the URL of the document its cluster kept (`cluster=<survivor doc_id>`)."""
    detail = removed.get("detail") or ""
    if not detail.startswith("cluster=") or "dedup_docs" not in views:
        return None
    row = con.execute("select url from dedup_docs where doc_id = ? limit 1", [detail.split("=", 1)[1]]).fetchone()
    return row[0] if row else None


def _stage_entry(con: duckdb.DuckDBPyConnection, views: set[str], stage: str, doc_id: str) -> dict[str, Any]:
    entry: dict[str, Any] = {"stage": stage}
    if f"{stage}_removed" in views:
        removed = _rows(con, f"select * exclude (doc_id, stage) from {stage}_removed where doc_id = ?", [doc_id])
        if removed:
            entry["removed"] = removed[0]
            if stage == "dedup" and (url := _survivor_url(con, views, removed[0])):
                entry["removed"]["kept_copy_url"] = url
    if f"{stage}_deferred" in views and "removed" not in entry:
        deferred = _rows(con, f"select url, rule, detail from {stage}_deferred where doc_id = ?", [doc_id])
        if deferred:  # a URL rule removed it before extraction; the next stage records the removal
            entry["not_extracted"] = deferred[0]
    if f"{stage}_docs" in views:
        docs = _rows(con, f"select * from {stage}_docs where doc_id = ? limit 1", [doc_id])
        if docs:
            entry["kept"] = {k: v for k, v in docs[0].items() if k != "text"}
            entry["doc"] = docs[0]
    return entry


def _rule_by_language(con: duckdb.DuckDBPyConnection, views: set[str], stage: str, rule: str,
                      doc_id: str) -> dict[str, Any] | None:  # fmt: skip
    """The removing rule's rate in this run for the document's language, beside its rate for the other
    languages, flagged as the report flags it (an English-only rule that removes every Japanese page)."""
    from tasks.documents import LANGUAGE_IN_DETAIL
    from tasks.evaluate.languages import FLAG_MIN_DOCS, FLAG_RATIO, FLAG_SHARE, NO_LANGUAGE

    if not {"extract_docs", "extract_removed", f"{stage}_removed"} <= views:
        return None
    entered = f"select doc_id from {stage}_removed" + (f" union all select doc_id from {stage}_docs"
                                                       if f"{stage}_docs" in views else "")  # fmt: skip
    in_detail = ", ".join(f"'{r}'" for r in sorted(LANGUAGE_IN_DETAIL))
    rows = con.execute(
        f"""with langs as (select doc_id, lang from extract_docs
                           union all select doc_id, detail from extract_removed where rule in ({in_detail}))
            select coalesce(l.lang, '{NO_LANGUAGE}') as lang, count(*) as n, count(r.doc_id) as removed
            from ({entered}) e left join (select distinct doc_id, lang from langs) l using (doc_id)
            left join (select doc_id from {stage}_removed where rule = ?) r using (doc_id) group by 1""",
        [rule],
    ).fetchall()
    by_lang = {lang: (n, removed) for lang, n, removed in rows}
    lang = next((lg for lg, in con.execute(
        "select lang from extract_docs where doc_id = ? limit 1", [doc_id]).fetchall()), None)  # fmt: skip
    if lang is None or lang not in by_lang:
        return None
    n, removed = by_lang[lang]
    others_n = sum(v[0] for k, v in by_lang.items() if k not in (lang, NO_LANGUAGE))
    others_removed = sum(v[1] for k, v in by_lang.items() if k not in (lang, NO_LANGUAGE))
    share, others = removed / n, (others_removed / others_n if others_n else None)
    flag = (n >= FLAG_MIN_DOCS and others_n >= FLAG_MIN_DOCS and share >= FLAG_SHARE
            and share >= FLAG_RATIO * (others or 0.0))  # fmt: skip
    return {
        "language": lang,
        "docs": n,
        "removed": removed,
        "share": round(share, 4),
        "others_docs": others_n,
        "others_share": None if others is None else round(others, 4),
        "flag": flag,
    }


def _history(con: duckdb.DuckDBPyConnection, views: set[str], doc_id: str) -> dict[str, Any]:
    history: dict[str, Any] = {"doc_id": doc_id, "stages": []}
    filter_input = None
    for stage in doc_stages(views):
        entry = _stage_entry(con, views, stage, doc_id)
        doc = entry.pop("doc", None)
        if stage == "extract":
            history["url"] = (doc or entry.get("removed") or entry.get("not_extracted") or {}).get("url")
            filter_input = doc
        if stage == "filter" and filter_input is not None:
            entry["rules"] = _filter_rules(con, filter_input)
        history["stages"].append(entry)
        if "removed" in entry:
            if rates := _rule_by_language(con, views, stage, entry["removed"]["rule"], doc_id):
                entry["removed"]["by_language"] = rates
            break
    if "tokens" in views:
        n = con.execute("select count(*) from tokens where list_contains(doc_ids, ?)", [doc_id]).fetchone()[0]
        history["token_rows"] = n
    return history


def explain(workdir: Path, key: str) -> list[dict[str, Any]]:
    """One history per document matching `key` (a doc_id or a URL)."""
    with Catalog(workdir).connect(read_only=True) as con:
        create_artifact_views(con, workdir)
        views = _views(con)
        return [_history(con, views, doc_id) for doc_id in find_doc_ids(con, key, views)]
