"""The one list of stages: name, declared inputs, config class, version, run function.

Every stage list in the code (the DAG, `PipelineConfig`'s sections, the CLI's stage names, the
funnel) derives from `STAGE_SPECS`. Adding a stage is one package under `tasks/` plus one line
here; a stage kept outside this repository is added without editing it, by naming its module in
`CRAWL2MODEL_STAGES` (comma-separated) or in the `crawl2model.stages` entry-point group: the module
exposes `SPEC: StageSpec` (`tasks.stage`) with `after` naming the stage it follows.

Bump a stage's version when its output changes for the same config: its fingerprint changes, so it
and every stage after it rerun.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
from collections.abc import Callable
from typing import Any

from tasks.acquire import stage as acquire
from tasks.acquire.config import AcquireConfig
from tasks.dedup import stage as dedup
from tasks.dedup.config import DedupConfig
from tasks.dpo import stage as dpo
from tasks.dpo.config import DpoConfig
from tasks.evaluate import stage as evaluate
from tasks.evaluate.config import EvaluateConfig
from tasks.extract import stage as extract
from tasks.extract.config import ExtractConfig
from tasks.filter import stage as filter_
from tasks.filter.config import FilterConfig
from tasks.mix import stage as mix
from tasks.mix.config import MixConfig
from tasks.sft import stage as sft
from tasks.sft.config import SftConfig
from tasks.stage import StageSpec, Streaming
from tasks.tokenize import stage as tokenize
from tasks.tokenize.config import TokenizeConfig
from tasks.train import stage as train
from tasks.train.config import TrainConfig
from tasks.yardstick import stage as yardstick
from tasks.yardstick.config import YardstickConfig


def url_rules_from_filter(cfg: Any) -> dict[str, Any]:
    """extract runs filter's URL rules before trafilatura, whether or not filter runs: every variant of
    a recipe experiment then shares one extraction (and so one yardstick); a blocklist edit re-extracts."""
    rules = cfg.filter.url_rules() if cfg.extract.skip_url_blocked else None
    return {"url_rules": None if rules is None or rules.is_empty() else rules}


def languages_from_extract(cfg: Any) -> dict[str, Any]:
    """The yardstick measures the run's languages (extract.languages) unless given its own list."""
    if cfg.yardstick.languages is not None:
        return {}
    return {"languages": cfg.extract.languages}


def benchmarks_from_evaluate(section: str) -> Callable[[Any], dict[str, Any]]:
    """The section's data (tokenize's token stream, sft's and dpo's examples) is decontaminated against
    the benchmarks evaluate will score, unless its eval_benchmarks is set by hand."""

    def derive(cfg: Any) -> dict[str, Any]:
        if "eval_benchmarks" in getattr(cfg, section).model_fields_set or not cfg.evaluate.benchmarks:
            return {}
        return {"eval_benchmarks": list(cfg.evaluate.benchmarks)}

    return derive


def changes_for_the_report(cfg: Any) -> dict[str, Any]:
    """The report states how this run differs from the defaults."""
    return {"config_changes": cfg.changes_from_defaults()}


BUILTIN_STAGES: tuple[StageSpec, ...] = (
    StageSpec("acquire", (), AcquireConfig, "4", acquire.run, identity=acquire.input_identity, network=True),
    StageSpec("extract", ("acquire",), ExtractConfig, "7", extract.run, derive=url_rules_from_filter,
              derived=("url_rules",), streaming=Streaming("acquire", lambda acquire_cfg: acquire_cfg.stream),
              explain_columns=("warc_path", "warc_offset", "lang", "lang_score", "lang_script", "n_words")),
    # Evaluation text pinned at the extract boundary: the same for every curation downstream.
    StageSpec("yardstick", ("extract",), YardstickConfig, "4", yardstick.run, derive=languages_from_extract),
    StageSpec("filter", ("extract",), FilterConfig, "7", filter_.run, preflight=filter_.preflight,
              explain_columns=("quality_score", "n_words")),
    StageSpec("dedup", ("filter",), DedupConfig, "8", dedup.run, explain_columns=("dup_cluster", "dup_cluster_size")),
    StageSpec("mix", ("dedup", "yardstick"), MixConfig, "4", mix.run, explain_columns=("domain", "repeats")),
    StageSpec("tokenize", ("mix", "yardstick"), TokenizeConfig, "11", tokenize.run,
              derive=benchmarks_from_evaluate("tokenize"), derived=("eval_benchmarks",)),
    StageSpec("train", ("tokenize",), TrainConfig, "3", train.run),
    # Post-training: a chat model from the base model (on in the sample, off in the crawl configs).
    StageSpec("sft", ("tokenize", "train"), SftConfig, "1", sft.run, derive=benchmarks_from_evaluate("sft"),
              derived=("eval_benchmarks",)),
    StageSpec("dpo", ("tokenize", "sft"), DpoConfig, "1", dpo.run, derive=benchmarks_from_evaluate("dpo"),
              derived=("eval_benchmarks",)),
    # evaluate reads every earlier output: the funnel and the planted-case scores span them all.
    StageSpec("evaluate", ("acquire", "extract", "yardstick", "filter", "dedup", "mix", "tokenize", "train", "sft",
                           "dpo"),
              EvaluateConfig, "12", evaluate.run, derive=changes_for_the_report, derived=("config_changes",),
              preflight=evaluate.preflight,
              report="report.md", table=evaluate.evaluation_table, scores=True),
)  # fmt: skip


def _plugin_modules() -> list[str]:
    names = [n.strip() for n in os.environ.get("CRAWL2MODEL_STAGES", "").split(",") if n.strip()]
    names += [ep.value for ep in importlib.metadata.entry_points(group="crawl2model.stages")]
    return names


def with_plugins(stages: tuple[StageSpec, ...], modules: list[str]) -> tuple[StageSpec, ...]:
    """Insert each plugin module's `SPEC` after the stage it names; inputs must come earlier."""
    out = list(stages)
    for module_name in modules:
        spec: StageSpec = importlib.import_module(module_name).SPEC
        names = [s.name for s in out]
        if spec.name in names or spec.after not in names:
            raise ValueError(f"stage plugin {module_name}: name {spec.name!r} taken or `after` {spec.after!r} unknown")
        position = names.index(spec.after) + 1
        if unknown := [i for i in spec.inputs if i not in names[:position]]:
            raise ValueError(f"stage plugin {module_name}: inputs {unknown} do not run before it")
        out.insert(position, spec)
    return tuple(out)


STAGE_SPECS: tuple[StageSpec, ...] = with_plugins(BUILTIN_STAGES, _plugin_modules())
STAGES: tuple[str, ...] = tuple(spec.name for spec in STAGE_SPECS)
SPEC_BY_NAME: dict[str, StageSpec] = {spec.name: spec for spec in STAGE_SPECS}
# The stage whose output holds the run's scores (`compare` pairs them) and its report.
SCORING_STAGE: str = next(spec.name for spec in STAGE_SPECS if spec.scores)
