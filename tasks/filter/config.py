"""filter's config: the URL rules, the classifier, PII, and one section per rule set (defined with its rules)."""

from __future__ import annotations

from pydantic import Field

from storage.section import ExistingFile, Section
from tasks.filter.rules.c4 import C4Config
from tasks.filter.rules.fineweb import FineWebConfig
from tasks.filter.rules.gopher import GopherQualityConfig, GopherRepetitionConfig

# Each rule set's section lives beside its rules (tasks/filter/rules/<set>.py); FilterConfig holds them.
__all__ = ["C4Config", "FilterConfig", "FineWebConfig", "GopherQualityConfig", "GopherRepetitionConfig",
           "QualityClassifierConfig"]  # fmt: skip


class QualityClassifierConfig(Section):
    enabled: bool = True
    min_score: float = Field(0.01, ge=0.0, le=1.0, description="P(reference-like) below this is removed")
    reference_paths: list[str] = Field(
        default_factory=list, description="text files of reference-quality prose; empty = built-in"
    )
    negatives: int = Field(2000, ge=10, description="random input documents used as the 'web' class")
    heldout_fraction: float = Field(0.1, ge=0.0, lt=0.5, description="labelled lines kept out to measure accuracy")
    keep_top_fraction: float | None = Field(
        None, gt=0.0, le=1.0, description="keep the best-scoring fraction instead of min_score (e.g. 0.1 as DCLM)"
    )
    model_path: ExistingFile | None = Field(
        None, description="an existing fastText model to use instead of training one"
    )
    positive_label: str = Field("__label__hq", description="the model's label for good documents")
    epochs: int = Field(10, ge=1)
    lr: float = Field(0.5, gt=0.0, le=5.0, description="fastText learning rate; halved on divergence")
    lr_retries: int = Field(4, ge=0, le=10, description="how many times a diverged training is retried")
    seed: int = 0


class FilterConfig(Section):
    enabled: bool = Field(True, description="off: no rule runs, no classifier is trained (recipe ablations)")
    blocklist_domains: list[str] = Field(
        default_factory=lambda: ["casino-bonus.example", "adult-videos.example", "free-pills.example"]
    )
    blocklist_file: ExistingFile | None = Field(None, description="UT1-style file: one domain per line")
    banned_url_words: list[str] = Field(default_factory=lambda: ["porn", "xxx", "casino"])
    gopher_quality: GopherQualityConfig = Field(default_factory=GopherQualityConfig)
    gopher_repetition: GopherRepetitionConfig = Field(default_factory=GopherRepetitionConfig)
    c4: C4Config = Field(default_factory=C4Config)
    fineweb: FineWebConfig = Field(default_factory=FineWebConfig)
    quality: QualityClassifierConfig = Field(default_factory=QualityClassifierConfig)
    redact_pii: bool = True
    workers: int = Field(2, ge=1, le=256)
