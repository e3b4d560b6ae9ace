"""evaluate's config: validation rows, benchmarks, and the sample generations."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from storage.section import ExistingFile, Section
from tasks.benchmarks import BenchmarkConfig


class EvaluateConfig(Section):
    max_val_rows: int = Field(2048, ge=1)
    per_domain_rows: int = Field(256, ge=1, description="held-out rows per domain for per-domain bits per byte")
    benchmarks: list[BenchmarkConfig] = Field(default_factory=list)
    prompts: list[str] = Field(
        default_factory=lambda: ["The module", "This function returns", "To install the package"]
    )
    max_new_tokens: int = Field(40, ge=1, le=4096)
    temperature: float = Field(0.8, gt=0.0)
    top_k: int = Field(40, ge=1)
    reference_paths: list[ExistingFile] = Field(
        default_factory=list, description="your own evaluation text (txt, JSONL or Parquet with `text`), scored "
        "beside the yardstick; part of its fingerprint"
    )  # fmt: skip
    seed: int = Field(0, description="generations, few-shot draws and the bootstrap")
    # Filled by the pipeline config: how this run's config differs from the defaults, for the report.
    config_changes: dict[str, Any] = Field(default_factory=dict)
