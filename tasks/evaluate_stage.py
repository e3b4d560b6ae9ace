"""evaluate: validation loss, perplexity, bits per byte (vs a unigram model), generations, report."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path
from typing import Any

import sentencepiece as spm
import torch

from model.data import load_rows
from model.evaluation import (
    bits_per_byte,
    generate_samples,
    token_byte_lengths,
    unigram_counts,
    unigram_nll,
    validation_nll,
)
from model.trainer import load_model
from storage.shards import atomic_write_bytes, atomic_write_json, iter_rows
from tasks import STAGE_VERSIONS
from tasks.config import EvaluateConfig
from tasks.ground_truth import load_ground_truth, pii_leaks, removals, score_planted
from tasks.report import loss_curve_png, render_report
from tasks.stage import StageInput, StageOutcome

VERSION = STAGE_VERSIONS["evaluate"]
DOC_STAGES = ("extract", "filter", "dedup", "mix", "tokenize")


def _split_files(tok: StageInput, split: str) -> list[str]:
    return [p for p in tok.files("tokens") if Path(p).name.startswith(f"{split}-")]


def data_funnel(inputs: dict[str, StageInput]) -> tuple[list[dict[str, Any]], dict[str, list[tuple[str, int]]]]:
    funnel, reasons = [], {}
    for stage in DOC_STAGES:
        if stage not in inputs:
            continue
        counts = inputs[stage].manifest["counts"]
        funnel.append({"stage": stage, **counts})
        removed = inputs[stage].files("removed")
        if removed:
            reasons[stage] = Counter(r["rule"] for r in iter_rows(removed, ["rule"])).most_common()
    return funnel, reasons


def run(inputs: dict[str, StageInput], cfg: EvaluateConfig, out: Path) -> StageOutcome:
    tok, trained = inputs["tokenize"], inputs["train"]
    tokenizer = tok.file("tokenizer")
    sp = spm.SentencePieceProcessor(model_file=tokenizer)
    model = load_model(trained.file("model"))
    val_rows = load_rows(_split_files(tok, "val"), cfg.max_val_rows)
    byte_len = torch.from_numpy(token_byte_lengths(sp))
    n_bytes = int(byte_len[val_rows[:, 1:].reshape(-1)].sum())
    nll, n_tokens, _ = validation_nll(model, val_rows)
    uni = unigram_nll(unigram_counts(_split_files(tok, "train"), sp.get_piece_size()), val_rows)
    evals = {
        "val_loss": nll / n_tokens,
        "val_perplexity": math.exp(nll / n_tokens),
        "val_bits_per_byte": bits_per_byte(nll, n_bytes),
        "unigram_bits_per_byte": bits_per_byte(uni, n_bytes),
        "val_tokens": n_tokens,
        "val_bytes": n_bytes,
    }
    generations = generate_samples(
        model, sp, cfg.prompts, cfg.max_new_tokens, cfg.temperature, cfg.top_k, cfg.seed, tok.info["eos_id"]
    )
    funnel, reasons = data_funnel(inputs)
    planted: dict[str, Any] = {}
    pii: dict[str, int] = {}
    acquire = inputs["acquire"]
    if truth_files := acquire.files("ground_truth"):
        truth = load_ground_truth(truth_files[0])
        removed_paths = [p for s in DOC_STAGES if s in inputs for p in inputs[s].files("removed")]
        planted = score_planted(truth, removals(removed_paths))
        pii = pii_leaks(truth, tok.files("tokens"), tokenizer)
    history = [(m["step"], m["value"]) for m in trained.manifest["metrics"] if m["name"] == "train_loss"]
    loss_curve_png(history, out / "loss_curve.png")
    mixture = inputs["mix"].info.get("mixture", {})
    report = render_report(funnel, reasons, planted, evals, mixture, generations, pii)
    atomic_write_bytes(out / "report.md", report.encode())
    atomic_write_json(out / "eval.json", {"evals": evals, "planted": planted, "pii": pii, "funnel": funnel})
    atomic_write_json(out / "generations.json", generations)
    outcome = StageOutcome(info={"evals": evals, "planted": planted, "pii": pii})
    for name, value in {**evals, **pii}.items():
        outcome.metric(name, value)
    for case, s in planted.items():
        outcome.metric(f"planted.{case}.rate", s["rate"])
    return outcome
