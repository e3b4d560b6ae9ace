"""evaluate's config: validation rows, benchmarks, and the sample generations."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from storage.section import ExistingFile, Section
from tasks.benchmarks import BenchmarkConfig
from tasks.llm_endpoint import EndpointSettings
from tasks.suites import MULTILINGUAL_LANGUAGES, read_core_baselines, suite_files


class JudgeConfig(EndpointSettings):
    """An LLM judge comparing each chat model's answers with the base model's (`tasks.evaluate.win_rate`)."""


class EvaluateConfig(Section):
    max_val_rows: int = Field(2048, ge=1)
    per_domain_rows: int = Field(256, ge=1, description="held-out rows per domain for per-domain bits per byte")
    benchmarks: list[BenchmarkConfig] = Field(default_factory=list)
    suite: Literal["core", "multilingual"] | None = Field(
        None, description="a shipped task list added to `benchmarks`: DCLM's CORE, or the harness's multilingual "
        "tasks per language (XCOPA, XStoryCloze, XWinograd, XNLI, PAWS-X, Belebele, MMMLU; set skip_missing for "
        "the files you lack)",
    )  # fmt: skip
    suite_dir: str | None = Field(None, description="where the suite's files are (searched recursively)")
    skip_missing: bool = Field(False, description="a suite's files not found under suite_dir are left out with a "
                               "warning (else: one error naming them all)")  # fmt: skip
    core_baselines: Literal["v1", "measured", "chance"] = Field(
        "v1", description="what CORE's centered accuracy subtracts per task: v1, DCLM's published table "
        "(tasks outside it: chance); measured, each task's own better of chance and the majority answer; "
        "chance, 1/choices (0 for language modelling). The version is stated beside the number",
    )  # fmt: skip
    core_baselines_file: ExistingFile | None = Field(
        None, description="a baselines table in the layout of DCLM's eval/eval_meta_data.csv (`Eval Task`, "
        "`Random baseline` in %): the corrected 2025 one (CORE v2) or any later one, from your copy; used instead of "
        "core_baselines, its name and digest stated beside the number (tasks outside it: chance)",
    )  # fmt: skip
    contamination_ngram: int = Field(13, ge=5, le=50, description="words an n-gram has when each benchmark's overlap "
                                     "with the training documents is measured (reported, never a refusal)")  # fmt: skip
    prompts: list[str] = Field(
        default_factory=lambda: ["The module", "This function returns", "To install the package"]
    )
    max_new_tokens: int = Field(40, ge=1, le=4096)
    temperature: float = Field(0.8, ge=0.0, description="0 = greedy decoding")
    top_k: int = Field(40, ge=1)
    chat_prompts: int = Field(100, ge=1, le=10_000, description="held-out instruction prompts each chat model "
                              "answers (when sft ran): instruction following and win rates")  # fmt: skip
    judge: JudgeConfig | None = Field(
        None, description="an OpenAI-compatible judge for the chat models' win rate against the base model "
        "(length-controlled as AlpacaEval 2); answers cached in the workdir; None: no win rate",
    )  # fmt: skip
    chat_max_new_tokens: int = Field(48, ge=1, le=4096, description="reply length limit in the chat evaluation")
    reference_paths: list[ExistingFile] = Field(
        default_factory=list, description="your own evaluation text (txt, JSONL or Parquet with `text`), scored "
        "beside the yardstick; part of its fingerprint"
    )  # fmt: skip
    seed: int = Field(0, description="generations, few-shot draws and the bootstrap")
    # Filled by the pipeline config: how this run's config differs from the defaults, for the report.
    config_changes: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _baselines_readable(self) -> EvaluateConfig:
        if self.core_baselines_file is not None:
            read_core_baselines(self.core_baselines_file)
        return self

    @model_validator(mode="after")
    def _expand_suite(self) -> EvaluateConfig:
        # The suite's tasks join `benchmarks` once (a dumped and reloaded config already holds them).
        if self.suite is not None:
            present = {b.name for b in self.benchmarks}
            files = suite_files(self.suite, self.suite_dir or ".", self.skip_missing)
            added = [BenchmarkConfig(name=task, path=path, shots=shots, language=MULTILINGUAL_LANGUAGES.get(task),
                                     format="xcopa" if task.startswith("xcopa_") else "auto")
                     for task, shots, path in files if task not in present]  # fmt: skip
            if added:
                object.__setattr__(self, "benchmarks", [*self.benchmarks, *added])
        return self
