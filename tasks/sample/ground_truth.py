"""Score the pipeline against the sample's ground truth: was each planted case removed where meant?"""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from storage.shards import iter_rows
from tasks.sample.planted import EXPECTED_STAGE


def load_ground_truth(path: str | Path) -> list[dict[str, Any]]:
    with open(path) as f:
        return [json.loads(line) for line in f]


# Stages that judge documents; mix's down-sampling is a budget decision, not a verdict on a page.
JUDGING_STAGES = ("extract", "filter", "dedup")


def removals(removed_paths: list[str]) -> dict[str, tuple[str, str]]:
    """doc_id -> (stage, rule) of its first removal."""
    out: dict[str, tuple[str, str]] = {}
    for row in iter_rows(removed_paths, ["doc_id", "stage", "rule"]):
        if row["stage"] in JUDGING_STAGES:
            out.setdefault(row["doc_id"], (row["stage"], row["rule"]))
    return out


def score_planted(truth: list[dict[str, Any]], removed: dict[str, tuple[str, str]]) -> dict[str, dict[str, Any]]:
    """Per planted case: how many, removed at the meant stage, removed elsewhere, kept.

    Duplicates are scored per group (the original plus its copy): a group is right when exactly
    one of its pages survives and the other was removed by dedup.
    """
    by_case: dict[str, dict[str, Any]] = {}
    for row in truth:
        case = row["case"]
        if case in ("original", "truncated", "exact_duplicate", "near_duplicate", "pii"):
            continue
        s = by_case.setdefault(case, {"n": 0, "at_expected_stage": 0, "elsewhere": Counter(), "kept": 0})
        s["n"] += 1
        where = removed.get(row["doc_id"])
        if where is None:
            s["kept"] += 1
        elif where[0] == EXPECTED_STAGE[case]:
            s["at_expected_stage"] += 1
        else:
            s["elsewhere"][f"{where[0]}:{where[1]}"] += 1
    url_to_doc = {row["url"]: row["doc_id"] for row in truth if row["case"] == "original"}
    for case in ("exact_duplicate", "near_duplicate"):
        s = {"n": 0, "at_expected_stage": 0, "elsewhere": Counter(), "kept": 0}
        for row in truth:
            if row["case"] != case:
                continue
            s["n"] += 1
            pair = [removed.get(row["doc_id"]), removed.get(url_to_doc.get(row["group"], ""))]
            survivors = sum(w is None for w in pair)
            stages = {w[0] for w in pair if w is not None}
            if survivors == 1 and stages == {"dedup"}:
                s["at_expected_stage"] += 1
            elif survivors == 2:
                s["kept"] += 1
            else:
                s["elsewhere"]["/".join(sorted(f"{w[0]}:{w[1]}" for w in pair if w))] += 1
        by_case[case] = s
    truncated = [r for r in truth if r["case"] == "truncated"]
    if truncated:
        corrupt = sum(1 for stage, rule in removed.values() if rule in ("truncated_record", "corrupt_record"))
        by_case["truncated"] = {
            "n": len(truncated),
            "at_expected_stage": min(corrupt, len(truncated)),
            "elsewhere": Counter(),
            "kept": len(truncated) - min(corrupt, len(truncated)),
        }
    for s in by_case.values():
        s["elsewhere"] = dict(s["elsewhere"])
        s["rate"] = s["at_expected_stage"] / s["n"] if s["n"] else 0.0
    return by_case


def pii_leaks(truth: list[dict[str, Any]], token_paths: list[str], tokenizer_path: str) -> dict[str, int]:
    """How many planted PII strings appear in the decoded token shards (and how many PII pages got there)."""
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_file=tokenizer_path)
    needles = sorted({v for row in truth for v in row.get("pii", [])})
    found: dict[str, int] = defaultdict(int)
    kept_ids: set[str] = set()
    for path in token_paths:
        table = pq.read_table(path, columns=["tokens", "doc_ids"])
        for ids in table.column("doc_ids").to_pylist():
            kept_ids.update(ids)
        for tokens in table.column("tokens").to_pylist():
            text = sp.decode(tokens)
            for needle in needles:
                if needle in text:
                    found[needle] += 1
    return {
        "pii_pages": sum(1 for r in truth if r["case"] == "pii"),
        "pii_strings": len(needles),
        "pii_strings_leaked": len(found),
        "pii_pages_kept": sum(1 for r in truth if r["case"] == "pii" and r["doc_id"] in kept_ids),
    }


def extraction_quality(truth: list[dict[str, Any]], doc_paths: list[str]) -> dict[str, float]:
    """Word-level precision and recall of extracted text against each page's known main text.

    Micro-averaged over the pages that extract kept: a word counts as matched up to the number of
    times it occurs in both (bag of words), so boilerplate that leaks in lowers precision and main
    text that is dropped lowers recall.
    """
    main = {row["doc_id"]: row["main_text"] for row in truth if row.get("main_text")}
    matched = extracted = expected = 0
    pages = 0
    for row in iter_rows(doc_paths, ["doc_id", "text"]):
        if row["doc_id"] not in main:
            continue
        got, want = Counter(_words(row["text"])), Counter(_words(main[row["doc_id"]]))
        matched += sum((got & want).values())
        extracted += sum(got.values())
        expected += sum(want.values())
        pages += 1
    return {
        "extract_pages_scored": pages,
        "extract_word_precision": matched / extracted if extracted else 0.0,
        "extract_word_recall": matched / expected if expected else 0.0,
    }


def _words(text: str) -> list[str]:
    return re.findall(r"\w+", text.lower())


def pii_redaction_quality(truth: list[dict[str, Any]], before: list[str], after: list[str]) -> dict[str, float]:
    """Redaction measured at the filter stage, against the planted PII.

    A page carries planted PII when its extracted text contains a planted string (PII pages, and
    the duplicates made of them). recall: planted strings gone from the filter's output, over those
    in the pages it kept. Replacements on pages without planted PII are counted by kind: they are
    false positives (version numbers, UUIDs, digit runs in code) or real addresses in the source.
    """
    from tasks.documents import PLACEHOLDERS

    needles = sorted({v for row in truth for v in row.get("pii", [])})
    source = {row["doc_id"]: row["text"] for row in iter_rows(before, ["doc_id", "text"])}
    found = missed = unplanted = unplanted_replaced = 0
    replaced: dict[str, int] = {kind: 0 for kind in PLACEHOLDERS}
    for row in iter_rows(after, ["doc_id", "text"]):
        original = source.get(row["doc_id"], "")
        if strings := [s for s in needles if s in original]:
            found += len(strings)
            missed += sum(s in row["text"] for s in strings)
            continue
        unplanted += 1
        added = {k: row["text"].count(p) - original.count(p) for k, p in PLACEHOLDERS.items()}
        unplanted_replaced += any(n > 0 for n in added.values())
        for kind, n in added.items():
            replaced[kind] += max(n, 0)
    return {
        "pii_filter_recall": (found - missed) / found if found else 1.0,
        "pii_unplanted_docs_replaced": unplanted_replaced,
        "pii_unplanted_docs_rate": unplanted_replaced / max(unplanted, 1),
        **{f"pii_unplanted_{kind}": n for kind, n in replaced.items()},
    }
