"""evaluate's config: validation rows, benchmarks, and the sample generations."""

from __future__ import annotations

from pydantic import Field

from storage.section import Section
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
    seed: int = 0
