"""Pipeline stages: pure functions over shards plus thin Prefect task wrappers."""

STAGES = ("acquire", "extract", "filter", "dedup", "mix", "tokenize", "train", "evaluate")
