"""Pipeline stages: pure functions over shards plus thin Prefect task wrappers."""

STAGES = ("acquire", "extract", "filter", "dedup", "mix", "tokenize", "train", "evaluate")

# Bump a stage's version when its output changes for the same config: its fingerprint changes,
# so it and every later stage rerun. Kept here so planning a run imports no stage code.
STAGE_VERSIONS = {
    **{stage: "1" for stage in STAGES},
    **{"acquire": "3", "extract": "3", "filter": "2", "dedup": "2", "tokenize": "2", "train": "2", "evaluate": "3"},
}
