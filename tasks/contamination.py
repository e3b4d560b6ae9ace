"""Contamination: documents that share an n-gram (13 words by default) with an evaluation item (tokenize
removes or flags them; evaluate reports each benchmark's overlap with the training documents).

Items come from the benchmark files the evaluate stage will score (loaded with the same loaders);
texts are compared as lower-cased word sequences, as in the GPT-3 and lm-evaluation-harness
decontamination: runs of letters and digits in any script, where a script written without spaces
between words (Chinese, Japanese, Thai ...) counts each letter as a word, so a benchmark in such a
language has n-grams at all. Items shorter than n words are too short to match reliably and are
counted, not used.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from model.item_formats import load as load_items
from tasks.benchmarks import BenchmarkConfig
from tasks.languages.chars import ALNUM_RUN
from tasks.languages.segmenters import script_words


def _words(text: str) -> list[str]:
    return [w for token in ALNUM_RUN.findall(text.lower()) for w in script_words(token)]


def _gram_hash(words: list[str]) -> bytes:
    return hashlib.blake2b(" ".join(words).encode(), digest_size=8).digest()


@dataclass
class ContaminationIndex:
    n: int
    grams: dict[bytes, str] = field(default_factory=dict)  # n-gram hash -> "task:item_id"
    items: int = 0
    too_short: int = 0

    def add(self, key: str, text: str) -> None:
        words = _words(text)
        if len(words) < self.n:
            self.too_short += 1
            return
        self.items += 1
        for i in range(len(words) - self.n + 1):
            self.grams.setdefault(_gram_hash(words[i : i + self.n]), key)

    def match(self, text: str) -> tuple[int, str] | None:
        """(number of shared n-grams, first matching item) or None."""
        words = _words(text)
        hits = [self.grams[h] for i in range(len(words) - self.n + 1)
                if (h := _gram_hash(words[i : i + self.n])) in self.grams]  # fmt: skip
        return (len(hits), hits[0]) if hits else None

    def items_hit(self, text: str) -> set[str]:
        """Every item that shares an n-gram with `text` (the first item of each n-gram)."""
        words = _words(text)
        return {self.grams[h] for i in range(len(words) - self.n + 1)
                if (h := _gram_hash(words[i : i + self.n])) in self.grams}  # fmt: skip


def build_index(benchmarks: list[BenchmarkConfig], n: int) -> ContaminationIndex:
    index = ContaminationIndex(n)
    for b in benchmarks:
        for item in load_items(b.path, b.format, task=b.name, language=b.language):
            index.add(f"{item.task}:{item.item_id}", item.gold())
    return index
