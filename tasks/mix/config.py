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


class LanguageMixConfig(Section):
    """How the mixture's tokens are shared between languages (each language's domains and quality
    buckets then share its tokens as mix.weights say)."""

    alpha: float = Field(0.3, gt=0.0, le=1.0, description="temperature sampling: each language's share "
                         "proportional to its tokens^alpha (mT5/XLM-R's 0.3; 1 = natural shares)")  # fmt: skip
    shares: dict[str, float] = Field(default_factory=dict, description="target shares by language code instead "
                                     "(normalised; a language not listed gets none)")  # fmt: skip
    max_epochs: float = Field(4.0, ge=1.0, le=64.0, description="cap on a language's up-sampling, in passes over "
                              "its own tokens (about 4 are worth nearly as much as fresh data)")  # fmt: skip

    @model_validator(mode="after")
    def _non_negative(self) -> LanguageMixConfig:
        if any(w < 0 for w in self.shares.values()) or (self.shares and not sum(self.shares.values())):
            raise ValueError("mix.languages.shares must be non-negative and not all zero")
        return self


# Rehydration (FineWeb-2): dedup keeps one document of each duplicate cluster and records the
# cluster's size; up-sampling the kept document by that size gives back part of what dedup took.
# Content copied a few times is often worth more than unique content, while clusters of thousands
# are templates and spam: this default follows that shape (FineWeb-2's own numbers differ per
# language and come from each language's filtering rate per cluster size; give them here if you have
# them).
REHYDRATE_DEFAULT = {"1": 1.0, "2": 2.0, "3-4": 3.0, "5-100": 5.0, "101-1000": 8.0, "1001+": 1.0}


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
    rehydrate: Literal["off", "default"] | dict[str, float] = Field(
        "off", description="up-sample each kept document by its duplicate cluster's size (dedup's dup_cluster_size), "
        "FineWeb-2's rehydration: `default` (1: 1, 2: 2, 3-4: 3, 5-100: 5, 101-1000: 8, 1001+: 1) or your own "
        "{size range: weight}; each domain keeps its token share, max_repeats still caps a document",
    )  # fmt: skip
    languages: LanguageMixConfig | None = Field(
        None,
        description="language budgets: temperature sampling over languages (alpha 0.3) or target shares, "
        "capped at max_epochs; None: languages take what their domains give them",
    )
    anneal: AnnealMixConfig | None = None
    seed: int = 0

    @model_validator(mode="after")
    def _weights_given(self) -> MixConfig:
        if self.mode == "weights" and not self.weights:
            raise ValueError("mode=weights needs mix.weights")
        if any(w < 0 for w in self.weights.values()):
            raise ValueError("mix.weights must be non-negative")
        for name, weights in (("bucket_weights", self.bucket_weights), ("rehydrate", self.rehydrate_weights)):
            if any(w < 0 for w in weights.values()):
                raise ValueError(f"mix.{name} must be non-negative")
            bucket_ranges(weights, name)  # a malformed key fails here, at validation
        return self

    @property
    def rehydrate_weights(self) -> dict[str, float]:
        if self.rehydrate == "off":
            return {}
        return REHYDRATE_DEFAULT if self.rehydrate == "default" else self.rehydrate

    @property
    def weighs_documents(self) -> bool:
        return bool(self.bucket_weights or self.rehydrate_weights)


def bucket_ranges(weights: dict[str, float], name: str = "bucket_weights") -> list[tuple[int, int, float]]:
    """{"0-4": 0.0, "19": 2.0, "20+": 1.0} -> [(0, 4, 0.0), (19, 19, 2.0), (20, inf, 1.0)]."""
    ranges = []
    for key, weight in weights.items():
        key = str(key).strip()
        if key.endswith("+") and key[:-1].isdigit():
            ranges.append((int(key[:-1]), 1 << 62, weight))
            continue
        lo, _, hi = key.partition("-")
        if not (lo.strip().isdigit() and (not hi or hi.strip().isdigit())):
            raise ValueError(f"mix.{name} key {key!r}: a value (7), a range (0-4) or an open range (20+)")
        ranges.append((int(lo), int(hi or lo), weight))
    return ranges
