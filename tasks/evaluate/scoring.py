"""evaluate's model-side half: bits per byte (overall, per domain, on any document set) and task scores.

Kept apart from `stage.py` so that listing the stages (the registry) does not import torch.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import math
import random
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import sentencepiece as spm
import torch

from model.benchmarks import item_results, last_word_results, summarize, summarize_last_word
from model.data import load_rows
from model.evaluation import (
    bits_per_byte,
    document_nll,
    generate_samples,
    token_byte_lengths,
    unigram_counts,
    unigram_nll,
    validation_nll,
)
from model.formulations import formulate
from model.gpt import GPT
from model.intervals import Units, interval
from model.item_formats import load as load_items
from model.items import Item, items_from_rows, with_few_shot
from model.packing import EOS_ID, pack
from model.trainer import load_model
from storage.fingerprint import file_sha256
from storage.shards import iter_rows
from tasks.contamination import ContaminationIndex
from tasks.evaluate.config import EvaluateConfig
from tasks.stage import StageInput
from tasks.suites import CORE_V1_BASELINES, read_core_baselines


def _split_files(tok: StageInput, split: str) -> list[str]:
    return [p for p in tok.files("tokens") if Path(p).name.startswith(f"{split}-")]


class Scorer:
    """Bits per byte for token rows, with the byte lengths of this tokenizer's pieces."""

    def __init__(self, model: GPT, sp: spm.SentencePieceProcessor):
        self.model, self.sp = model, sp
        self.byte_len = torch.from_numpy(token_byte_lengths(sp))

    def intrinsic(self, rows: torch.Tensor, seed: int = 0) -> dict[str, Any]:
        """Loss, perplexity and bits per byte of packed rows, loss and bits per byte with 95% intervals
        over rows (a row is a window of whole and partial documents)."""
        nll, n_tokens, per_token = validation_nll(self.model, rows)
        row_nats = per_token.view(len(rows), -1).sum(dim=1).double().numpy()
        row_bytes = self.byte_len[rows[:, 1:]].sum(dim=1).double().numpy()
        n_bytes = int(row_bytes.sum())
        return {"loss": nll / n_tokens, "loss_ci": interval(Units.of(row_nats, np.full(len(rows), rows.shape[1] - 1.0)),
                                                          seed=seed)["ci"],
                "perplexity": math.exp(nll / n_tokens), "bits_per_byte": bits_per_byte(nll, n_bytes),
                "bits_per_byte_ci": interval(Units.of(row_nats / math.log(2), row_bytes), seed=seed)["ci"],
                "tokens": n_tokens, "bytes": n_bytes}  # fmt: skip


def held_out_docs(tok: StageInput, mix: StageInput) -> list[dict[str, Any]]:
    """The mixed documents that the tokenize stage put in the validation split."""
    val_ids = {d for p in _split_files(tok, "val") for ids in pq.read_table(p, columns=["doc_ids"])[0].to_pylist()
               for d in ids}  # fmt: skip
    return [d for d in iter_rows(mix.files("docs"), ["doc_id", "text", "domain"]) if d["doc_id"] in val_ids]


def documents_bits_per_byte(tok: StageInput, trained: StageInput, docs: list[dict[str, Any]], max_rows: int) -> float:
    """One model's bits per byte on a fixed document set (tokenizer-independent, so runs compare)."""
    sp = spm.SentencePieceProcessor(model_file=tok.file("tokenizer"))
    scorer = Scorer(load_model(trained.file("model")), sp)
    scored = per_domain(scorer, [{**d, "domain": "target"} for d in docs], tok.info["seq_len"], max_rows)
    if "target" not in scored:
        raise ValueError("no target documents to score")
    return scored["target"]["bits_per_byte"]


def per_domain(scorer: Scorer, docs: list[dict[str, Any]], seq_len: int, max_rows: int) -> dict[str, dict]:
    by_domain: dict[str, list[dict]] = {}
    for d in docs:
        by_domain.setdefault(d["domain"], []).append(d)
    results = {}
    for domain, members in sorted(by_domain.items()):
        encoded = scorer.sp.encode([d["text"] for d in members])
        rows = pack([(d["doc_id"], ids) for d, ids in zip(members, encoded, strict=True)], seq_len)[:max_rows]
        if rows:
            results[domain] = {"docs": len(members), **scorer.intrinsic(torch.tensor([r["tokens"] for r in rows]))}
    return results


