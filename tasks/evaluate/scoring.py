"""evaluate's model-side half: bits per byte (overall, per domain, on any document set) and task scores.

Kept apart from `stage.py` so that listing the stages (the registry) does not import torch.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import sentencepiece as spm
import torch

from model.benchmarks import score_items, score_last_word
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
from model.items import LOADERS, Item, items_from_rows, with_few_shot
from model.packing import pack
from model.trainer import load_model
from storage.shards import iter_rows
from tasks.evaluate.config import EvaluateConfig
from tasks.stage import StageInput


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


def load_benchmarks(cfg: EvaluateConfig) -> list[list[Item]]:
    """Every configured benchmark's items, few-shot prompts applied (also used for decontamination)."""
    out = []
    for b in cfg.benchmarks:
        items = LOADERS[b.format](b.path, task=b.name)[: b.limit]
        out.append(with_few_shot(items, b.shots, cfg.seed))
    return out


def intrinsic_scores(scorer: Scorer, tok: StageInput, cfg: EvaluateConfig) -> dict[str, float]:
    """Validation loss, perplexity and bits per byte, with the unigram baseline beside them (none when
    the held-out split is empty, as on a crawl of a few dozen pages)."""
    if not tok.metric_total("val_rows"):
        return {}
    val_rows = load_rows(_split_files(tok, "val"), cfg.max_val_rows)
    overall = scorer.intrinsic(val_rows)
    uni = unigram_nll(unigram_counts(_split_files(tok, "train"), scorer.sp.get_piece_size()), val_rows)
    evals: dict[str, float] = {f"val_{k}": v for k, v in overall.items()}
    evals["unigram_bits_per_byte"] = bits_per_byte(uni, overall["bytes"])
    return evals


def task_scores(model: GPT, sp: spm.SentencePieceProcessor, tok: StageInput, cfg: EvaluateConfig
                ) -> tuple[dict[str, dict[str, float]], list[Item]]:  # fmt: skip
    """Built-in tasks (made by tokenize from its held-out split) and the configured benchmarks."""
    rows = [json.loads(line) for line in Path(tok.file("builtin_items")).read_text().splitlines() if line]
    made = items_from_rows(rows)
    builtin = [[i for i in made if i.task == "cloze"], [i for i in made if i.task == "last_word"]]
    benchmarks = load_benchmarks(cfg)
    tasks: dict[str, dict[str, float]] = {}
    for items in [builtin[0], *benchmarks]:
        if items:
            tasks[items[0].task] = score_items(model, sp.encode, items)
    if builtin[1]:
        tasks["last_word"] = score_last_word(model, sp.encode, builtin[1]) | {"chance": 1 / sp.get_piece_size()}
    return tasks, [item for items in [*builtin, *benchmarks] for item in items]


def score_model(inputs: dict[str, StageInput], cfg: EvaluateConfig) -> dict[str, Any]:
    """Everything evaluate measures with the trained model: intrinsic metrics overall and per domain,
    task scores (and the items scored), and sample generations."""
    tok, trained = inputs["tokenize"], inputs["train"]
    sp = spm.SentencePieceProcessor(model_file=tok.file("tokenizer"))
    model = load_model(trained.file("model"))
    scorer = Scorer(model, sp)
    evals = intrinsic_scores(scorer, tok, cfg)
    domains = per_domain(scorer, held_out_docs(tok, inputs["mix"]), tok.info["seq_len"], cfg.per_domain_rows)
    tasks, items = task_scores(model, sp, tok, cfg)
    generations = generate_samples(model, sp, cfg.prompts, cfg.max_new_tokens, cfg.temperature, cfg.top_k,
                                   cfg.seed, tok.info["eos_id"])  # fmt: skip
    return {"evals": evals, "domains": domains, "tasks": tasks, "items": items, "generations": generations}
