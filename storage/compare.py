"""Two runs side by side: config differences, data funnel differences, evaluation differences."""

from __future__ import annotations

import json
from typing import Any

from storage.catalog import Catalog
from storage.errors import NotFound
from storage.section import flatten

ALIASES = {"latest": 0, "previous": 1}


def resolve_run(catalog: Catalog, ref: str) -> str:
    """A run id, a unique prefix of one, or `latest` / `previous`."""
    _, rows = catalog.query("select run_id from runs where status = 'completed' order by started_at desc")
    ids = [r[0] for r in rows]
    if ref in ALIASES:
        if len(ids) <= ALIASES[ref]:
            raise NotFound(f"there is no {ref} completed run")
        return ids[ALIASES[ref]]
    matches = [i for i in ids if i.startswith(ref)]
    if len(matches) != 1:
        raise NotFound(f"{ref!r} matches {len(matches)} completed runs" + (f": {matches[:5]}" if matches else ""))
    return matches[0]


def stage_output_dir(catalog: Catalog, run: str, stage: str) -> str | None:
    """Where a run's completed output of `stage` is (its own or the cached one it used)."""
    _, rows = catalog.query(
        "select output_dir from stage_runs where run_id = ? and stage = ? and status = 'completed'", [run, stage]
    )
    return rows[0][0] if rows else None


def config_diff(catalog: Catalog, a: str, b: str) -> list[tuple[str, Any, Any]]:
    _, rows = catalog.query("select run_id, config_json from runs where run_id in (?, ?)", [a, b])
    configs = {run: flatten(json.loads(cfg)) for run, cfg in rows}
    keys = sorted(set(configs[a]) | set(configs[b]))
    # evaluate.config_changes restates the differences from the defaults: not a setting of its own.
    keys = [k for k in keys if not k.startswith("evaluate.config_changes")]
    return [(k, configs[a].get(k), configs[b].get(k)) for k in keys if configs[a].get(k) != configs[b].get(k)]


def _stage_metrics(catalog: Catalog, run: str, stages: tuple[str, ...]) -> dict[str, float]:
    """Non-step metrics of the stage outputs this run used (cached ones included)."""
    if not stages:
        return {}
    marks = ",".join("?" * len(stages))
    _, rows = catalog.query(
        f"""
        select s.stage || ':' || m.name, any_value(m.value) from stage_runs s
        join metrics m on m.fingerprint = s.fingerprint and m.stage = s.stage and m.step is null
        where s.run_id = ? and s.stage in ({marks}) group by 1
        """,
        [run, *stages],
    )
    return dict(rows)


def funnel_diff(catalog: Catalog, a: str, b: str) -> list[tuple]:
    cols = "stage, docs_in, docs_out, docs_removed"
    _, rows_a = catalog.query(f"select {cols} from stage_runs where run_id = ? and docs_in is not null", [a])
    _, rows_b = catalog.query(f"select {cols} from stage_runs where run_id = ? and docs_in is not null", [b])
    by_b = {r[0]: r for r in rows_b}
    out = [(stage, din, dout, by_b.get(stage, (None,) * 4)[2], _delta(dout, by_b.get(stage, (None,) * 4)[2]))
           for stage, din, dout, _ in rows_a]  # fmt: skip
    # Per-rule removals of every stage that counts documents (the stages in the funnel above).
    counting = tuple(dict.fromkeys(r[0] for r in [*rows_a, *rows_b]))
    rules_a, rules_b = _stage_metrics(catalog, a, counting), _stage_metrics(catalog, b, counting)
    ran_a, ran_b = {r[0] for r in rows_a}, {r[0] for r in rows_b}
    for key in sorted(k for k in set(rules_a) | set(rules_b) if ":removed." in k):
        stage = key.split(":", 1)[0]
        # A rule a run's stage did not fire removed 0 there; a stage the run did not record (a slice of
        # the pipeline, an experiment's variant) says nothing: blank, and no difference.
        va = rules_a.get(key, 0.0) if stage in ran_a else None
        vb = rules_b.get(key, 0.0) if stage in ran_b else None
        if va != vb:
            out.append((key.replace(":removed.", " removed: "), None, va, vb, _delta(va, vb)))
    return out


def eval_diff(catalog: Catalog, a: str, b: str) -> list[tuple[str, float | None, float | None, float | None]]:
    ea, eb = _stage_metrics(catalog, a, ("evaluate",)), _stage_metrics(catalog, b, ("evaluate",))
    keys = sorted(set(ea) | set(eb))
    return [(k.removeprefix("evaluate:"), ea.get(k), eb.get(k), _delta(ea.get(k), eb.get(k))) for k in keys]


def _delta(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else float(b) - float(a)
