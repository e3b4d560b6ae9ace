"""dedup's config: shingles, MinHash permutations, LSH bands and the survivor rule."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from storage.section import Section


class DedupConfig(Section):
    """Exact + MinHash near-dedup. 14 bands x 8 rows puts the LSH S-curve's midpoint near Jaccard 0.72."""

    enabled: bool = Field(True, description="off: documents pass with no exact or near dedup (recipe ablations)")
    num_perm: int = Field(112, ge=16, le=1024, description="MinHash permutations (>= bands x rows)")
    bands: int = Field(14, ge=1, le=512)
    rows: int = Field(8, ge=1, le=64, description="signature rows per band")
    shingle_words: int = Field(5, ge=1, le=32)
    threshold: float = Field(0.7, gt=0.0, lt=1.0, description="Jaccard similarity a verified pair must reach")
    verify: Literal["none", "signature", "jaccard"] = Field(
        "jaccard", description="check candidate pairs: not at all, by MinHash estimate, or by exact shingle Jaccard"
    )
    keep: Literal["smallest_doc_id", "highest_quality", "longest"] = Field(
        "highest_quality", description="which document of a cluster survives (ties: smallest doc_id)"
    )
    max_pair_bucket: int = Field(
        32, ge=2, le=4096, description="buckets up to this size yield all pairs; bigger ones link to their first doc"
    )
    memory_limit_mb: int = Field(
        1024,
        ge=32,
        description="DuckDB memory of each step of the global phase (each "
        "task's own: a pool or cluster runs several); spills to disk past it",
    )
    partitions: int = Field(
        4,
        ge=1,
        le=65536,
        description="candidate pairs are verified in this many tasks "
        "(by pair hash); more for a bigger crawl or cluster, each within memory_limit_mb",
    )
    workers: int = Field(2, ge=1, le=256, description="processes computing signatures, one shard each")
    quality_check_docs: int = Field(
        20000, ge=0, description="synthetic near-duplicate documents added to measure P/R vs exact Jaccard; 0 = off"
    )
    quality_check_languages: list[str] = Field(
        default_factory=list, description="also measure on generated near-duplicates in these languages (words from "
        "text the installed packages ship, shingled as the language is): recall and precision per language",
    )  # fmt: skip
    quality_check_docs_per_language: int = Field(2000, ge=100, description="generated documents per extra language")
    seed: int = 1

    @model_validator(mode="after")
    def _bands_fit(self) -> DedupConfig:
        if self.bands * self.rows > self.num_perm:
            raise ValueError(f"bands x rows = {self.bands * self.rows} exceeds num_perm = {self.num_perm}")
        return self
