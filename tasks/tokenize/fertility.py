"""What the tokenizer costs each language: tokens per word (words as the language's segmenter counts
them) and UTF-8 bytes per token, beside English's. A language that pays three times English's tokens
per word gets a third of the text into the same context and is scored in bits per byte on fewer bytes
per step; a tokenizer trained on a language-balanced sample narrows that gap."""

from __future__ import annotations

from typing import Any

from storage.fingerprint import unit_interval
from tasks.documents import count_words

PER_LANGUAGE = 200  # documents per language measured (hash-chosen): segmenters are slow for some scripts


def fertility(docs: list[dict[str, Any]], encoded: list[list[int]], seed: int) -> dict[str, dict[str, float]]:
    """Per language: documents measured, tokens per word, bytes per token, and tokens per word over English's."""
    by_language: dict[str, list[int]] = {}
    order = sorted(range(len(docs)), key=lambda i: unit_interval(seed, "fertility", docs[i]["doc_id"]))
    for i in order:
        chosen = by_language.setdefault(docs[i].get("lang") or "und", [])
        if len(chosen) < PER_LANGUAGE:
            chosen.append(i)
    out = {}
    for lang, chosen in sorted(by_language.items()):
        tokens = sum(len(encoded[i]) for i in chosen)
        words = sum(count_words(docs[i]["text"], lang) for i in chosen)
        utf8 = sum(len(docs[i]["text"].encode()) for i in chosen)
        out[lang] = {"docs": len(chosen), "tokens_per_word": tokens / max(words, 1),
                     "bytes_per_token": utf8 / max(tokens, 1)}  # fmt: skip
    if "en" in out:
        for row in out.values():
            row["vs_english"] = row["tokens_per_word"] / out["en"]["tokens_per_word"]
    return out


def balanced_sample(docs: list[dict[str, Any]], n: int, alpha: float | None, seed: int) -> list[dict[str, Any]]:
    """The `n` documents the tokenizer learns from: hash order; with `alpha`, each language's share
    proportional to its documents^alpha (a small language is not drowned), the rest by hash order."""
    ranked = sorted(docs, key=lambda d: unit_interval(seed, "tok-sample", d["doc_id"]))
    if alpha is None:
        return ranked[:n]
    by_language: dict[str, list[dict[str, Any]]] = {}
    for doc in ranked:
        by_language.setdefault(doc.get("lang") or "und", []).append(doc)
    weights = {lang: len(group) ** alpha for lang, group in by_language.items()}
    total = sum(weights.values())
    chosen = [d for lang, group in by_language.items() for d in group[: round(n * weights[lang] / total)]]
    picked = {d["doc_id"] for d in chosen}
    chosen += [d for d in ranked if d["doc_id"] not in picked][: max(n - len(chosen), 0)]
    return sorted(chosen[:n], key=lambda d: unit_interval(seed, "tok-sample", d["doc_id"]))
