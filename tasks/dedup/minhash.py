"""MinHash pieces shared by the dedup stage and its quality check: text normalization, word
n-gram shingles, datasketch-compatible signatures computed a batch of documents at a time, and LSH
band buckets.

Why not `MinHash.update_batch` per document: it hashes every shingle with SHA-1 in a Python loop,
which was 90% of dedup's cost. Here a batch of normalized documents is one byte buffer: every word
5-gram's bytes (exactly `" ".join(words[i:i+5])`, the shingles `text_keys.shingles` makes) are
hashed at once by a position-normalized polynomial over prefix sums, mixed, and folded to 32 bits;
the permutations are datasketch's own (`affine32` scheme: the MurmurHash3 finalizer, then
`a*h + b` mod 2^32 with datasketch's seeded `a`, `b`), applied to a window of hashes per numpy call.
`tests/test_dedup.py` checks the result equals `MinHash(hashfunc=int).update_batch` on the same
shingle hashes.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from functools import lru_cache

import numpy as np

from tasks.text_keys import exact_key, jaccard, normalize, shingles

__all__ = [
    "band_buckets", "exact_key", "jaccard", "lsh_probability", "normalize", "shingle_hashes", "shingles",
    "signatures",
]  # fmt: skip

# splitmix64 constants: a cheap, well-mixed 64-bit hash.
_MIX_A = np.uint64(0xBF58476D1CE4E5B9)
_MIX_B = np.uint64(0x94D049BB133111EB)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_BASE = np.uint64(0x100000001B3)  # odd, so invertible mod 2^64: positions can be divided out
_BASE_INVERSE = np.uint64(pow(int(_BASE), -1, 1 << 64))
_SPACE, _NEWLINE = 32, 10  # normalized text has single spaces and no newline: "\n" separates documents
SIGNATURE_DTYPE = np.uint32  # datasketch's affine32 scheme: 32-bit hash values
_BATCH_BYTES = 1 << 20  # documents joined per shingle pass
_WINDOW = 16384  # shingle hashes per permutation call: (num_perm, 8192) uint32 stays in cache


def _mix(x: np.ndarray) -> np.ndarray:
    x = (x ^ (x >> np.uint64(30))) * _MIX_A
    x = (x ^ (x >> np.uint64(27))) * _MIX_B
    return x ^ (x >> np.uint64(31))


_POWER_TABLES: dict[int, np.ndarray] = {}


def _powers(base: np.uint64, n: int) -> np.ndarray:
    """base^0 .. base^(n-1) mod 2^64, from a per-process table grown by doubling."""
    table = _POWER_TABLES.get(int(base))
    if table is None or len(table) < n:
        size = max(n, 2 * len(table) if table is not None else 2 * _BATCH_BYTES)  # a batch ends past _BATCH_BYTES
        table = np.empty(size, np.uint64)
        table[0] = 1
        with np.errstate(over="ignore"):
            np.cumprod(np.full(size - 1, base, np.uint64), out=table[1:])
        _POWER_TABLES[int(base)] = table
    return table[:n]


def _word_spans(data: np.ndarray, n_docs: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Start and end byte of every word of the joined buffer, and the document it belongs to."""
    breaks = np.flatnonzero((data == _SPACE) | (data == _NEWLINE))
    starts = np.concatenate(([0], breaks + 1))
    ends = np.concatenate((breaks, [len(data)]))
    doc = np.concatenate(([0], np.cumsum(data[breaks] == _NEWLINE)))
    assert doc[-1] == n_docs - 1, "a normalized document held a newline"
    return starts, ends, doc


def _shingle_spans(starts: np.ndarray, ends: np.ndarray, doc: np.ndarray, k: int) -> tuple[np.ndarray, ...]:
    """(start, end, doc) of every word k-gram; a document shorter than k words is one shingle."""
    words_per_doc = np.bincount(doc)
    first = np.concatenate(([0], np.cumsum(words_per_doc)[:-1]))
    i = np.arange(max(len(doc) - k + 1, 0))
    full = i[doc[i] == doc[i + k - 1]]
    short = np.flatnonzero(words_per_doc < k)
    last = first[short] + words_per_doc[short] - 1
    span_start = np.concatenate((starts[full], starts[first[short]]))
    span_end = np.concatenate((ends[full + k - 1], ends[last]))
    return span_start, span_end, np.concatenate((doc[full], short))


