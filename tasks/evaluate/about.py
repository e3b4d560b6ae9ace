"""What a report needs to say what it is: the run, the code, tokens seen, examples of removals."""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow.dataset as ds

from storage.shards import iter_rows
from tasks.sample.planted import EXPECTED_STAGE
from tasks.stage import StageInput, current_run_id

EXAMPLE_CHARS = 300


def run_facts() -> dict[str, Any]:
    """Run id, date, crawl2model version and git revision (when the code is a checkout)."""
    try:
        version = importlib.metadata.version("crawl2model")
    except importlib.metadata.PackageNotFoundError:
        version = None
    return {"run_id": current_run_id(), "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "crawl2model": version, "git_revision": git_revision()}  # fmt: skip


def git_revision() -> str | None:
    here = Path(__file__).resolve().parent
    try:
        done = subprocess.run(["git", "-C", str(here), "rev-parse", "--short=12", "HEAD"], capture_output=True,
                              text=True, timeout=5, check=False)  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    if done.returncode != 0:
        return None
    dirty = subprocess.run(["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True, timeout=5, check=False).stdout.strip()  # fmt: skip
    return done.stdout.strip() + ("-dirty" if dirty else "")


def tokens_seen(inputs: dict[str, StageInput]) -> dict[str, Any]:
    """Tokens the model trained on, and epochs: over the token stream, and per domain over the unique
    documents (mix's repeats and the loader's passes together)."""
    trained, tok = inputs["train"], inputs["tokenize"]
    if trained.info.get("skipped") or not tok.files("token_counts"):
        return {}
    seen = int(trained.info["tokens_per_step"] * max(m["step"] for m in trained.manifest["metrics"]
                                                       if m["name"] == "train_loss"))  # fmt: skip
    stream, unique = Counter(), Counter()
    for r in iter_rows(tok.files("token_counts")):
        if r["split"] == "train":
            stream[r["domain"]] += r["tokens"]
            unique[r["domain"]] += r["tokens"] // max(r["copies"], 1)
    total = sum(stream.values()) or 1
    domains = {d: {"unique_tokens": unique[d], "tokens_seen": round(seen * stream[d] / total),
                   "epochs": seen * stream[d] / total / max(unique[d], 1)} for d in sorted(stream)}  # fmt: skip
    return {"tokens_seen": seen, "train_tokens": total, "epochs": seen / total, "domains": domains}


def removal_examples(inputs: dict[str, StageInput], stages: list[str], reasons: dict[str, list], per_rule: int = 2
                     ) -> list[dict[str, Any]]:  # fmt: skip
    """A few removed documents (truncated) for each stage's top removal rules, read from its input."""
    out = []
    for before, stage in zip(stages, stages[1:], strict=False):
        for rule, _ in reasons.get(stage, [])[:2]:
            ids = [r["doc_id"] for r in iter_rows(inputs[stage].files("removed"), ["doc_id", "rule"])
                   if r["rule"] == rule][:per_rule]  # fmt: skip
            for doc in _documents(inputs[before], ids):
                out.append({"stage": stage, "rule": rule, "url": doc["url"], "text": _truncate(doc["text"])})
    return out


def kept_examples(final: StageInput, n: int = 3) -> list[dict[str, Any]]:
    docs = []
    for doc in iter_rows(final.files("docs"), ["doc_id", "url", "text"]):
        docs.append({"url": doc["url"], "text": _truncate(doc["text"])})
        if len(docs) >= n:
            break
    return docs


def _documents(stage: StageInput, ids: list[str]) -> list[dict[str, Any]]:
    if not ids or not stage.files("docs"):
        return []
    table = ds.dataset(stage.files("docs"), format="parquet").to_table(
        columns=["doc_id", "url", "text"], filter=ds.field("doc_id").isin(ids))  # fmt: skip
    return table.to_pylist()


def _truncate(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= EXAMPLE_CHARS else flat[:EXAMPLE_CHARS] + " ..."


def planted_split(truth: list[dict[str, Any]], removed: dict[str, tuple[str, str]]) -> dict[str, dict[str, int]]:
    """Per stage and rule: removals of planted bad pages vs of pages planted as nothing (collateral)."""
    planted = {r["doc_id"] for r in truth if EXPECTED_STAGE.get(r["case"])}
    split: dict[str, dict[str, int]] = {}
    for doc_id, (stage, rule) in removed.items():
        row = split.setdefault(f"{stage}:{rule}", {"planted": 0, "not_planted": 0})
        row["planted" if doc_id in planted else "not_planted"] += 1
    return dict(sorted(split.items()))
