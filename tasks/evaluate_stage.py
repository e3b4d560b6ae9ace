"""evaluate: intrinsic metrics (overall and per domain), benchmarks, built-in tasks, generations, report."""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import sentencepiece as spm
import torch

from model.benchmarks import LOADERS, Item, items_as_rows, items_from_rows, score_items, with_few_shot
from model.builtin_tasks import score_last_word
from model.data import load_rows
from model.evaluation import (
    bits_per_byte,
    generate_samples,
    token_byte_lengths,
    unigram_counts,
    unigram_nll,
    validation_nll,
)
from model.gpt import GPT
from model.trainer import load_model
from storage.shards import atomic_write_bytes, atomic_write_json, iter_rows
from tasks import STAGE_VERSIONS
from tasks.config import EvaluateConfig
from tasks.ground_truth import load_ground_truth, pii_leaks, pii_redaction_quality, removals, score_planted
from tasks.report import mixture_png, render_html, render_report, training_curves_png
from tasks.stage import StageInput, StageOutcome
from tasks.tokenize_stage import pack

VERSION = STAGE_VERSIONS["evaluate"]
DOC_STAGES = ("extract", "filter", "dedup", "mix", "tokenize")


def _split_files(tok: StageInput, split: str) -> list[str]:
    return [p for p in tok.files("tokens") if Path(p).name.startswith(f"{split}-")]


class Scorer:
    """Bits per byte for token rows, with the byte lengths of this tokenizer's pieces."""

    def __init__(self, model: GPT, sp: spm.SentencePieceProcessor):
        self.model, self.sp = model, sp
        self.byte_len = torch.from_numpy(token_byte_lengths(sp))

    def intrinsic(self, rows: torch.Tensor) -> dict[str, float]:
        nll, n_tokens, _ = validation_nll(self.model, rows)
        n_bytes = int(self.byte_len[rows[:, 1:].reshape(-1)].sum())
        return {"loss": nll / n_tokens, "perplexity": math.exp(nll / n_tokens),
                "bits_per_byte": bits_per_byte(nll, n_bytes), "tokens": n_tokens, "bytes": n_bytes}  # fmt: skip


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


def funnel_with_tokens(inputs: dict[str, StageInput], bytes_per_token: float) -> tuple[list[dict], dict]:
    """Documents and (estimated) tokens in and out of each stage, and its top removal reasons."""
    funnel, reasons = [], {}
    for stage in DOC_STAGES:
        if stage not in inputs:
            continue
        row = {"stage": stage, **inputs[stage].manifest["counts"]}
        docs = inputs[stage].files("docs")
        if docs:
            chars = sum(pq.read_table(p, columns=["n_chars"])[0].to_numpy().sum() for p in docs)
            row["est_tokens_out"] = int(chars / bytes_per_token)
        if stage == "tokenize":
            row["est_tokens_out"] = int(sum(m["value"] for m in inputs[stage].manifest["metrics"]
                                            if m["name"] in ("train_tokens", "val_tokens")))  # fmt: skip
        funnel.append(row)
        if removed := inputs[stage].files("removed"):
            reasons[stage] = Counter(r["rule"] for r in iter_rows(removed, ["rule"])).most_common()
    return funnel, reasons


def load_benchmarks(cfg: EvaluateConfig) -> list[list[Item]]:
    """Every configured benchmark's items, few-shot prompts applied (also used for decontamination)."""
    out = []
    for b in cfg.benchmarks:
        items = LOADERS[b.format](b.path, task=b.name)[: b.limit]
        out.append(with_few_shot(items, b.shots, cfg.seed))
    return out


