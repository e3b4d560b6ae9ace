"""How good is dedup? The run's own documents plus a generated near-duplicate set go through the
same dedup code, and the clusters are scored against exact shingle Jaccard over all pairs.

The ground truth is exact without comparing all n^2 pairs: prefix filtering (AllPairs) finds every
pair whose Jaccard reaches t, because two sets with J >= t must share a token among the first
|x| - ceil(t|x|) + 1 tokens of each, in one global order (rarest first). Their Jaccard is then
computed exactly from the shingle sets.

- recall: of the pairs with Jaccard >= 0.8, the share that ended in the same cluster;
- precision: of the removed documents, the share with Jaccard >= the configured threshold to some
  other member of their cluster (an exact copy counts as 1.0).
"""

from __future__ import annotations

import math
import string
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from storage.shards import atomic_write_json, read_json, write_parquet
from tasks.dedup.config import DedupConfig
from tasks.dedup.minhash import lsh_probability, normalize
from tasks.dedup.phases import cluster_documents

RECALL_AT = 0.8
SHARD_DOCS = 5000


def _vocabulary(rng: np.random.Generator, size: int) -> list[str]:
    letters = np.array(list(string.ascii_lowercase))
    words: set[str] = set()
    while len(words) < size:
        words.add("".join(rng.choice(letters, rng.integers(2, 11))))
    return sorted(words)


def _sentences(words: list[str], rng: np.random.Generator, spaced: bool = True) -> str:
    """Sentences of 8-20 words; a language written without spaces joins its words and ends with 。."""
    out, i = [], 0
    while i < len(words):
        n = int(rng.integers(8, 21))
        chunk = words[i : i + n]
        out.append(chunk[0].capitalize() + " " + " ".join(chunk[1:]) + "." if spaced else "".join(chunk) + "。")
        i += n
    return (" " if spaced else "").join(out)


def language_vocabulary(lang: str) -> list[str]:
    """The distinct words, as the language counts them, of the text in `lang` that installed packages
    ship (gettext catalogs): a real vocabulary for generated documents in that language."""
    from tasks.languages import words
    from tasks.sample.sources import translation_texts

    texts = translation_texts().get(lang)
    if not texts:
        raise ValueError(f"no text in {lang!r} among the installed packages' catalogs")
    # Words of the language itself (not the product names and codes the catalogs carry), most frequent
    # first: the Zipf draw then follows the language's own frequencies.
    counts = Counter(w.lower() for text in texts for w in words(text, lang) if not w.isascii())
    return [w for w, _ in sorted(counts.items(), key=lambda wc: (-wc[1], wc[0]))]


class _WordSource:
    """Zipf-distributed words drawn in blocks (one rng.choice per block, not per word)."""

    def __init__(self, rng: np.random.Generator, size: int = 8000, block: int = 1 << 16,
                 vocabulary: list[str] | None = None):  # fmt: skip
        self.rng, self.block = rng, block
        vocabulary = vocabulary if vocabulary is not None else _vocabulary(rng, size)
        size = len(vocabulary)
        self.vocab = np.array(vocabulary, dtype=object)
        weights = 1.0 / np.arange(1, size + 1) ** 1.05
        self.weights = weights / weights.sum()
        self.pool: list[str] = []
        self.next = 0

    def take(self, n: int) -> list[str]:
        if self.next + n > len(self.pool):
            self.pool = (
                self.pool[self.next :]
                + self.vocab[self.rng.choice(len(self.vocab), max(self.block, n), p=self.weights)].tolist()
            )
            self.next = 0
        self.next += n
        return self.pool[self.next - n : self.next]


def _mutate(words: list[str], rate: float, source: _WordSource, rng: np.random.Generator) -> list[str]:
    """Substitute (1/2), insert after (1/4) or delete (1/4) words at `rate` per position."""
    hit = rng.random(len(words)) < rate
    ops = rng.random(len(words))
    fresh = iter(source.take(int(hit.sum())))
    out: list[str] = []
    for w, h, op in zip(words, hit.tolist(), ops.tolist(), strict=True):
        if not h:
            out.append(w)
        elif op < 0.5:
            out.append(next(fresh))
        elif op < 0.75:
            out.extend([w, next(fresh)])
    return out


