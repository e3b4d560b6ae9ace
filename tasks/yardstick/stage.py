"""yardstick: evaluation text pinned at the extract boundary, the same bytes under any curation.

A fixed fraction of extracted documents (chosen by doc_id hash, cleaned by fixed rules of their own)
becomes the yardstick. Tokenize excludes them and their exact and near copies from training in
every variant, mix labels their domains, and evaluate scores bits per byte on them. Because this
stage reads only extract's output and its own config, its fingerprint, and so the yardstick, stays
the same when filter, dedup, mix or tokenize settings change.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow as pa

from storage.fingerprint import unit_interval
from storage.progress import progress_bar
from storage.shards import iter_rows, write_parquet
from tasks.languages import words
from tasks.stage import StageInput, StageOutcome
from tasks.yardstick.config import YardstickConfig
from tasks.yardstick.copies import CopyIndex

PINNED_SCHEMA = pa.schema([("doc_id", pa.string()), ("url", pa.string()), ("host", pa.string()), ("lang", pa.string()),
                           ("text", pa.string()), ("n_bytes", pa.int64())])  # fmt: skip
EXCLUDED_SCHEMA = pa.schema([("doc_id", pa.string()), ("url", pa.string()), ("reason", pa.string()),
                             ("pinned_doc_id", pa.string()), ("similarity", pa.float64())])  # fmt: skip
COLUMNS = ["doc_id", "url", "host", "text", "lang", "lang_score"]
LETTER = re.compile(r"[^\W\d_]")


def fixed_rule_failure(doc: dict[str, Any], cfg: YardstickConfig) -> str | None:
    """The first fixed cleaning rule a candidate fails (language, length, words with letters)."""
    languages = cfg.languages or ["en"]  # set from extract.languages by the pipeline (the registry's derive)
    if (languages != "all" and doc["lang"] not in languages) or (doc["lang_score"] or 0.0) < cfg.min_lang_score:
        return "language"
    counted = words(doc["text"], doc["lang"])
    if not cfg.min_words <= len(counted) <= cfg.max_words:
        return "length"
    if sum(1 for w in counted if LETTER.search(w)) < cfg.min_alpha_words * len(counted):
        return "alpha_words"
    return None


def pin(docs: list[str], cfg: YardstickConfig, outcome: StageOutcome) -> list[dict[str, Any]]:
    """The drawn documents that pass the fixed rules, lowest hash first, at most `max_docs`; then, per
    language short of `min_per_language`, its next lowest-hash documents that pass them."""
    drawn, reserve, not_pinned = [], [], Counter()
    for doc in iter_rows(docs, COLUMNS):
        rank = unit_interval(cfg.seed, "yardstick", doc["doc_id"])
        if rank >= cfg.fraction and not cfg.min_per_language:
            continue
        if failed := fixed_rule_failure(doc, cfg):
            not_pinned[failed] += rank < cfg.fraction
            continue
        (drawn if rank < cfg.fraction else reserve).append((rank, doc))
    for rule, n in sorted(not_pinned.items()):
        outcome.metric(f"not_pinned.{rule}", n)
    ranked = [d for _, d in sorted(drawn + reserve, key=lambda pair: pair[0])]  # the draw's documents come first
    return sorted(at_least_per_language(ranked, min(len(drawn), cfg.max_docs), cfg.min_per_language),
                  key=lambda d: d["doc_id"])  # fmt: skip


def at_least_per_language(ranked: list[dict[str, Any]], drawn: int, minimum: int) -> list[dict[str, Any]]:
    """The first `drawn` documents, and from the rest (in rank order) those of a language that still has
    fewer than `minimum`."""
    chosen, per_language = ranked[:drawn], Counter(d["lang"] for d in ranked[:drawn])
    for doc in ranked[drawn:]:
        if per_language[doc["lang"]] < minimum:
            chosen.append(doc)
            per_language[doc["lang"]] += 1
    return chosen


def find_copies(docs: list[str], pinned: list[dict[str, Any]], cfg: YardstickConfig, total: int) -> list[dict]:
    """Every extracted document to keep out of training: the pinned ones and their copies."""
    index = CopyIndex(pinned, cfg.shingle_words, cfg.copy_threshold)
    pinned_ids = {d["doc_id"] for d in pinned}
    excluded = [{"doc_id": d["doc_id"], "url": d["url"], "reason": "pinned", "pinned_doc_id": d["doc_id"],
                 "similarity": 1.0} for d in pinned]  # fmt: skip
    with progress_bar("yardstick: copies", total=total) as advance:
        for doc in iter_rows(docs, ["doc_id", "url", "text", "lang"]):
            advance(1)
            if doc["doc_id"] in pinned_ids or not (found := index.match(doc["text"], doc["lang"])):
                continue
            reason, of, similarity = found
            excluded.append({"doc_id": doc["doc_id"], "url": doc["url"], "reason": reason, "pinned_doc_id": of,
                             "similarity": similarity})  # fmt: skip
    return excluded


def yardstick_fingerprint(pinned: list[dict[str, Any]]) -> str:
    """A digest of the evaluation text itself: equal fingerprints mean byte-identical yardsticks."""
    h = hashlib.sha256()
    for d in pinned:
        h.update(d["doc_id"].encode() + b"\0" + d["text"].encode() + b"\0")
    return h.hexdigest()


def run(inputs: dict[str, StageInput], cfg: YardstickConfig, out: Path) -> StageOutcome:
    docs = inputs["extract"].files("docs")
    outcome = StageOutcome()
    pinned = pin(docs, cfg, outcome)
    for doc in pinned:
        doc["n_bytes"] = len(doc["text"].encode())
    write_parquet(pa.Table.from_pylist(pinned, schema=PINNED_SCHEMA), out / "pinned" / "part-00000.parquet")
    excluded = find_copies(docs, pinned, cfg, int(inputs["extract"].manifest["counts"]["docs_out"] or 0))
    write_parquet(pa.Table.from_pylist(excluded, schema=EXCLUDED_SCHEMA), out / "excluded" / "part-00000.parquet")
    fingerprint = yardstick_fingerprint(pinned)
    by_reason = {r: sum(1 for e in excluded if e["reason"] == r) for r in ("pinned", "exact_copy", "near_copy")}
    languages = dict(sorted(Counter(d["lang"] for d in pinned).items()))
    outcome.info = {"yardstick": fingerprint, "docs": len(pinned), "bytes": sum(d["n_bytes"] for d in pinned),
                    "excluded": by_reason, "languages": languages}  # fmt: skip
    outcome.metric("pinned_docs", len(pinned))
    outcome.metric("pinned_bytes", outcome.info["bytes"])
    for reason, n in by_reason.items():
        outcome.metric(f"excluded.{reason}", n)
    return outcome
