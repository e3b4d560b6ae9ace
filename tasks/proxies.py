"""What an experiment's variants are made of, and what is read back from their outputs, stage by
stage: the stage-aware half of `flows/experiments.py` (which orchestrates and names no stage).

A mixture search trains proxies that differ only in mix's weights, on one tokenizer trained on the
natural mixture; recipes differ in their curation settings and their training seed; every variant's
metrics come from its train, evaluate and tokenize outputs.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import ValidationError

from storage.errors import NotFound, UserError
from storage.shards import iter_rows, write_parquet
from tasks.comparison import LANGUAGE_PREFIX, Scores
from tasks.config import PipelineConfig
from tasks.experiments import recipe_overrides
from tasks.plan import plan
from tasks.post_training import POST_TRAINING
from tasks.registry import SCORING_STAGE, STAGES
from tasks.stage import StageInput, load_manifest

TARGET_METRIC = "target_bits_per_byte"
# The mean of the languages' yardstick bits per byte: a search over languages that serves them all.
LANGUAGES_MEAN = "yardstick.languages_mean.bits_per_byte"
# A proxy reruns mix and every stage after it up to the scoring stage (post-training, switched off).
FROM_MIX = list(STAGES[STAGES.index("mix") : STAGES.index(SCORING_STAGE)])


def output_dir(cfg: PipelineConfig, root: Path, stage: str) -> Path:
    return next(p.output_dir for p in plan(cfg, root) if p.stage == stage)


def stage_output(cfg: PipelineConfig, root: Path, stage: str) -> StageInput:
    manifest = load_manifest(output_dir(cfg, root, stage))
    if manifest is None:
        raise NotFound(f"{stage} has no output for this config in {root}")
    return StageInput.from_manifest(manifest)


def share_cores(cfg: PipelineConfig, parallel: int) -> PipelineConfig:
    """Proxies trained `parallel` at a time split the cores, unless `train.threads` is set: each
    taking all of them oversubscribed the CPU (2 tiny proxies on 2 cores trained at ~1.2k tokens/s
    each; with one thread each, 40-55k)."""
    if parallel <= 1 or cfg.train.threads:
        return cfg
    threads = max(1, (os.cpu_count() or 1) // parallel)
    return cfg.model_copy(update={"train": cfg.train.model_copy(update={"threads": threads})})


def run_metrics(cfg: PipelineConfig, root: Path, target_docs: str | None, max_rows: int) -> dict[str, float]:
    """evaluate's scalar metrics (when it ran), the training facts, and bits per byte on the target set."""
    trained = stage_output(cfg, root, "train")
    metrics: dict[str, float] = {"params": trained.info["params"], "final_train_loss": trained.info["final_loss"]}
    metrics["train_tokens"] = trained.info["tokens_per_step"] * cfg.train.max_steps
    metrics["compute_flops"] = 6.0 * metrics["params"] * metrics["train_tokens"]
    evaluated = load_manifest(output_dir(cfg, root, SCORING_STAGE))
    if evaluated is not None:
        metrics.update({m["name"]: m["value"] for m in evaluated["metrics"] if m.get("step") is None})
        if per_language := [v for k, v in metrics.items() if k.startswith(LANGUAGE_PREFIX)]:
            metrics[LANGUAGES_MEAN] = sum(per_language) / len(per_language)
    if target_docs:
        from tasks.evaluate.scoring import documents_bits_per_byte

        docs = pq.read_table(target_docs).to_pylist()
        tok = stage_output(cfg, root, "tokenize")
        metrics[TARGET_METRIC] = documents_bits_per_byte(tok, trained, docs, max_rows)
    return metrics


# --- mixture search ---------------------------------------------------------------------------


def natural_mixture(cfg: PipelineConfig) -> PipelineConfig:
    return cfg.model_copy(update={"mix": cfg.mix.model_copy(update={"mode": "natural"})})


def up_to_the_tokenizer() -> list[str]:
    """The stages a mixture search runs once, on the natural mixture, before its proxies."""
    return list(STAGES[: STAGES.index("tokenize") + 1])


def shared_tokenizer(cfg: PipelineConfig, natural: PipelineConfig, root: Path) -> str:
    """One tokenizer for every proxy (RegMix's setup): trained on the natural mixture, so proxies
    differ in their data alone. A tokenizer per proxy would fit each mixture and add its own noise."""
    return cfg.tokenize.model_path or str(output_dir(natural, root, "tokenize") / "tokenizer.model")


def natural_shares(natural: PipelineConfig, root: Path, over: str = "domains") -> dict[str, float]:
    """Each domain's (or language's) token share before mixing, as mix measured it."""
    info = stage_output(natural, root, "mix").info
    return {k: v["share_before"] for k, v in info["mixture" if over == "domains" else "languages"].items()}


