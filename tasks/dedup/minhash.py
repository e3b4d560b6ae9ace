"""MinHash pieces shared by the dedup stage and its quality check: text normalization, word
n-gram shingles, datasketch signatures in bulk, and LSH band buckets.

Signatures come from datasketch's `MinHash.generator` (one initialized permutation state reused
for every document). Band buckets are a vectorized 64-bit mix of each band's rows, so a shard's
buckets cost a few numpy passes instead of one Python hash call per band and document.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from tasks.text_keys import exact_key, jaccard, normalize, shingles

__all__ = ["band_buckets", "exact_key", "jaccard", "lsh_probability", "normalize", "shingles", "signatures"]

# splitmix64 constants: a cheap, well-mixed 64-bit hash of the band rows.
_MIX_A = np.uint64(0xBF58476D1CE4E5B9)
_MIX_B = np.uint64(0x94D049BB133111EB)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
# datasketch's hash values are 32-bit (max_hash = 2^32 - 1); stored signatures use this dtype.
SIGNATURE_DTYPE = np.uint32


def signatures(normalized: Iterable[str], num_perm: int, shingle_words: int, seed: int) -> np.ndarray:
    """(docs, num_perm) MinHash signatures of SIGNATURE_DTYPE."""
    sets = (shingles(text, shingle_words) for text in normalized)
    # Imported here: datasketch loads scipy (0.35 s), which listing the stages in the CLI need not pay.
    from datasketch import MinHash

    rows = [m.hashvalues for m in MinHash.generator(sets, num_perm=num_perm, seed=seed)]
    return np.vstack(rows).astype(SIGNATURE_DTYPE) if rows else np.zeros((0, num_perm), dtype=SIGNATURE_DTYPE)


def _mix(x: np.ndarray) -> np.ndarray:
    x = (x ^ (x >> np.uint64(30))) * _MIX_A
    x = (x ^ (x >> np.uint64(27))) * _MIX_B
    return x ^ (x >> np.uint64(31))


def band_buckets(sigs: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """(docs, bands) int64 bucket ids: equal exactly when the band's rows are equal (up to 2^-64)."""
    out = np.empty((sigs.shape[0], bands), dtype=np.uint64)
    sigs = sigs.astype(np.uint64)
    with np.errstate(over="ignore"):
        for b in range(bands):
            h = np.full(sigs.shape[0], np.uint64(b) * _GOLDEN, dtype=np.uint64)
            for r in range(rows):
                h = _mix(h ^ sigs[:, b * rows + r])
            out[:, b] = h
    return out.view(np.int64)


def lsh_probability(similarity: float, bands: int, rows: int) -> float:
    """Chance that two documents of this Jaccard similarity share at least one bucket."""
    return 1.0 - (1.0 - similarity**rows) ** bands
