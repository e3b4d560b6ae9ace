"""mix: label each document's domain, then up/down-sample domains to a target mixture.

Sampling is by hash of (seed, doc_id), so it does not depend on shard order or worker count. A
document's `repeats` says how many copies the tokenizer emits; zero means it was sampled out.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from storage.fingerprint import unit_interval
from storage.shards import iter_rows, write_parquet
from tasks.documents import MIX_COLUMNS, estimated_tokens, removed_row, write_shard
from tasks.mix.buckets import anneal_copies, document_rate, domain_norms
from tasks.mix.config import MixConfig
from tasks.mix.languages import language_budgets, language_of, language_table, language_targets
from tasks.mix.topics import TopicModel, train_topic_model
from tasks.stage import StageInput, StageOutcome

STAGE = "mix"


def label_domain(url: str, host: str, cfg: MixConfig) -> str:
    host = host.lower()
    for domain, patterns in cfg.domain_rules.items():
        for p in patterns:
            p = p.lower()
            if host == p or host.endswith("." + p) or p in url.lower():
                return domain
    return cfg.default_domain


def sampling_rates(tokens: dict[str, float], cfg: MixConfig, budget: float | None = None) -> dict[str, float]:
    """Copies per document for each domain, so the mixture matches the target (of `budget` tokens)."""
    total = sum(tokens.values())
    budget = budget if budget is not None else cfg.token_budget or total
    if cfg.mode == "natural":
        target = {d: t / total for d, t in tokens.items()}
    elif cfg.mode == "weights":
        w = {d: cfg.weights.get(d, 0.0) for d in tokens}
        norm = sum(w.values()) or 1.0
        target = {d: v / norm for d, v in w.items()}
    else:  # temperature sampling: p_d proportional to n_d^(1/T)
        powered = {d: t ** (1.0 / cfg.temperature) for d, t in tokens.items()}
        norm = sum(powered.values())
        target = {d: v / norm for d, v in powered.items()}
    return {d: min(target[d] * budget / tokens[d], float(cfg.max_repeats)) if tokens[d] else 0.0 for d in tokens}


def group_of(doc: dict[str, Any], cfg: MixConfig) -> str | tuple[str, str]:
    """What a document's rate is set for: its domain, or its (language, domain) with language budgets."""
    return doc["domain"] if cfg.languages is None else (language_of(doc), doc["domain"])


def group_rates(docs: list[dict[str, Any]], tokens: dict[str, float], cfg: MixConfig) -> dict[Any, float]:
    """Copies per document for each domain; with language budgets, each language's domains share out
    that language's budget as the domain weights say."""
    if cfg.languages is None:
        return sampling_rates(tokens, cfg)
    by_group: dict[tuple[str, str], float] = {}
    per_language: dict[str, float] = {}
    for doc in docs:
        lang, n = language_of(doc), estimated_tokens(doc)
        by_group[(lang, doc["domain"])] = by_group.get((lang, doc["domain"]), 0.0) + n
        per_language[lang] = per_language.get(lang, 0.0) + n
    budgets = language_budgets(per_language, cfg.token_budget or sum(per_language.values()), cfg.languages)
    rates: dict[Any, float] = {}
    for lang, budget in budgets.items():
        domains = {d: t for (x, d), t in by_group.items() if x == lang}
        rates |= {(lang, d): r for d, r in sampling_rates(domains, cfg, budget).items()}
    return rates


def languages_info(docs: list[dict[str, Any]], cfg: MixConfig, outcome: StageOutcome) -> dict[str, Any]:
    """Tokens, shares and epochs per language (the report's table), also as metrics."""
    before: dict[str, float] = {}
    after: dict[str, float] = {}
    counts: dict[str, int] = {}
    for doc in docs:
        lang, n = language_of(doc), estimated_tokens(doc)
        before[lang], counts[lang] = before.get(lang, 0.0) + n, counts.get(lang, 0) + 1
        after[lang] = after.get(lang, 0.0) + n * doc["repeats"]
    table = language_table(before, after, counts, language_targets(before, cfg.languages))
    for lang, row in table.items():
        for key in ("share_after", "epochs", "tokens_after"):
            outcome.metric(f"language.{lang}.{key}", row[key])
    return table


def copies(rate: float, seed: int, doc_id: str) -> int:
    whole = math.floor(rate)
    return whole + (unit_interval(seed, "mix", doc_id) < rate - whole)


class Labeller:
    """Domain by URL rules, then (optionally) by the topic model; counts what the model relabelled."""

    def __init__(self, cfg: MixConfig, out: Path):
        self.cfg, self.topic, self.info, self.relabelled = cfg, None, {}, 0
        if cfg.topic_examples:
            self.info = train_topic_model(cfg.topic_examples, out / "topic_model.bin", cfg.seed)
            self.topic = TopicModel(out / "topic_model.bin")

    def __call__(self, doc: dict[str, Any]) -> str:
        cfg = self.cfg
        d = label_domain(doc["url"] or "", doc["host"] or "", cfg)
        if self.topic is not None and (cfg.topic_relabel == "all" or d == cfg.default_domain):
            predicted, confidence = self.topic.predict(doc["text"])
            if confidence >= cfg.topic_min_confidence and predicted != d:
                d, self.relabelled = predicted, self.relabelled + 1
        return d


