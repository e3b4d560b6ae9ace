"""Finding the copies of pinned documents: the exact normalized text, or word shingles shared at a
Jaccard of at least the threshold (exact Jaccard through an inverted shingle index, no sketching:
the pinned set is small, and a near copy that slipped through would leak evaluation text)."""

from __future__ import annotations

import hashlib
from collections import Counter

from tasks.text_keys import exact_key, normalize, shingles


def shingle_ids(text: str, k: int, lang: str | None = None) -> set[int]:
    hashed = (hashlib.blake2b(s, digest_size=8).digest() for s in shingles(normalize(text, lang), k))
    return {int.from_bytes(h, "little") for h in hashed}


class CopyIndex:
    def __init__(self, pinned: list[dict], k: int, threshold: float):
        self.k, self.threshold = k, threshold
        self.exact = {exact_key(normalize(d["text"], d.get("lang"))): d["doc_id"] for d in pinned}
        self.sizes: dict[str, int] = {}
        self.postings: dict[int, list[str]] = {}
        for d in pinned:
            ids = shingle_ids(d["text"], k, d.get("lang"))
            self.sizes[d["doc_id"]] = len(ids)
            for s in ids:
                self.postings.setdefault(s, []).append(d["doc_id"])

    def match(self, text: str, lang: str | None = None) -> tuple[str, str, float] | None:
        """(reason, pinned doc_id, similarity) when `text` (in `lang`) copies a pinned document."""
        if (pinned := self.exact.get(exact_key(normalize(text, lang)))) is not None:
            return "exact_copy", pinned, 1.0
        ids = shingle_ids(text, self.k, lang)
        shared = Counter(p for s in ids for p in self.postings.get(s, ()))
        best: tuple[str, str, float] | None = None
        for pinned, n in shared.items():
            similarity = n / (len(ids) + self.sizes[pinned] - n)
            if similarity >= self.threshold and (best is None or similarity > best[2]):
                best = ("near_copy", pinned, similarity)
        return best