def load_benchmarks(cfg: EvaluateConfig) -> list[list[Item]]:
    """Every configured benchmark's items, few-shot prompts applied (also used for decontamination)."""
    out = []
    for b in cfg.benchmarks:
        items = load_items(b.path, b.format, task=b.name, language=b.language)[: b.limit]
        if b.sample is not None and b.sample < len(items):
            items = [items[i] for i in sorted(random.Random(cfg.seed).sample(range(len(items)), b.sample))]
        source, first_n = b.shot_source()
        pool = load_items(source, b.format, task=b.name, language=b.language) if source and b.shots else None
        for name, formulation in b.formulations():
            asked = [replace(i, task=name) for i in formulate(items, formulation)]
            shots = [replace(i, task=name) for i in formulate(pool, formulation)] if pool else None
            out.append(with_few_shot(asked, b.shots, cfg.seed, shots, first_n))
    return out


def intrinsic_scores(scorer: Scorer, tok: StageInput, cfg: EvaluateConfig) -> dict[str, Any]:
    """In-distribution held-out split: loss, perplexity and bits per byte (interval over rows), with
    the unigram baseline beside them (none when the split is empty, as on a crawl of a few dozen pages)."""
    if not tok.metric_total("val_rows"):
        return {}
    val_rows = load_rows(_split_files(tok, "val"), cfg.max_val_rows)
    overall = scorer.intrinsic(val_rows, cfg.seed)
    uni = unigram_nll(unigram_counts(_split_files(tok, "train"), scorer.sp.get_piece_size()), val_rows)
    evals: dict[str, Any] = {f"val_{k}": v for k, v in overall.items()}
    evals["unigram_bits_per_byte"] = bits_per_byte(uni, overall["bytes"])
    return evals