def label_yardstick(inputs: dict[str, StageInput], label: Labeller, out: Path) -> None:
    """The pinned evaluation documents get domains by the same rules, for per-domain bits per byte."""
    pinned = iter_rows(inputs["yardstick"].files("pinned"), ["doc_id", "url", "host", "text"])
    rows = [{"doc_id": d["doc_id"], "domain": label(d)} for d in pinned]
    schema = pa.schema([("doc_id", pa.string()), ("domain", pa.string())])
    write_parquet(pa.Table.from_pylist(rows, schema=schema), out / "yardstick_domains" / "part-00000.parquet")


def run(inputs: dict[str, StageInput], cfg: MixConfig, out: Path) -> StageOutcome:
    shards = inputs["dedup"].files("docs")
    tables = [pq.read_table(p).to_pylist() for p in shards]
    tokens: dict[str, float] = {}
    docs_before: dict[str, int] = {}
    label = Labeller(cfg, out)
    for rows in tables:
        for doc in rows:
            doc["domain"] = d = label(doc)
            tokens[d] = tokens.get(d, 0.0) + estimated_tokens(doc)
            docs_before[d] = docs_before.get(d, 0) + 1
    relabelled = label.relabelled
    if "yardstick" in inputs:
        label_yardstick(inputs, label, out)
    docs = [doc for rows in tables for doc in rows]
    rates = group_rates(docs, tokens, cfg) if tokens else {}
    norms = domain_norms(docs, cfg) if cfg.weighs_documents else {}
    outcome = StageOutcome(docs_in=sum(len(r) for r in tables), docs_out=0, docs_removed=0)
    tokens_after: dict[str, float] = {}
    docs_after: dict[str, int] = {}
    for i, rows in enumerate(tables):
        kept, removed = [], []
        for doc in rows:
            group_rate = rates[group_of(doc, cfg)]
            rate = document_rate(doc, group_rate, norms, cfg)
            doc["sample_weight"] = rate
            doc["repeats"] = n = copies(rate, cfg.seed, doc["doc_id"])
            if n == 0:
                reason = "quality_bucket" if rate == 0 and group_rate > 0 else "downsampled"
                removed.append(removed_row(doc, STAGE, reason, rate, doc["domain"]))
                continue
            doc["anneal_repeats"] = anneal_copies(doc, cfg.anneal)
            kept.append(doc)
            tokens_after[doc["domain"]] = tokens_after.get(doc["domain"], 0.0) + n * estimated_tokens(doc)
            docs_after[doc["domain"]] = docs_after.get(doc["domain"], 0) + 1
        counts = write_shard(out, i, kept, removed, MIX_COLUMNS)
        outcome.docs_out += counts["docs_out"]
        outcome.docs_removed += counts["docs_removed"]
    mixture: dict[str, Any] = {}
    for d in sorted(tokens):
        mixture[d] = {
            "docs_before": docs_before[d],
            "tokens_before": round(tokens[d]),
            "share_before": tokens[d] / sum(tokens.values()),
            "docs_after": docs_after.get(d, 0),
            "tokens_after": round(tokens_after.get(d, 0.0)),
            "share_after": tokens_after.get(d, 0.0) / (sum(tokens_after.values()) or 1.0),
            # Planned copies per document; with language budgets a domain has one per language: the realised.
            "rate": rates[d] if cfg.languages is None else tokens_after.get(d, 0.0) / (tokens[d] or 1.0),
        }
        for key, value in mixture[d].items():
            outcome.metric(f"domain.{d}.{key}", value)
    outcome.info = {"mixture": mixture, "mode": cfg.mode, "topic_examples": label.info}
    if cfg.languages is not None:
        outcome.info["languages"] = languages_info(docs, cfg, outcome)
    if warnings := mixture_warnings(docs_before, cfg):
        outcome.info["warnings"] = warnings
    if label.topic is not None:
        outcome.metric("topic_relabelled", relabelled)
    return outcome


def mixture_warnings(docs_per_domain: dict[str, int], cfg: MixConfig) -> list[str]:
    """Domain rules that do not fit the crawl (the sample's, say, on a real crawl): weighted domains
    that received no document, or nearly every document in the default domain."""
    total = sum(docs_per_domain.values())
    if not total or cfg.mode != "weights":
        return []
    found = []
    if empty := sorted(d for d, w in cfg.weights.items() if w > 0 and not docs_per_domain.get(d)):
        found.append(f"mix.weights gives a share to {', '.join(empty)}, but no document was labelled so by "
                     "mix.domain_rules: write rules for this crawl's hosts, or set mix.mode=natural")  # fmt: skip
    default = docs_per_domain.get(cfg.default_domain, 0) / total
    if default >= 0.9 and len(cfg.weights) > 1:
        found.append(f"{default:.0%} of documents fell to the default domain {cfg.default_domain!r}: "
                     "mix.domain_rules match few of this crawl's hosts")  # fmt: skip
    return found
