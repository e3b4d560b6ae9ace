"""filter's config: one section per rule set, thresholds range-checked, None disables a rule."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from storage.section import ExistingFile, Section

# Rule thresholds: None disables a rule; values are range-checked so a typo fails before any work.
Count = Annotated[int, Field(ge=0)] | None
Ratio = Annotated[float, Field(ge=0.0, le=1.0)] | None
Length = Annotated[float, Field(ge=0.0, le=1000.0)] | None


class GopherQualityConfig(Section):
    """DeepMind Gopher quality rules (Rae et al. 2021); None disables a rule."""

    min_words: Count = 50
    max_words: Count = 100_000
    min_mean_word_length: Length = 3.0
    max_mean_word_length: Length = 10.0
    max_symbol_word_ratio: Ratio = 0.1
    max_bullet_lines_ratio: Ratio = 0.9
    max_ellipsis_lines_ratio: Ratio = 0.3
    min_alpha_words_ratio: Ratio = 0.8
    min_stop_words: Count = 2


class GopherRepetitionConfig(Section):
    max_dup_line_ratio: Ratio = 0.3
    max_dup_para_ratio: Ratio = 0.3
    max_dup_line_char_ratio: Ratio = 0.2
    max_dup_para_char_ratio: Ratio = 0.2
    max_top_2gram_char_ratio: Ratio = 0.2
    max_top_3gram_char_ratio: Ratio = 0.18
    max_top_4gram_char_ratio: Ratio = 0.16
    # Characters inside n-grams that occur more than once, n = 5..10 (Gopher's published values).
    max_dup_5gram_char_ratio: Ratio = 0.15
    max_dup_6gram_char_ratio: Ratio = 0.14
    max_dup_7gram_char_ratio: Ratio = 0.13
    max_dup_8gram_char_ratio: Ratio = 0.12
    max_dup_9gram_char_ratio: Ratio = 0.11
    max_dup_10gram_char_ratio: Ratio = 0.10


class C4Config(Section):
    """C4's rules (Raffel et al. 2020). Off by default: the curly-bracket rule alone removes most
    technical pages, including the sample's documentation; FineWeb keeps C4 without the
    terminal-punctuation line rule."""

    enabled: bool = False
    drop_no_terminal_punctuation: bool = True
    min_words_per_line: Count = 3
    max_word_length: Count = 1000
    drop_javascript_lines: bool = True
    drop_policy_lines: bool = True
    remove_lorem_ipsum: bool = True
    remove_curly_bracket: bool = True
    min_sentences: Count = 5


class FineWebConfig(Section):
    """FineWeb's own rules (Penedo et al. 2024) with their published thresholds."""

    enabled: bool = False
    min_line_punct_ratio: Ratio = 0.12
    short_line_chars: int = Field(30, ge=1)
    max_short_line_ratio: Ratio = 0.67
    max_dup_line_char_ratio: Ratio = 0.01
    max_newline_word_ratio: Length = 0.3


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
