"""tokenize's config: the tokenizer, sequence length, split and decontamination."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from storage.section import ExistingFile, Section
from tasks.benchmarks import BenchmarkConfig


class TokenizeConfig(Section):
    vocab_size: int = Field(4096, ge=300, le=256_000)
    vocab_fallback: Literal["shrink", "error"] = Field(
        "shrink", description="when the corpus cannot give vocab_size pieces (a small crawl): train the largest "
        "vocabulary it can, with a warning, or stop with an error",
    )  # fmt: skip
    seq_len: int = Field(128, ge=8, le=65_536)
    sample_docs: int = Field(5000, ge=10, description="documents the tokenizer is trained on")
    sample_alpha: float | None = Field(
        None, gt=0.0, le=1.0, description="a language-balanced tokenizer sample: each language's share of "
        "sample_docs proportional to its documents^alpha (0.3 lifts a small language, as mix.languages does); "
        "None: hash order, whatever the languages",
    )  # fmt: skip
    character_coverage: float = Field(
        0.9995, ge=0.98, le=1.0, description="the share of the sample's characters SentencePiece gives pieces of "
        "their own (the rest are spelled in bytes): 0.9995 keeps the thousands of characters of Chinese and "
        "Japanese, as SentencePiece advises; 1.0 for alphabets",
    )  # fmt: skip
    special_tokens: list[str] = Field(default_factory=list, description="extra user-defined symbols")
    model_path: ExistingFile | None = Field(
        None, description="an existing SentencePiece model to use instead of training"
    )
    val_fraction: float = Field(0.08, gt=0.0, lt=0.5)
    rows_per_shard: int = Field(4096, ge=16)
    workers: int = Field(0, ge=0, le=256, description="encoding threads; 0 = all cores")
    decontaminate: Literal["remove", "flag", "off"] = "remove"
    decontamination_ngram: int = Field(13, ge=5, le=50)
    # The built-in evaluation tasks are made here, from the held-out split this stage owns, so the
    # train split can be decontaminated against them; the evaluate stage scores them.
    builtin_eval_items: int = Field(200, ge=0, description="items in each built-in task (cloze, last word)")
    # Filled from evaluate.benchmarks by the pipeline config unless set here.
    eval_benchmarks: list[BenchmarkConfig] = Field(default_factory=list)
    seed: int = 0