def run(inputs: dict[str, StageInput], cfg: EvaluateConfig, out: Path) -> StageOutcome:
    tok, trained = inputs["tokenize"], inputs["train"]
    sp = spm.SentencePieceProcessor(model_file=tok.file("tokenizer"))
    model = load_model(trained.file("model"))
    scorer = Scorer(model, sp)
    val_rows = load_rows(_split_files(tok, "val"), cfg.max_val_rows)
    overall = scorer.intrinsic(val_rows)
    uni = unigram_nll(unigram_counts(_split_files(tok, "train"), sp.get_piece_size()), val_rows)
    evals: dict[str, float] = {f"val_{k}": v for k, v in overall.items()}
    evals["unigram_bits_per_byte"] = bits_per_byte(uni, overall["bytes"])

    docs = held_out_docs(tok, inputs["mix"])
    domains = per_domain(scorer, docs, tok.info["seq_len"], cfg.per_domain_rows)
    encode = sp.encode
    # The tokenize stage made the built-in items from its held-out split (and kept them out of train).
    rows = [json.loads(line) for line in Path(tok.file("builtin_items")).read_text().splitlines() if line]
    made = items_from_rows(rows)
    builtin = [[i for i in made if i.task == "cloze"], [i for i in made if i.task == "last_word"]]
    benchmarks = load_benchmarks(cfg)
    tasks: dict[str, dict[str, float]] = {}
    for items in [builtin[0], *benchmarks]:
        if items:
            tasks[items[0].task] = score_items(model, encode, items)
    if builtin[1]:
        tasks["last_word"] = score_last_word(model, encode, builtin[1]) | {"chance": 1 / sp.get_piece_size()}
    all_items = [item for items in [*builtin, *benchmarks] for item in items]
    _write_jsonl(out / "eval_items.jsonl", items_as_rows(all_items))

    generations = generate_samples(model, sp, cfg.prompts, cfg.max_new_tokens, cfg.temperature, cfg.top_k,
                                   cfg.seed, tok.info["eos_id"])  # fmt: skip
    funnel, reasons = funnel_with_tokens(inputs, overall["bytes"] / max(overall["tokens"], 1))
    planted: dict[str, Any] = {}
    pii: dict[str, float] = {}
    if truth_files := inputs["acquire"].files("ground_truth"):
        truth = load_ground_truth(truth_files[0])
        removed_paths = [p for s in DOC_STAGES if s in inputs for p in inputs[s].files("removed")]
        planted = score_planted(truth, removals(removed_paths))
        pii = pii_leaks(truth, tok.files("tokens"), tok.file("tokenizer"))
        if "extract" in inputs and "filter" in inputs:
            pii |= pii_redaction_quality(truth, inputs["extract"].files("docs"), inputs["filter"].files("docs"))
    train_metrics = trained.manifest["metrics"]
    training_curves_png(train_metrics, out / "loss_curve.png")
    throughput = [m["value"] for m in train_metrics if m["name"] == "train_tokens_per_s"]
    training = {"final_loss": trained.info.get("final_loss"), "params": trained.info.get("params"),
                "device": trained.info.get("device"), "world_size": trained.info.get("world_size", 1),
                "tokens_per_s": sum(throughput) / len(throughput) if throughput else None}  # fmt: skip
    mixture = inputs["mix"].info.get("mixture", {})
    if mixture:
        mixture_png(mixture, out / "mixture.png")
    dedup_quality = inputs["dedup"].info.get("quality", {}) if "dedup" in inputs else {}
    report = render_report(funnel, reasons, planted, evals, domains, tasks, mixture, generations, pii, training,
                           dedup_quality)  # fmt: skip
    atomic_write_bytes(out / "report.md", report.encode())
    atomic_write_bytes(out / "report.html", render_html(report, "crawl2model run report").encode())
    atomic_write_json(out / "eval.json", {"evals": evals, "domains": domains, "tasks": tasks, "planted": planted,
                                          "pii": pii, "funnel": funnel, "training": training,
                                          "dedup_quality": dedup_quality})  # fmt: skip
    atomic_write_json(out / "generations.json", generations)

    outcome = StageOutcome(info={"evals": evals, "tasks": tasks, "planted": planted, "pii": pii})
    for name, value in {**evals, **pii}.items():
        outcome.metric(name, value)
    for domain, values in domains.items():
        outcome.metric(f"domain.{domain}.bits_per_byte", values["bits_per_byte"])
    for task, values in tasks.items():
        for key, value in values.items():
            outcome.metric(f"task.{task}.{key}", value)
    for case, s in planted.items():
        outcome.metric(f"planted.{case}.rate", s["rate"])
    return outcome


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    atomic_write_bytes(path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows).encode())