def document_rows(scorer: Scorer, docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per document: NLL in bits of its text and its UTF-8 bytes (bits per byte without token lengths)."""
    encoded = scorer.sp.encode([d["text"] for d in docs])
    nll = document_nll(scorer.model, encoded, EOS_ID)
    return [{"doc_id": d["doc_id"], "domain": d.get("domain", ""), "tokens": len(ids), "nll_bits": n / math.log(2),
             "n_bytes": len(d["text"].encode()), "lang": d.get("lang")}
            for d, ids, n in zip(docs, encoded, nll, strict=True)]  # fmt: skip


def bpb_interval(rows: list[dict[str, Any]], seed: int) -> dict[str, Any]:
    units = Units.of([r["nll_bits"] for r in rows], [r["n_bytes"] for r in rows])
    return {"docs": len(rows), **interval(units, seed=seed)}


def yardstick_scores(scorer: Scorer, inputs: dict[str, StageInput], cfg: EvaluateConfig
                     ) -> tuple[dict[str, Any], list[dict[str, Any]]]:  # fmt: skip
    """Bits per byte on the pinned documents (overall and per domain) and on the user's reference files."""
    if "yardstick" not in inputs:
        return {}, []
    domain_of = {r["doc_id"]: r["domain"] for r in iter_rows(inputs["mix"].files("yardstick_domains"))}
    docs = [{**d, "domain": domain_of.get(d["doc_id"], "")}
            for d in iter_rows(inputs["yardstick"].files("pinned"), ["doc_id", "text", "lang"])]  # fmt: skip
    docs += [{**d, "domain": f"reference:{Path(p).name}"} for p in cfg.reference_paths for d in reference_docs(p)]
    rows = document_rows(scorer, docs) if docs else []
    pinned = [r for r in rows if not r["domain"].startswith("reference:")]
    result: dict[str, Any] = {"fingerprint": yardstick_fingerprint(inputs["yardstick"], cfg)}
    result["bits_per_byte"] = bpb_interval(pinned, cfg.seed) if pinned else {}
    result["domains"] = {d: bpb_interval([r for r in rows if r["domain"] == d], cfg.seed)
                         for d in sorted({r["domain"] for r in rows})}  # fmt: skip
    if len(languages := sorted({r["lang"] for r in pinned if r["lang"]})) > 1:
        result["languages"] = {lang: bpb_interval([r for r in pinned if r["lang"] == lang], cfg.seed)
                               for lang in languages}  # fmt: skip
    return result, rows


def yardstick_fingerprint(yardstick: StageInput, cfg: EvaluateConfig) -> str:
    """The pinned text's digest and the reference files' digests: equal means the same evaluation text."""
    parts = [yardstick.info["yardstick"], *[file_sha256(p) for p in cfg.reference_paths]]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def reference_docs(path: str) -> list[dict[str, Any]]:
    """A reference file's documents: JSONL or Parquet rows with a `text`, or blank-line-separated text."""
    name = Path(path).name
    if path.endswith((".jsonl", ".jsonl.gz")):
        rows = [json.loads(line) for line in _read_text(path).splitlines() if line.strip()]
        texts = [r["text"] for r in rows]
    elif path.endswith(".parquet"):
        texts = pq.read_table(path, columns=["text"])[0].to_pylist()
    else:
        texts = [block.strip() for block in _read_text(path).split("\n\n") if block.strip()]
    return [{"doc_id": f"{name}:{i}", "text": t} for i, t in enumerate(texts) if t]


def _read_text(path: str) -> str:
    if path.endswith(".gz"):
        return gzip.decompress(Path(path).read_bytes()).decode("utf-8", errors="replace")
    return Path(path).read_text(encoding="utf-8", errors="replace")


ACCURACIES = ("acc", "acc_norm", "acc_token", "acc_pmi")


def with_intervals(summary: dict[str, Any], results: list[dict[str, Any]], seed: int) -> dict[str, Any]:
    """A task's accuracies with 95% intervals over items, and whether each interval holds its baseline:
    the better of chance and the majority answer (a model at BoolQ's "always yes" is not above chance)."""
    out = dict(summary)
    out["baseline"] = max(summary.get("chance", 0.0), summary.get("majority", 0.0))
    for key in (*ACCURACIES, "p_correct", "logprob_norm"):
        if key in summary and len(results) > 1:
            out[f"{key}_ci"] = interval(Units.of([r[key] for r in results]), seed=seed)["ci"]
    for key in ACCURACIES:
        if f"{key}_ci" in out:
            out[f"{key}_at_chance"] = out[f"{key}_ci"][0] <= out["baseline"]
    return out


CORE_RULES = {"v1": "DCLM's published baselines, v1 (eval_meta_data_v1.csv)",
              "measured": "each task's better of chance and its majority answer",
              "chance": "1/choices"}  # fmt: skip


def core_baseline(task: str, summary: dict[str, Any], rule: str, table: dict[str, float] | None = None) -> float:
    """The baseline CORE centers a task on: from `table` (a baselines file, or v1's) when it names the
    task, else the rule's (`evaluate.core_baselines`); language modelling: 0."""
    if "acc_norm" not in summary:
        return 0.0
    if table is not None and task in table:
        return table[task]
    return summary["baseline"] if rule == "measured" else summary["chance"]


def centered_accuracy(tasks: dict[str, dict[str, Any]], per_item: dict[str, list[dict[str, Any]]],
                      seed: int, rule: str = "chance", baselines_file: str | None = None
                      ) -> dict[str, Any]:  # fmt: skip
    """DCLM's CORE-style aggregate over the configured benchmarks: per task (acc - baseline) / (1 - baseline),
    0 at the baseline and 1 perfect (language-modelling tasks have 0, as DCLM's LAMBADA), then the mean;
    its 95% interval by resampling each task's items (the percentile bootstrap)."""
    table, stated = (CORE_V1_BASELINES, CORE_RULES["v1"]) if rule == "v1" else (None, CORE_RULES[rule])
    if baselines_file is not None:
        table, stated = read_core_baselines(baselines_file)
    chance = {t: core_baseline(t, v, rule, table) for t, v in tasks.items()}
    key = {t: stated_key(v) for t, v in tasks.items()}
    centered = {t: (v[key[t]] - chance[t]) / (1 - chance[t]) for t, v in tasks.items() if "acc" in v}
    if not centered:
        return {}
    rng = np.random.default_rng(seed)
    replicates = np.zeros(1000)
    for t in centered:
        acc = np.array([r[key[t]] for r in per_item[t]])
        means = acc[rng.integers(0, len(acc), (len(replicates), len(acc)))].mean(axis=1)
        replicates += (means - chance[t]) / (1 - chance[t]) / len(centered)
    return {"n": len(centered), "acc": sum(centered.values()) / len(centered), "baselines": stated,
            "acc_ci": [float(np.percentile(replicates, 2.5)), float(np.percentile(replicates, 97.5))],
            **{f"centered.{t}": c for t, c in centered.items()}}  # fmt: skip


def stated_key(summary: dict[str, Any]) -> str:
    """The accuracy a task states: under its benchmark's `normalization`, else the unnormalised one."""
    return summary.get("stated", "acc")


def stated_accuracy(summary: dict[str, Any]) -> float:
    return summary[stated_key(summary)]


def mark_better_formulation(tasks: dict[str, dict[str, Any]]) -> None:
    """Of a benchmark asked both ways (NAME:cloze, NAME:mc), the one with the higher accuracy, as OLMES reports it."""
    for name, summary in tasks.items():
        if name.endswith(":mc") and (cloze := tasks.get(f"{name[:-3]}:cloze")) and "acc" in summary:
            better = summary if stated_accuracy(summary) > stated_accuracy(cloze) else cloze
            better["flag_better_formulation"] = "the better formulation (OLMES reports it)"


def contamination(tok: StageInput, mix: StageInput, benchmarks: list[list[Item]], n: int) -> dict[str, dict]:
    """Per benchmark: how many of its items share an n-gram with a document the model trained on (the
    tokenize stage's train split), reported whatever the run decontaminated against."""
    indexes = {}
    for items in benchmarks:
        index = ContaminationIndex(n)
        for item in items:
            index.add(f"{item.task}:{item.item_id}", item.gold())
        indexes[items[0].task] = (index, set())
    if not indexes:
        return {}
    train_ids = {d for p in _split_files(tok, "train") for ids in pq.read_table(p, columns=["doc_ids"])[0].to_pylist()
                 for d in ids}  # fmt: skip
    for doc in iter_rows(mix.files("docs"), ["doc_id", "text"]):
        if doc["doc_id"] in train_ids:
            for index, hit in indexes.values():
                hit.update(index.items_hit(doc["text"]))
    return {task: {"items": index.items, "contaminated": len(hit), "share": len(hit) / max(index.items, 1),
                   "ngram": n} for task, (index, hit) in indexes.items()}  # fmt: skip


def items_fingerprint(items: list[Item]) -> str:
    h = hashlib.sha256()
    for item in sorted(items, key=lambda i: i.item_id):
        h.update(json.dumps([item.item_id, item.context, item.choices, item.label]).encode())
    return h.hexdigest()


def by_language(results: list[dict[str, Any]], lang_of: dict[str, str], seed: int) -> dict[str, dict[str, Any]]:
    """A built-in task's accuracy per language of the pinned document each item was made from (with
    more than one language)."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in results:
        if lang := lang_of.get(r["item_id"].rsplit(":", 1)[0]):
            groups.setdefault(lang, []).append(r)
    if len(groups) < 2:
        return {}
    return {lang: {"n": len(rs), "acc": sum(r["acc"] for r in rs) / len(rs),
                   "acc_ci": interval(Units.of([r["acc"] for r in rs]), seed=seed)["ci"]}
            for lang, rs in sorted(groups.items())}  # fmt: skip


def task_scores(model: GPT, sp: spm.SentencePieceProcessor, tok: StageInput, mix: StageInput, cfg: EvaluateConfig,
                lang_of: dict[str, str] | None = None
                ) -> tuple[dict[str, dict[str, Any]], list[Item], list[dict[str, Any]]]:  # fmt: skip
    """Built-in tasks (made by tokenize from the yardstick's documents) and the configured benchmarks:
    summaries with intervals, the items, and each item's result."""
    rows = [json.loads(line) for line in Path(tok.file("builtin_items")).read_text().splitlines() if line]
    made = items_from_rows(rows)
    builtin = [[i for i in made if i.task == "cloze"], [i for i in made if i.task == "last_word"]]
    lang_of = lang_of or {}
    benchmarks = load_benchmarks(cfg)
    stated = {name: m for b in cfg.benchmarks for name, f in b.formulations() if (m := b.stated_metric(f))}
    tasks: dict[str, dict[str, Any]] = {}
    per_item: list[dict[str, Any]] = []
    for k, items in enumerate([builtin[0], builtin[1], *benchmarks]):
        if not items:
            continue
        if items[0].kind == "lm":  # last word / language modelling: greedy match and perplexity
            results = last_word_results(model, sp.encode, items)
            # Chance for an exact-match task: a uniform guess over the vocabulary picks the word's first token.
            summary = summarize_last_word(results) | {"chance": 1 / sp.get_piece_size(), "chance_rule": "1/vocabulary"}
        else:
            key, norm = stated.get(items[0].task, ("", ""))
            results = item_results(model, sp.encode, items, pmi=key == "acc_pmi")
            summary = summarize(results) | ({"stated": key, "normalization": norm} if key else {})
        tasks[items[0].task] = with_intervals(summary, results, cfg.seed)
        if k < len(builtin) and (split := by_language(results, lang_of, cfg.seed)):
            tasks[items[0].task]["languages"] = split
        per_item += results
    mark_better_formulation(tasks)
    for b in cfg.benchmarks:  # results named by task and language
        for name, _ in b.formulations():
            if b.language and name in tasks:
                tasks[name]["language"] = b.language
    # CORE counts a benchmark asked both ways once, by its better formulation.
    counted = [b[0].task for b in benchmarks if b and (not b[0].task.endswith((":mc", ":cloze"))
                                                       or "flag_better_formulation" in tasks[b[0].task])]  # fmt: skip
    by_task = {t: [r for r in per_item if r["task"] == t] for t in counted}
    if core := centered_accuracy({t: tasks[t] for t in by_task}, by_task, cfg.seed, cfg.core_baselines,
                                 cfg.core_baselines_file):  # fmt: skip
        tasks["core_centered"] = core
    for task, found in contamination(tok, mix, [b for b in benchmarks if b], cfg.contamination_ngram).items():
        tasks[task]["contamination"] = found
    for items in [*builtin, *benchmarks]:
        if items:
            tasks[items[0].task]["items_fingerprint"] = items_fingerprint(items)
    return tasks, [item for items in [*builtin, *benchmarks] for item in items], per_item


def score_model(inputs: dict[str, StageInput], cfg: EvaluateConfig) -> dict[str, Any]:
    """Everything evaluate measures with the trained model: intrinsic metrics overall and per domain,
    task scores (and the items scored), and sample generations."""
    tok, trained = inputs["tokenize"], inputs["train"]
    sp = spm.SentencePieceProcessor(model_file=tok.file("tokenizer"))
    model = load_model(trained.file("model"))
    scorer = Scorer(model, sp)
    evals = intrinsic_scores(scorer, tok, cfg)
    domains = per_domain(scorer, held_out_docs(tok, inputs["mix"]), tok.info["seq_len"], cfg.per_domain_rows)
    yardstick, yardstick_rows = yardstick_scores(scorer, inputs, cfg)
    lang_of = {r["doc_id"]: r["lang"] for r in yardstick_rows if r.get("lang")}
    tasks, items, item_rows = task_scores(model, sp, tok, inputs["mix"], cfg, lang_of)
    generations = generate_samples(model, sp, cfg.prompts, cfg.max_new_tokens, cfg.temperature, cfg.top_k,
                                   cfg.seed, tok.info["eos_id"])  # fmt: skip
    return {"evals": evals, "domains": domains, "tasks": tasks, "items": items, "generations": generations,
            "yardstick": yardstick, "yardstick_rows": yardstick_rows, "item_rows": item_rows}  # fmt: skip