def synthetic_documents(n: int, seed: int = 0, lang: str = "en") -> list[dict[str, Any]]:
    """`n` documents: 60% originals over a Zipf vocabulary, 40% edited copies of them.

    Edit rates are spread so that pair similarities cover the whole range around any threshold
    (a 5-gram loses about 5x the word edit rate), plus verbatim copies with changed case and
    punctuation, added headers/footers, and copies of copies.
    """
    from tasks.languages import language

    rng = np.random.default_rng(seed)
    source = _WordSource(rng, vocabulary=None if lang == "en" else language_vocabulary(lang))
    spaced = language(lang).spaced
    n_orig = max(1, int(n * 0.6))
    word_lists = [source.take(int(rng.integers(60, 600))) for _ in range(n_orig)]
    docs = [_sentences(w, rng, spaced) for w in word_lists]
    while len(docs) < n:
        base = word_lists[int(rng.integers(len(word_lists)))]
        if rng.random() < 0.05:
            docs.append(_sentences(base, rng, spaced).upper().replace(".", " !").replace("。", "！"))
            word_lists.append(base)
            continue
        rate = float(rng.choice([rng.uniform(0, 0.01), rng.uniform(0.01, 0.05), rng.uniform(0.05, 0.15)]))
        words = _mutate(base, rate, source, rng)
        if rng.random() < 0.3:
            words = source.take(int(rng.integers(5, 25))) + words
        if rng.random() < 0.3:
            words = words + source.take(int(rng.integers(5, 25)))
        docs.append(_sentences(words, rng, spaced))
        word_lists.append(words)
    return [
        {
            "doc_id": f"synthetic-{i:07d}",
            "text": text,
            "lang": lang,
            "quality_score": None,
            "n_words": len(text.split()) if spaced else len(text),
        }
        for i, text in enumerate(docs)
    ]


def write_synthetic_shards(n: int, seed: int, folder: Path, docs: list[dict[str, Any]] | None = None) -> list[str]:
    """`synthetic_documents(n, seed)` (or the `docs` already made from them) as Parquet shards."""
    docs = docs if docs is not None else synthetic_documents(n, seed)
    paths = []
    for i in range(0, len(docs), SHARD_DOCS):
        path = folder / f"part-{i // SHARD_DOCS:05d}.parquet"
        schema = pa.schema([("doc_id", pa.string()), ("text", pa.string()), ("lang", pa.string()),
                            ("quality_score", pa.float64()), ("n_words", pa.int64())])  # fmt: skip
        write_parquet(pa.Table.from_pylist(docs[i : i + SHARD_DOCS], schema=schema), path)
        paths.append(str(path))
    return paths


_PRIME = np.uint64(0x100000001B3)


def shingle_ids(words: list[str], k: int, ids: dict[str, int]) -> np.ndarray:
    """The document's word k-gram set as sorted unique int64s: the same sets `shingles` makes,
    with each k-gram a polynomial hash of per-run word ids (collisions ~ 2^-64)."""
    w = np.fromiter((ids.setdefault(x, len(ids) + 1) for x in words), np.uint64, len(words))
    if len(w) < k:
        w = np.concatenate([w, np.zeros(k - len(w), np.uint64)])  # shorter than k: one shingle
    h = np.zeros(len(w) - k + 1, np.uint64)
    with np.errstate(over="ignore"):
        for i in range(k):
            h = h * _PRIME + w[i : len(w) - k + 1 + i]
    return np.unique(h.view(np.int64))


def similar_pairs(
    texts: list[str], k: int, threshold: float, langs: list[str | None] | None = None
) -> dict[tuple[int, int], float]:
    """Every pair (i < j) with shingle Jaccard >= threshold, exactly, by prefix filtering; each text
    shingled as its language is (`langs`, English when not given)."""
    word_ids: dict[str, int] = {}
    langs = langs or [None] * len(texts)
    sets = [shingle_ids(normalize(t, lang).split(), k, word_ids) for t, lang in zip(texts, langs, strict=True)]
    tokens, counts = np.unique(np.concatenate(sets) if sets else np.zeros(0, np.int64), return_counts=True)
    postings: dict[int, list[int]] = defaultdict(list)
    for doc, s in enumerate(sets):
        freq = counts[np.searchsorted(tokens, s)]
        ordered = s[np.lexsort((s, freq))]  # rarest first; ties by token: one global order
        for token in ordered[: len(s) - math.ceil(threshold * len(s)) + 1].tolist():
            postings[token].append(doc)
    candidates = {
        (a, b) for docs in postings.values() if len(docs) > 1 for i, a in enumerate(docs) for b in docs[i + 1 :]
    }
    found = {}
    for a, b in candidates:
        small, big = sorted((len(sets[a]), len(sets[b])))
        if small < threshold * big:  # length filter: J <= small / big
            continue
        inter = len(np.intersect1d(sets[a], sets[b], assume_unique=True))
        j = inter / (len(sets[a]) + len(sets[b]) - inter)
        if j >= threshold:
            found[(a, b)] = j
    return found


