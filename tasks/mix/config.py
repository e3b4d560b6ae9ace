"""mix's config: domain rules, an optional topic model, target weights and the token budget."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from storage.section import ExistingFile, Section


class AnnealMixConfig(Section):
    """The second mixture the last steps of training read (train.anneal.fraction): the documents of
    the main mixture that pass these, each `repeats` times, tokenized as the `anneal` split."""

    domains: list[str] | None = Field(None, description="only these domains; None = every domain")
    min_bucket: int | None = Field(None, ge=0, description="only quality_bucket >= this; None = any")
    repeats: int = Field(1, ge=1, le=16)


class MixConfig(Section):
    # domain -> host suffixes or URL substrings; first match wins, unmatched -> default_domain.
    domain_rules: dict[str, list[str]] = Field(
        default_factory=lambda: {
            "docs": ["docs.pylib.example"],
            "code": ["pyindex.example", "github-mirror.example"],
            "forum": ["forum.", "discuss."],
            "news": ["news.", "blog."],
        }
    )
    default_domain: str = "web"
    # Optional fastText topic model trained from user-labelled examples (JSONL {"text", "domain"}).
    topic_examples: ExistingFile | None = None
    topic_min_confidence: float = Field(0.6, ge=0.0, le=1.0)
    topic_relabel: Literal["unmatched", "all"] = Field("unmatched", description="which documents it may relabel")
    mode: Literal["natural", "weights", "temperature"] = "weights"
    # The sample's target mixture: more reference docs, less generic web than crawled.
    weights: dict[str, float] = Field(
        default_factory=lambda: {"docs": 0.4, "code": 0.15, "forum": 0.2, "news": 0.15, "web": 0.1}
    )
    temperature: float = Field(1.0, gt=0.0)
    token_budget: int | None = Field(None, ge=1, description="approximate tokens (chars/4); None = all")
    max_repeats: int = Field(4, ge=1, description="cap on copies of any one document")
    # Quality buckets (filter's quality_bucket, 0 = lowest) -> a multiplier on the document's copies:
    # {"0-4": 0, "15-19": 2} drops the bottom quarter and doubles the top (Nemotron-CC), each domain
    # keeping its token share. Unlisted buckets, and documents without a bucket, count 1.
    bucket_weights: dict[str, float] = Field(default_factory=dict)
    anneal: AnnealMixConfig | None = None
    seed: int = 0

    @model_validator(mode="after")
    def _weights_given(self) -> MixConfig:
        if self.mode == "weights" and not self.weights:
            raise ValueError("mode=weights needs mix.weights")
        if any(w < 0 for w in self.weights.values()):
            raise ValueError("mix.weights must be non-negative")
        if any(w < 0 for w in self.bucket_weights.values()):
            raise ValueError("mix.bucket_weights must be non-negative")
        bucket_ranges(self.bucket_weights)  # a malformed key fails here, at validation
        return self


def bucket_ranges(weights: dict[str, float]) -> list[tuple[int, int, float]]:
    """{"0-4": 0.0, "19": 2.0} -> [(0, 4, 0.0), (19, 19, 2.0)]."""
    ranges = []
    for key, weight in weights.items():
        lo, _, hi = key.partition("-")
        if not (lo.strip().isdigit() and (not hi or hi.strip().isdigit())):
            raise ValueError(f"mix.bucket_weights key {key!r}: a bucket (7) or a range (0-4)")
        ranges.append((int(lo), int(hi or lo), weight))
    return ranges
