"""MinHash signature implementations side by side, over the same normalized documents, the same word
5-gram shingles and the same 112 permutations (14 bands x 8 rows), one process each:

- `before`: the dedup stage until 2026-12-02, its regex normalization and datasketch's
  `MinHash.generator` over each document's shingle set (SHA-1 per shingle in Python); kept here as
  the baseline;
- `ours`: `tasks.dedup.minhash.signatures` (vectorised shingle hashing, datasketch's affine32
  permutations a window of hashes at a time);
- `datatrove`: datatrove's `MinhashDedupSignature` hashing (xxhash64) and permutation
  (`get_signature`) on our shingles;
- `rensa`: rensa's `RMinHash.update` on the shingle strings (Rust hashing and permutations);
- `rensa-bulk`: rensa's `digest_matrix_from_flat_token_hashes` on our 32-bit shingle hashes (its
  permutations alone, given hashes).
Every implementation is timed from the Parquet shard's text to a (docs, 112) signature matrix; all
but `before` normalize with today's `text_keys.normalize` (the same output, faster on ASCII).
`quality(impl)` runs the dedup quality check with an implementation swapped in.
"""

from __future__ import annotations

import re
import tempfile
import unicodedata
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from tasks.dedup.config import DedupConfig
from tasks.text_keys import normalize, shingles

CFG = DedupConfig(quality_check_docs=0)


PUNCT = re.compile(r"[^\w\s]")


def normalize_before(text: str) -> str:
    return " ".join(PUNCT.sub(" ", unicodedata.normalize("NFKC", text).lower()).split())


def before(raw: list[str], cfg: DedupConfig) -> np.ndarray:
    from datasketch import MinHash

    sets = (shingles(normalize_before(t), cfg.shingle_words) for t in raw)
    rows = [m.hashvalues for m in MinHash.generator(sets, num_perm=cfg.num_perm, seed=cfg.seed)]
    return np.vstack(rows).astype(np.uint32)


def ours(raw: list[str], cfg: DedupConfig) -> np.ndarray:
    texts = [normalize(t) for t in raw]
    from tasks.dedup.minhash import signatures

    return signatures(texts, cfg.num_perm, cfg.shingle_words, cfg.seed)


def _shingle_strings(text: str, k: int) -> list[str]:
    words = text.split()
    return [" ".join(words[i : i + k]) for i in range(max(len(words) - k + 1, 1))]


def datatrove(raw: list[str], cfg: DedupConfig) -> np.ndarray:
    texts = [normalize(t) for t in raw]
    from datatrove.pipeline.dedup.minhash import MinhashConfig, MinhashDedupSignature
    from datatrove.utils.hashing import HashConfig

    config = MinhashConfig(n_grams=cfg.shingle_words, num_buckets=cfg.bands, hashes_per_bucket=cfg.rows,
                           seed=cfg.seed, hash_config=HashConfig(precision=64))  # fmt: skip
    step = MinhashDedupSignature(output_folder=tempfile.mkdtemp(), config=config)
    rows = []
    for text in texts:
        hashes = np.fromiter((step._hash_func(s) for s in set(_shingle_strings(text, cfg.shingle_words))), np.uint64)
        rows.append(np.concatenate(step.get_signature(hashes.reshape(-1, 1))))
    return np.vstack(rows)


def rensa(raw: list[str], cfg: DedupConfig) -> np.ndarray:
    texts = [normalize(t) for t in raw]
    from rensa import RMinHash

    rows = []
    for text in texts:
        m = RMinHash(num_perm=cfg.num_perm, seed=cfg.seed)
        m.update(_shingle_strings(text, cfg.shingle_words))
        rows.append(m.digest())
    return np.array(rows, dtype=np.uint32)


def rensa_bulk(raw: list[str], cfg: DedupConfig) -> np.ndarray:
    texts = [normalize(t) for t in raw]
    from rensa import RMinHash

    from tasks.dedup.minhash import shingle_hashes

    sets = [shingle_hashes(t, cfg.shingle_words) for t in texts]
    offsets = np.concatenate(([0], np.cumsum([len(s) for s in sets]))).astype(np.uint64)
    flat = np.concatenate(sets).astype(np.uint64)
    matrix = RMinHash.digest_matrix_from_flat_token_hashes(flat, offsets, cfg.num_perm, cfg.seed)
    return np.array(matrix.to_rows(), dtype=np.uint32)


IMPLEMENTATIONS: dict[str, Callable[[list[str], DedupConfig], np.ndarray]] = {
    "before": before, "ours": ours, "datatrove": datatrove, "rensa": rensa, "rensa-bulk": rensa_bulk,
}  # fmt: skip


def signatures_of_shards(shards: list[str], impl: str) -> dict[str, Any]:
    """Text -> normalized -> signatures for every shard; returns the document count, a checksum and the
    steady-state seconds: after one warm-up call on 20 documents (imports: datasketch loads scipy,
    0.4 s, paid once per process whatever the input), timed over every document."""
    import time

    run = IMPLEMENTATIONS[impl]
    warm = pq.read_table(shards[0], columns=["text"]).column("text").to_pylist()[:20]
    run(warm, CFG)
    started = time.perf_counter()
    docs, checksum = 0, 0
    for path in shards:
        texts = pq.read_table(path, columns=["text"]).column("text").to_pylist()
        sigs = run(texts, CFG)
        assert sigs.shape == (len(texts), CFG.num_perm), sigs.shape
        docs += len(texts)
        checksum ^= int(np.bitwise_xor.reduce(sigs.astype(np.uint64).ravel()))
    return {"docs": docs, "checksum": checksum, "steady_seconds": time.perf_counter() - started}


def quality(impl: str, docs: int, work: str) -> dict[str, Any]:
    """The dedup quality check (`docs` generated near-duplicates) with `impl`'s signatures."""
    import tasks.dedup.phases as phases
    from tasks.dedup.quality_check import measure_quality

    # The stage hands over normalized text; normalizing it again changes nothing.
    phases.signatures = lambda texts, num_perm, k, seed: IMPLEMENTATIONS[impl](list(texts), CFG)
    result = measure_quality([], DedupConfig(quality_check_docs=docs, workers=1), Path(work))
    return {k: result[k] for k in ("recall_ge_0.8", "precision", "removed", "pairs_ge_0.8")}