def target_documents(cfg: PipelineConfig, root: Path, domain: str, path: Path) -> int:
    """Held-out documents of the target domain: labelled by the natural-mixture mix stage, and in
    tokenize's validation split, which depends on the document alone (so no proxy trains on them)."""
    from tasks.tokenize.stage import in_val_split

    mixed = stage_output(cfg, root, "mix")
    if domain not in (domains := mixed.info["mixture"]):
        raise UserError(f"target domain {domain!r} has no documents; domains: {sorted(domains)}")
    rows = [{"doc_id": d["doc_id"], "text": d["text"]}
            for d in iter_rows(mixed.files("docs"), ["doc_id", "text", "domain"])
            if d["domain"] == domain and in_val_split(d["doc_id"], cfg.tokenize)]  # fmt: skip
    if not rows:
        raise UserError(f"no held-out {domain!r} documents to measure on")
    write_parquet(pa.Table.from_pylist(rows, schema=pa.schema([("doc_id", pa.string()), ("text", pa.string())])), path)
    return len(rows)


def proxy_configs(cfg: PipelineConfig, tokenizer: str, mixtures: list[dict[str, float]],
                  over: str = "domains") -> list[dict[str, Any]]:  # fmt: skip
    """One config per sampled mixture: mix's weights (or its languages' shares) set, the shared tokenizer
    fixed, post-training off (a mixture search measures the base model)."""
    tok_cfg = cfg.tokenize.model_copy(update={"model_path": tokenizer})
    off = {name: getattr(cfg, name).model_copy(update={"enabled": False}) for name in POST_TRAINING}
    mixes = [cfg.mix.model_copy(update={"mode": "weights", "weights": m}) if over == "domains" else
             cfg.mix.model_copy(update={"languages": cfg.mix.languages.model_copy(update={"shares": m})})
             for m in mixtures]  # fmt: skip
    return [cfg.model_copy(update={"tokenize": tok_cfg, "mix": mix, **off}).model_dump(mode="json") for mix in mixes]


def proxy_stages(evaluated: bool) -> list[str]:
    """A proxy reruns mix onward; evaluate only when the searched metric is one of its own."""
    return FROM_MIX + ([SCORING_STAGE] if evaluated else [])


def mixture_setting(mixture: dict[str, float], over: str = "domains") -> dict[str, Any]:
    return {"mix.weights" if over == "domains" else "mix.languages.shares": mixture}


def check_search(cfg: PipelineConfig, over: str) -> None:
    """What a search over languages needs from the config, before any work."""
    if over == "languages" and cfg.mix.languages is None:
        raise UserError("a mixture search over languages needs mix.languages set (each language's budget: "
                        "configs/sample-multilingual.yaml has one)")  # fmt: skip


# --- curation recipes -------------------------------------------------------------------------


def scores_of(configs: list[dict[str, Any]], root: Path) -> list[Scores]:
    """The per-document and per-item scores of each config's run (one per seed)."""
    return [Scores.load(output_dir(PipelineConfig.model_validate(c), root, SCORING_STAGE)) for c in configs]


def recipe_setting(name: str, config: dict[str, Any]) -> dict[str, Any]:
    return {"recipe": name, "train.seed": PipelineConfig.model_validate(config).train.seed}


def recipe_configs(load: Callable[[list[str]], PipelineConfig], names: list[str], seeds: int
                   ) -> dict[str, list[dict[str, Any]]]:  # fmt: skip
    """Each recipe's config once per seed: `load(extra --set items)` is the user's config with them;
    seeds count up from the configured `train.seed` (initialisation and data order; same data)."""
    base_seed = load([]).train.seed
    return {name: [load(recipe_overrides(name, base_seed + i)).model_dump(mode="json") for i in range(seeds)]
            for name in names}  # fmt: skip


def scaling_configs(cfg: PipelineConfig, shapes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The config once per model shape of a scaling ladder (the data stages unchanged: cache hits)."""
    configs = []
    for shape in shapes:
        try:
            train = type(cfg.train).model_validate({**cfg.train.model_dump(mode="json"), **shape})
        except ValidationError as e:
            raise UserError(f"train shape {shape}: {e.errors()[0]['msg']}") from None
        configs.append(cfg.model_copy(update={"train": train}).model_dump(mode="json"))
    return configs


def training_documents(summary: list[dict[str, Any]]) -> int | None:
    """The documents that reached the token shards in a run's summary."""
    return next((s.get("docs_out") for s in summary if s["stage"] == "tokenize"), None)