def score(
    doc_ids: list[str], pairs: dict[tuple[int, int], float], clusters: dict[str, dict[str, Any]], threshold: float
) -> dict[str, Any]:
    cluster_of = {d: clusters[d]["cluster"] if d in clusters else d for d in doc_ids}
    high = [(a, b) for (a, b), j in pairs.items() if j >= RECALL_AT]
    caught = sum(cluster_of[doc_ids[a]] == cluster_of[doc_ids[b]] for a, b in high)
    justified: set[str] = set()
    for (a, b), j in pairs.items():
        da, db = doc_ids[a], doc_ids[b]
        if j >= threshold and cluster_of[da] == cluster_of[db]:
            justified.update((da, db))
    removed = [d for d, row in clusters.items() if row["rule"]]
    correct = sum(d in justified for d in removed)
    bins = {}
    for lo, hi in ((threshold, RECALL_AT), (RECALL_AT, 0.9), (0.9, 1.01)):
        in_bin = [(a, b) for (a, b), j in pairs.items() if lo <= j < hi]
        same = sum(cluster_of[doc_ids[a]] == cluster_of[doc_ids[b]] for a, b in in_bin)
        bins[f"{lo:.2f}-{min(hi, 1.0):.2f}"] = {"pairs": len(in_bin), "recall": same / len(in_bin) if in_bin else None}
    return {
        "docs": len(doc_ids),
        "pairs_ge_threshold": len(pairs),
        f"pairs_ge_{RECALL_AT}": len(high),
        "recall_ge_0.8": caught / len(high) if high else 1.0,
        "removed": len(removed),
        "removed_correct": correct,
        "precision": correct / len(removed) if removed else 1.0,
        "recall_by_jaccard": bins,
    }


# Bump when the check's generator or scoring changes: cached results (dedup.stage) are keyed by it.
QUALITY_CHECK_VERSION = "1"


def measure_quality(shards: list[str], cfg: DedupConfig, work: Path) -> dict[str, Any]:
    """Dedup the run's documents plus `cfg.quality_check_docs` generated ones; score vs exact Jaccard."""
    if (done := work / "quality.json").exists():
        return read_json(done)
    all_shards = shards + write_synthetic_shards(cfg.quality_check_docs, cfg.seed, work / "synthetic")
    result, stats = scored_dedup(all_shards, cfg, work / "minhash")
    threshold = min(cfg.threshold, RECALL_AT)
    result["lsh_probability_at_0.8"] = lsh_probability(RECALL_AT, cfg.bands, cfg.rows)
    result["lsh_probability_at_threshold"] = lsh_probability(cfg.threshold, cfg.bands, cfg.rows)
    result["synthetic_docs"] = cfg.quality_check_docs
    result["ground_truth_threshold"] = threshold
    result["seconds"] = stats.get("cluster_seconds", 0) + stats.get("signature_seconds", 0)
    if cfg.quality_check_languages:
        result["languages"] = {lang: language_quality(lang, cfg, work) for lang in cfg.quality_check_languages}
    atomic_write_json(done, result)
    return result


def scored_dedup(shards: list[str], cfg: DedupConfig, work: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """Dedup `shards` with the run's code, then score the clusters against exact Jaccard."""
    stats = cluster_documents(shards, cfg, work)
    clusters = {r["doc_id"]: r for r in pq.read_table(work / "clusters.parquet").to_pylist()}
    doc_ids, texts, langs = [], [], []
    for path in shards:
        table = pq.read_table(path, columns=["doc_id", "text", "lang"])
        doc_ids += table.column("doc_id").to_pylist()
        texts += table.column("text").to_pylist()
        langs += table.column("lang").to_pylist()
    pairs = similar_pairs(texts, cfg.shingle_words, min(cfg.threshold, RECALL_AT), langs)
    return score(doc_ids, pairs, clusters, cfg.threshold), stats


def language_quality(lang: str, cfg: DedupConfig, work: Path) -> dict[str, Any]:
    """The same measurement on generated near-duplicates in `lang` alone."""
    n = cfg.quality_check_docs_per_language
    docs = synthetic_documents(n, cfg.seed, lang)
    shards = write_synthetic_shards(n, cfg.seed, work / f"synthetic-{lang}", docs)
    return scored_dedup(shards, cfg, work / f"minhash-{lang}")[0]
