"""evaluate: intrinsic metrics (overall and per domain), benchmarks, built-in tasks, generations, report."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from model.items import items_as_rows
from storage.shards import atomic_write_bytes, atomic_write_json, iter_rows, write_parquet
from tasks.evaluate.about import kept_examples, planted_split, removal_examples, run_facts, tokens_seen
from tasks.evaluate.chat import chat_scores
from tasks.evaluate.config import EvaluateConfig
from tasks.evaluate.languages import language_funnel
from tasks.evaluate.report import mixture_png, render_html, render_report, training_curves_png
from tasks.sample.ground_truth import load_ground_truth, pii_leaks, pii_redaction_quality, removals, score_planted
from tasks.stage import StageInput, StageOutcome


def evaluation_table(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    """Every numeric evaluation metric of the output, as rows of the Prefect UI's table artifact."""
    info = manifest["info"]
    numeric = lambda v: isinstance(v, int | float) and not isinstance(v, bool)  # noqa: E731
    rows = [{"metric": k, "value": round(v, 6)} for k, v in info["evals"].items() if numeric(v)]
    rows += [{"metric": f"{task}.{k}", "value": round(v, 6)} for task, vals in info["tasks"].items()
             for k, v in vals.items() if numeric(v)]  # fmt: skip
    return rows


def funnel_with_tokens(inputs: dict[str, StageInput], bytes_per_token: float) -> tuple[list[dict], dict]:
    """Documents and (estimated) tokens in and out of each stage, and its top removal reasons."""
    funnel, reasons = [], {}
    for stage in doc_stages(inputs):
        if stage not in inputs:
            continue
        row = {"stage": stage, **inputs[stage].manifest["counts"]}
        docs = inputs[stage].files("docs")
        if docs:
            # Bytes, not characters: the held-out split's bytes per token holds for every script.
            utf8 = sum(pc.sum(pc.binary_length(pq.read_table(p, columns=["text"])[0])).as_py() or 0 for p in docs)
            row["est_tokens_out"] = int(utf8 / bytes_per_token)
        if stage == "tokenize":
            row["est_tokens_out"] = int(inputs[stage].metric_total("train_tokens", "val_tokens"))
        funnel.append(row)
        if removed := inputs[stage].files("removed"):
            reasons[stage] = Counter(r["rule"] for r in iter_rows(removed, ["rule"])).most_common()
    return funnel, reasons


def preflight(cfg: EvaluateConfig) -> None:
    """A configured win-rate judge is reachable and takes the key, before the first stage."""
    if cfg.judge is not None:
        from tasks.evaluate.win_rate import SETTING
        from tasks.llm_endpoint import preflight as endpoint_preflight

        endpoint_preflight(cfg.judge, SETTING)


def run(inputs: dict[str, StageInput], cfg: EvaluateConfig, out: Path) -> StageOutcome:
    # The model side imports torch; only a run of this stage needs it, not listing the stages.
    from tasks.evaluate import scoring

    if inputs["train"].info.get("skipped"):  # no training tokens upstream: the data side alone
        scored: dict[str, Any] = {"evals": {}, "domains": {}, "tasks": {}, "items": [], "generations": [],
                                  "yardstick": {}, "yardstick_rows": [], "item_rows": []}  # fmt: skip
    else:
        scored = scoring.score_model(inputs, cfg)
    scored["chat"] = chat_scores(inputs, cfg, out) if not inputs["train"].info.get("skipped") else {}
    scored["item_rows"] += scored["chat"].pop("item_rows", [])
    _write_jsonl(out / "eval_items.jsonl", items_as_rows(scored["items"]))
    yardstick_table = pa.Table.from_pylist(scored["yardstick_rows"], schema=YARDSTICK_ROWS)
    write_parquet(yardstick_table, out / "yardstick_scores.parquet")
    write_parquet(pa.Table.from_pylist([_item_row(r) for r in scored["item_rows"]], schema=ITEM_ROWS),
                  out / "item_scores.parquet")  # fmt: skip
    results = {k: scored[k] for k in ("evals", "domains", "tasks", "yardstick", "generations", "chat")}
    results |= _data_scores(inputs, scored["evals"]) | {"about": {**run_facts(), "config_changes": cfg.config_changes}}
    report = render_report(results)
    atomic_write_bytes(out / "report.md", report.encode())
    _write_figures(inputs, out)
    atomic_write_bytes(out / "report.html", render_html(report, "crawl2model run report", out).encode())
    keys = ("evals", "domains", "tasks", "yardstick", "planted", "pii", "funnel", "training", "dedup_quality",
            "languages", "chat")  # fmt: skip
    atomic_write_json(out / "eval.json", {k: results[k] for k in keys})
    atomic_write_json(out / "generations.json", scored["generations"])
    return _outcome(results)


YARDSTICK_ROWS = pa.schema([("doc_id", pa.string()), ("domain", pa.string()), ("tokens", pa.int64()),
                            ("nll_bits", pa.float64()), ("n_bytes", pa.int64()), ("lang", pa.string())])  # fmt: skip
ITEM_METRICS = ("acc", "acc_norm", "acc_token", "acc_pmi", "p_correct", "logprob_norm")  # null where not scored
ITEM_ROWS = pa.schema([("task", pa.string()), ("item_id", pa.string()),
                       *[(k, pa.float64()) for k in ITEM_METRICS]])  # fmt: skip


def _item_row(r: dict[str, Any]) -> dict[str, Any]:
    return {"task": r["task"], "item_id": r["item_id"], **{k: r.get(k) for k in ITEM_METRICS}}


def doc_stages(inputs: dict[str, StageInput]) -> list[str]:
    """The upstream stages that count documents, in DAG order (the registry's order of inputs)."""
    return [s for s, i in inputs.items() if i.manifest["counts"]["docs_in"] is not None]


