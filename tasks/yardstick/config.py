"""yardstick's config: which extracted documents are pinned for evaluation, and the fixed rules they pass."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from storage.section import Section


class YardstickConfig(Section):
    """Fixed on purpose: nothing here follows the filter's settings, so the evaluation text stays the
    same bytes when filter, dedup, mix or tokenize change."""

    fraction: float = Field(0.06, gt=0.0, le=0.5, description="share of extracted documents drawn (by doc_id hash)")
    max_docs: int = Field(2000, ge=1, description="cap on pinned documents (the lowest hashes win)")
    min_per_language: int = Field(
        0, ge=0, le=10_000, description="documents of each language pinned at least, when the crawl has them: a "
        "language the fraction's draw leaves short gets its lowest-hash documents that pass the same rules, so a "
        "small language is measured (beyond max_docs); 0: the draw alone",
    )  # fmt: skip
    min_words: int = Field(50, ge=1)
    max_words: int = Field(20_000, ge=1)
    min_alpha_words: float = Field(0.8, ge=0.0, le=1.0, description="share of words with a letter")
    languages: Literal["all"] | list[str] | None = Field(
        None, min_length=1,
        description="languages whose documents may be pinned, or `all`; unset: the run's (extract.languages)",
    )  # fmt: skip
    min_lang_score: float = Field(0.65, ge=0.0, le=1.0, description="language-id confidence a pinned document needs")
    shingle_words: int = Field(5, ge=1, le=32)
    copy_threshold: float = Field(
        0.5, gt=0.0, le=1.0, description="shingle Jaccard with a pinned document at which a document is a copy"
    )
    seed: int = 0
