"""filter's config: the URL rules, the classifier, PII, and one section per rule set (defined with its rules)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from storage.section import ExistingFile, InputPath, Section
from tasks.download import DownloadConfig
from tasks.filter.rules.c4 import C4Config
from tasks.filter.rules.fineweb import FineWebConfig
from tasks.filter.rules.gopher import GopherQualityConfig, GopherRepetitionConfig
from tasks.llm_endpoint import EndpointSettings
from tasks.url_rules import UrlRules

# Each rule set's section lives beside its rules (tasks/filter/rules/<set>.py); FilterConfig holds them.
__all__ = ["AnnotateConfig", "C4Config", "FilterConfig", "FineWebConfig", "GopherQualityConfig",
           "GopherRepetitionConfig", "QualityClassifierConfig"]  # fmt: skip


# What reads as a URL in a path field (fetched through the shared downloader, fsspec for non-HTTP).
REMOTE_PREFIXES = ("http://", "https://", "s3://", "gs://", "hf://", "az://")


class AnnotateConfig(EndpointSettings):
    """An LLM judge on an OpenAI-compatible endpoint scores a sample 0-5; a classifier learns its scores."""

    template_path: ExistingFile | None = Field(None, description="prompt template with {text}; default: our rubric")
    sample: int = Field(2000, ge=20, le=500_000, description="documents annotated, hash-chosen")
    threshold: int = Field(3, ge=1, le=5, description="judge scores >= this are good")
    classes: Literal["binary", "scores"] = Field("binary", description="fastText labels: good/bad or 0..5")
    learner: Literal["stumps", "linear", "fasttext"] = Field(
        "stumps", description="what learns the judge (binary classes): boosted decision stumps on hashed words and "
        "length fitted to the judge's 0-5 score, logistic regression on hashed words, or fastText (also for "
        "classes=scores); F1 on unseen pages after 600 annotations in benchmarks/judge_learning_curve.py",
    )  # fmt: skip
    heldout_fraction: float = Field(
        0.2, ge=0.05, lt=0.5, description="annotations held out to measure agreement, the same share of good and bad"
    )
    learning_curve: bool = Field(True, description="also train on 1/4, 1/2 and 3/4 of the annotations: F1 against "
                                 "their number, to see how many annotations are worth paying for")  # fmt: skip
    # A few thousand labelled documents need more passes than the reference-vs-web set (measured on
    # 500 judged documents: F1 0.74 at 10 epochs, 0.98 at 25).
    epochs: int = Field(25, ge=1, description="fastText epochs on the annotations")
    max_chars: int = Field(6000, ge=200, description="document characters put in the prompt")


class ReferenceSource(Section):
    """A reference corpus: a local path or a URL (https, s3, hf://datasets/...), with its sha256 pin."""

    path: InputPath
    sha256: str | None = Field(None, pattern=r"^[0-9a-fA-F]{64}$")
    text_key: str = Field("text", description="the text field of JSONL rows or Parquet column")


class QualityClassifierConfig(Section):
    name: str = Field("quality", pattern=r"^[a-z][a-z0-9_]*$", description="the classifier's key in quality_scores")
    languages: Literal["all"] | list[str] = Field(
        default_factory=lambda: ["en"], min_length=1,
        description="the languages the classifier scores (its reference text's, or a published model's): a "
        "document in another passes unscored, counted as <name>.unscored.<lang>, never removed by a score that "
        "means nothing; its training and threshold samples hold these languages only",
    )  # fmt: skip
    enabled: bool = True
    min_score: float = Field(0.01, ge=0.0, le=1.0, description="P(reference-like) below this is removed")
    reference_paths: list[ReferenceSource] = Field(
        default_factory=list,
        description="reference-quality text: paths or URLs to text, JSONL or Parquet (a string, or "
        "{path, sha256, text_key}); empty = built-in",
    )
    negatives: int = Field(2000, ge=10, description="random input documents used as the 'web' class")
    heldout_fraction: float = Field(0.1, ge=0.0, lt=0.5, description="labelled lines kept out to measure accuracy")
    keep_top_fraction: float | None = Field(
        None, gt=0.0, le=1.0, description="keep the best-scoring fraction instead of min_score (e.g. 0.1 as DCLM)"
    )
    model_path: ExistingFile | None = Field(
        None, description="an existing fastText model to use instead of training one"
    )
    model_url: str | None = Field(None, description="a published fastText classifier (https, s3, hf://...)")
    sha256: str | None = Field(None, pattern=r"^[0-9a-fA-F]{64}$", description="model_url's pinned digest")
    positive_label: str = Field("__label__hq", description="the model's label for good documents")
    epochs: int = Field(10, ge=1)
    lr: float = Field(0.5, gt=0.0, le=5.0, description="fastText learning rate; halved on divergence")
    lr_retries: int = Field(4, ge=0, le=10, description="how many times a diverged training is retried")
    download: DownloadConfig = Field(default_factory=DownloadConfig, description="how URLs above are fetched")
    annotate: AnnotateConfig | None = Field(
        None, description="learn from an LLM judge's scores instead of reference text vs web"
    )
    seed: int = 0

    @field_validator("reference_paths", mode="before")
    @classmethod
    def _sources(cls, values: list) -> list:
        """A plain string is a source without a pin; a local one must exist."""
        import os

        sources = [{"path": v} if isinstance(v, str) else v for v in values or []]
        for source in sources:
            path = source.get("path", "") if isinstance(source, dict) else ""
            if path and not path.startswith(REMOTE_PREFIXES):
                if not os.path.isfile(path):
                    raise ValueError(f"no such file: {path}")
        return sources

    def scores(self, lang: str | None) -> bool:
        """Whether this classifier's score means something for a document in `lang`."""
        return self.languages == "all" or (lang or "en") in self.languages

    @model_validator(mode="after")
    def _one_model_source(self) -> QualityClassifierConfig:
        if self.model_path and self.model_url:
            raise ValueError("model_path and model_url both name a model: give one")
        return self


# The rule sets whose thresholds may differ by language.
LANGUAGE_RULE_SETS = ("gopher_quality", "gopher_repetition", "c4", "fineweb")


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
    # An ensemble (Nemotron-CC): more classifiers beside `quality`, each scored into quality_scores;
    # every one's threshold applies, and the bucket is the best of their percentile buckets.
    more_classifiers: list[QualityClassifierConfig] = Field(default_factory=list)
    quality_buckets: int = Field(20, ge=2, le=100, description="quality_bucket runs 0..n-1 by percentile rank")
    redact_pii: bool = True
    language_defaults: Literal["fineweb2", "none"] = Field(
        "fineweb2",
        description="fineweb2: a document's Gopher, repetition and FineWeb thresholds are FineWeb-2's "
        "published ones for its language where there are some (English keeps the config's); none: the config's "
        "for every language",
    )
    language_score: Literal["off", "per_language"] = Field(
        "off", description="per_language: each language's language-id threshold by FineWeb-2's rule (max(0.3, "
        "min(0.9, median - std))) on the run's own documents where the language has language_score_min_docs, "
        "else FineWeb-2's published one; off: extract.min_lang_score alone",
    )  # fmt: skip
    language_score_min_docs: int = Field(200, ge=10, description="documents a language needs for its own threshold")
    per_language: dict[str, dict[str, dict[str, Any]]] = Field(
        default_factory=dict, description="language -> rule set -> thresholds, over the defaults, e.g. "
        "{ja: {gopher_quality: {min_words: 30}}}; what `crawl2model calibrate` writes",
    )  # fmt: skip
    workers: int = Field(2, ge=1, le=256)

    def url_rules(self) -> UrlRules:
        return UrlRules(blocklist_domains=self.blocklist_domains, blocklist_file=self.blocklist_file,
                        banned_url_words=self.banned_url_words)  # fmt: skip

    def classifiers(self) -> list[QualityClassifierConfig]:
        """Every enabled classifier, `quality` first."""
        return [c for c in (self.quality, *self.more_classifiers) if c.enabled]

    def for_language(self, rule_set: str) -> dict[str, dict[str, Any]]:
        """language -> this rule set's per-language thresholds."""
        return {lang: sets[rule_set] for lang, sets in self.per_language.items() if rule_set in sets}

    @model_validator(mode="after")
    def _per_language_thresholds_are_valid(self) -> FilterConfig:
        for lang, sets in self.per_language.items():
            for rule_set, values in sets.items():
                if rule_set not in LANGUAGE_RULE_SETS:
                    raise ValueError(f"per_language.{lang}.{rule_set}: not a rule set with thresholds; "
                                     f"one of {', '.join(LANGUAGE_RULE_SETS)}")  # fmt: skip
                section = getattr(self, rule_set)
                type(section).model_validate({**section.model_dump(), **values})
        return self

    @model_validator(mode="after")
    def _distinct_names(self) -> FilterConfig:
        names = [c.name for c in (self.quality, *self.more_classifiers)]
        if self.quality.name != "quality":
            raise ValueError("filter.quality is the primary classifier and keeps the name 'quality'")
        if len(set(names)) != len(names):
            raise ValueError(f"classifier names must differ: {names} (set more_classifiers[i].name)")
        return self