def _data_scores(inputs: dict[str, StageInput], evals: dict[str, float]) -> dict[str, Any]:
    """What the data stages did: the funnel, planted cases, PII, the training run, the mixture."""
    # Bytes per token of the held-out split; without a model, the 4 bytes a token usual for BPE.
    bytes_per_token = evals["val_bytes"] / max(evals["val_tokens"], 1) if evals else 4.0
    funnel, reasons = funnel_with_tokens(inputs, bytes_per_token)
    planted: dict[str, Any] = {}
    pii: dict[str, float] = {}
    truth: list[dict[str, Any]] = []
    removed_paths = [p for s in doc_stages(inputs) for p in inputs[s].files("removed")]
    if truth_files := inputs["acquire"].files("ground_truth"):
        truth = load_ground_truth(truth_files[0])
        planted = score_planted(truth, removals(removed_paths))
        tok = inputs["tokenize"]
        pii = pii_leaks(truth, tok.files("tokens"), tok.file("tokenizer")) if tok.files("tokenizer") else {}
        if "extract" in inputs and "filter" in inputs:
            pii |= pii_redaction_quality(truth, inputs["extract"].files("docs"), inputs["filter"].files("docs"))
    trained = inputs["train"]
    throughput = [m["value"] for m in trained.manifest["metrics"] if m["name"] == "train_tokens_per_s"]
    training = {"final_loss": trained.info.get("final_loss"), "params": trained.info.get("params"),
                "device": trained.info.get("device"), "world_size": trained.info.get("world_size", 1),
                "tokens_per_s": sum(throughput) / len(throughput) if throughput else None}  # fmt: skip
    if "skipped" in trained.info:
        training["skipped"] = trained.info["skipped"]
    dedup_quality = inputs["dedup"].info.get("quality", {}) if "dedup" in inputs else {}
    stages = doc_stages(inputs)
    filtered = inputs["filter"].info if "filter" in inputs else {}
    measured = {m["name"]: m["value"] for s in ("extract", "filter") if s in inputs
                for m in inputs[s].manifest["metrics"] if m.get("step") is None}  # fmt: skip
    return {"planted": planted, "pii": pii, "funnel": funnel, "reasons": reasons, "training": training,
            "dedup_quality": dedup_quality, "mixture": inputs["mix"].info.get("mixture", {}),
            "language_mixture": inputs["mix"].info.get("languages", {}),
            "fertility": inputs["tokenize"].info.get("fertility", {}),
            "tokens_seen": tokens_seen(inputs), "curves": trained.manifest["metrics"],
            "removed_examples": removal_examples(inputs, stages, reasons),
            "kept_examples": kept_examples(inputs["mix"]),
            "planted_split": planted_split(truth, removals(removed_paths)) if truth_files else {},
            "quality_measures": {k: measured[k] for k in QUALITY_MEASURES if k in measured},
            "judge_confusion": filtered.get("quality_judge_confusion"),
            "judge_curve": filtered.get("quality_judge_curve"),
            "languages": language_funnel(inputs, stages)}  # fmt: skip


QUALITY_MEASURES = ("extract_word_precision", "extract_word_recall", "quality_heldout_accuracy",
                    "quality_heldout_lines", "quality_judge_f1", "quality_judge_f1_lo", "quality_judge_f1_hi",
                    "quality_judge_precision", "quality_judge_recall",
                    "quality_judge_heldout", "annotate_scored", "annotate_malformed", "annotate_failed",
                    "annotate_cache_hits", "annotate_calls")  # fmt: skip


def _write_figures(inputs: dict[str, StageInput], out: Path) -> None:
    training_curves_png(inputs["train"].manifest["metrics"], out / "loss_curve.png")
    if mixture := inputs["mix"].info.get("mixture", {}):
        mixture_png(mixture, out / "mixture.png")


def _outcome(results: dict[str, Any]) -> StageOutcome:
    evals, pii, planted, yardstick = results["evals"], results["pii"], results["planted"], results["yardstick"]
    info = {"evals": evals, "tasks": results["tasks"], "planted": planted, "pii": pii,
            "yardstick": {k: v for k, v in yardstick.items() if k != "domains"}}  # fmt: skip
    outcome = StageOutcome(info=info)
    for name, value in {**evals, **pii}.items():
        if _number(value):
            outcome.metric(name, value)
    if yardstick.get("bits_per_byte"):
        outcome.metric("yardstick_bits_per_byte", yardstick["bits_per_byte"]["value"])
    for domain, values in yardstick.get("domains", {}).items():
        outcome.metric(f"yardstick.{domain}.bits_per_byte", values["value"])
    for lang, values in yardstick.get("languages", {}).items():
        outcome.metric(f"yardstick.language.{lang}.bits_per_byte", values["value"])
    for domain, values in results["domains"].items():
        outcome.metric(f"domain.{domain}.bits_per_byte", values["bits_per_byte"])
    for task, values in results["tasks"].items():
        for key, value in values.items():
            if _number(value):
                outcome.metric(f"task.{task}.{key}", value)
    for case, s in planted.items():
        outcome.metric(f"planted.{case}.rate", s["rate"])
    for name, m in results["chat"].get("models", {}).items():
        outcome.metric(f"chat.{name}.prompt_level", m["following"]["prompt_level"]["value"])
        outcome.metric(f"chat.{name}.constraint_level", m["following"]["constraint_level"]["value"])
        if m.get("heldout_loss"):
            outcome.metric(f"chat.{name}.heldout_sft_loss", m["heldout_loss"]["value"])
    return outcome


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    atomic_write_bytes(path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows).encode())
