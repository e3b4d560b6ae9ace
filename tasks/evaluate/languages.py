"""The funnel per language: documents of each language into each stage, and each rule's removals as a
share of them, side by side; a rule that removes a much larger share of one language than of the
others is flagged (the English-only rule that silently removes every Japanese page)."""

from __future__ import annotations

from collections import Counter
from typing import Any

from storage.shards import iter_rows
from tasks.documents import LANGUAGE_IN_DETAIL
from tasks.stage import StageInput

# A rule is flagged for a language when it removes at least this share of the language's documents,
# at least this many times the share it removes of the other languages, from at least this many.
FLAG_SHARE, FLAG_RATIO, FLAG_MIN_DOCS = 0.2, 2.0, 10


NO_LANGUAGE = "none"  # pages removed before language id (not HTML, not 200, empty): no language


def languages_of(inputs: dict[str, StageInput], stages: list[str]) -> dict[str, str]:
    """doc_id -> language: from documents' `lang`, and from the removals whose detail is the language."""
    found: dict[str, str] = {}
    for stage in stages:
        for row in iter_rows(inputs[stage].files("docs"), ["doc_id", "lang"]):
            if row.get("lang"):
                found.setdefault(row["doc_id"], row["lang"])
        for row in iter_rows(inputs[stage].files("removed"), ["doc_id", "rule", "detail"]):
            if row["rule"] in LANGUAGE_IN_DETAIL and row.get("detail"):
                found.setdefault(row["doc_id"], row["detail"])
    return found


def language_funnel(inputs: dict[str, StageInput], stages: list[str]) -> dict[str, Any]:
    """{"languages": [...], "stages": [{stage, in: {lang: n}, removed: {rule: {lang: n}}}], "flags": [...]}."""
    lang_of = languages_of(inputs, stages)
    rows, flags = [], []
    for stage in stages:
        removed: dict[str, Counter] = {}
        gone: Counter = Counter()
        for r in iter_rows(inputs[stage].files("removed"), ["doc_id", "rule"]):
            lang = lang_of.get(r["doc_id"], NO_LANGUAGE)
            removed.setdefault(r["rule"], Counter())[lang] += 1
            gone[lang] += 1
        kept = Counter(
            lang_of.get(d["doc_id"], NO_LANGUAGE) for d in iter_rows(inputs[stage].files("docs"), ["doc_id"])
        )
        entered = kept + gone
        rows.append({"stage": stage, "in": dict(entered), "removed": {k: dict(v) for k, v in removed.items()}})
        flags += flagged(stage, entered, removed)
    languages = sorted(
        {lang for row in rows for lang in row["in"]}, key=lambda x: -sum(r["in"].get(x, 0) for r in rows)
    )
    return {"languages": languages, "stages": rows, "flags": flags}


def flagged(stage: str, entered: Counter, removed: dict[str, Counter]) -> list[str]:
    """Rules removing a share of one language far above their share of the other languages."""
    flags = []
    for rule, by_lang in removed.items():
        for lang, n in by_lang.items():
            if entered[lang] < FLAG_MIN_DOCS or lang == NO_LANGUAGE:
                continue
            share = n / entered[lang]
            # Against the other languages only: with none beside it, a rule has nothing to be unfair against.
            others_in = sum(v for k, v in entered.items() if k not in (lang, NO_LANGUAGE))
            if others_in < FLAG_MIN_DOCS:
                continue
            others = sum(v for k, v in by_lang.items() if k not in (lang, NO_LANGUAGE)) / others_in
            if share >= FLAG_SHARE and share >= FLAG_RATIO * others:
                flags.append(f"{stage}.{rule} removes {share:.0%} of {lang} documents ({n}/{entered[lang]}) "
                             f"against {others:.0%} of the others")  # fmt: skip
    return flags
