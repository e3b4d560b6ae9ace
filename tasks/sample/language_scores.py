"""The multilingual sample scored per language: how many of each language's articles survive each
stage (with Wilson intervals), and whether each language's planted cases went where they should."""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

from model.intervals import wilson
from tasks.sample.ground_truth import JUDGING_STAGES
from tasks.sample.planted import EXPECTED_STAGE


def survival_by_language(truth: list[dict[str, Any]], removed: dict[str, tuple[str, str]]) -> dict[str, dict]:
    """language -> articles in, kept after each judging stage (share and interval), and per planted
    case: caught at its stage / planted. A near-duplicate pair counts as caught when dedup removed
    either page of it (which one it keeps is its `keep` setting's choice)."""
    rows = [r for r in truth if r.get("lang")]
    by_url = {r["url"]: r for r in rows if r["case"] == "original"}
    out: dict[str, dict] = {}
    for lang in sorted({r["lang"] for r in rows}):
        articles = [r for r in rows if r["lang"] == lang and r["case"] == "original"]
        stages: dict[str, dict] = {}
        alive = len(articles)
        for stage in JUDGING_STAGES:
            alive -= sum(1 for r in articles if removed.get(r["doc_id"], ("",))[0] == stage)
            low, high = wilson(alive, len(articles))
            stages[stage] = {"kept": alive, "share": round(alive / max(len(articles), 1), 4),
                             "ci": [round(low, 4), round(high, 4)]}  # fmt: skip
        out[lang] = {"articles": len(articles), "survival": stages, "planted": _planted(rows, lang, by_url, removed)}
    return out


def _planted(rows: list[dict], lang: str, by_url: dict[str, dict], removed: dict[str, tuple[str, str]]) -> dict:
    caught: dict[str, Counter] = defaultdict(Counter)
    for r in rows:
        if r["lang"] != lang or r["case"] == "original":
            continue
        stage = EXPECTED_STAGE[r["case"]]
        hit = removed.get(r["doc_id"], ("",))[0] == stage
        if r["case"] == "near_duplicate" and (source := by_url.get(r["group"])):
            hit = hit or removed.get(source["doc_id"], ("",))[0] == stage
        caught[r["case"]]["planted"] += 1
        caught[r["case"]]["caught"] += int(hit)
    return {case: dict(c) for case, c in sorted(caught.items())}