def _batch_shingle_hashes(texts: list[str], k: int) -> tuple[np.ndarray, np.ndarray]:
    """(doc index, 32-bit hash) of every shingle of every text; each document's shingles are one run.

    A shingle repeated in a document is hashed twice: the minimum over a multiset is the minimum over
    its set, so no per-document unique pass is needed for signatures.
    """
    data = np.frombuffer("\n".join(texts).encode(), np.uint8)
    span_start, span_end, doc = _shingle_spans(*_word_spans(data, len(texts)), k)
    prefix = np.zeros(len(data) + 1, np.uint64)
    with np.errstate(over="ignore"):
        # prefix[j] = sum (byte_t + 1) * BASE^t over t < j, wrapping mod 2^64 as intended.
        np.cumsum((data + np.uint64(1)) * _powers(_BASE, len(data) + 1)[:-1], out=prefix[1:])
        positioned = (prefix[span_end] - prefix[span_start]) * _powers(_BASE_INVERSE, len(data) + 1)[span_start]
        h = _mix(positioned + (span_end - span_start).astype(np.uint64))  # the length, too
    return doc, ((h ^ (h >> np.uint64(32))) & np.uint64(0xFFFFFFFF)).astype(np.uint32)


def _batches(normalized: Iterable[str]) -> Iterator[list[str]]:
    batch: list[str] = []
    size = 0
    for text in normalized:
        batch.append(text)
        size += len(text) + 1
        if size >= _BATCH_BYTES:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch


def shingle_hashes(normalized: str, k: int) -> np.ndarray:
    """The document's distinct shingles as sorted 32-bit hashes (the values its signature is over)."""
    return np.unique(_batch_shingle_hashes([normalized], k)[1])


@lru_cache(maxsize=8)
def _permutations(num_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    # Imported here: datasketch loads scipy (0.35 s), which listing the stages in the CLI need not pay.
    from datasketch import MinHash

    a, b = MinHash(num_perm=num_perm, seed=seed, scheme="affine32").permutations
    return a.astype(np.uint32).reshape(-1, 1), b.astype(np.uint32).reshape(-1, 1)


def _fmix32(h: np.ndarray) -> np.ndarray:
    """MurmurHash3's finalizer, datasketch's pre-mix for the affine schemes."""
    h = h ^ (h >> np.uint32(16))
    h = h * np.uint32(0x85EBCA6B)
    h = h ^ (h >> np.uint32(13))
    h = h * np.uint32(0xC2B2AE35)
    return h ^ (h >> np.uint32(16))


def _min_permuted(doc: np.ndarray, hashes: np.ndarray, n_docs: int, num_perm: int, seed: int) -> np.ndarray:
    """Per document, the minimum of each permutation over its hashes: one numpy pass per window.

    Within a window each document is one run of `doc` (full shingles come in document order, the
    one shingle of each short document after them), so one reduceat per window gives its minima.
    """
    a, b = _permutations(num_perm, seed)
    out = np.full((n_docs, num_perm), np.iinfo(SIGNATURE_DTYPE).max, SIGNATURE_DTYPE)
    premixed = _fmix32(hashes)
    buffer = np.empty((num_perm, _WINDOW), SIGNATURE_DTYPE)  # reused: a fresh array per window page-faults
    for lo in range(0, len(hashes), _WINDOW):
        window_doc = doc[lo : lo + _WINDOW]
        segment = np.flatnonzero(np.concatenate(([True], window_doc[1:] != window_doc[:-1])))
        permuted = buffer[:, : len(window_doc)]
        np.multiply(a, premixed[lo : lo + _WINDOW], out=permuted)
        np.add(permuted, b, out=permuted)
        docs = window_doc[segment]  # a document cut by the window edge is min-combined across windows
        out[docs] = np.minimum(out[docs], np.minimum.reduceat(permuted, segment, axis=1).T)
    return out


def signatures(normalized: Iterable[str], num_perm: int, shingle_words: int, seed: int) -> np.ndarray:
    """(docs, num_perm) MinHash signatures of SIGNATURE_DTYPE, datasketch's affine32 values."""
    parts = []
    with np.errstate(over="ignore"):
        for batch in _batches(normalized):
            doc, hashes = _batch_shingle_hashes(batch, shingle_words)
            parts.append(_min_permuted(doc, hashes, len(batch), num_perm, seed))
    return np.vstack(parts) if parts else np.zeros((0, num_perm), dtype=SIGNATURE_DTYPE)


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
