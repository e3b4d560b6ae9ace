"""Contamination: documents that share an n-gram (13 words by default) with an evaluation item (tokenize
removes or flags them; evaluate reports each benchmark's overlap with the training documents).

Items come from the benchmark files the evaluate stage will score (loaded with the same loaders);
texts are compared as lower-cased word sequences, as in the GPT-3 and lm-evaluation-harness
decontamination: runs of letters and digits in any script. A script written without spaces between
words (Chinese, Japanese, Thai ...) has no words to count without a segmenter, so each of its letters
is a unit worth a fraction of a word (`LETTER_WEIGHT`) and an n-gram is the shortest run of units
worth n words: 13 words are about 20 Chinese characters or 52 Thai letters, not 13 letters, which
a Thai page shares with an unrelated one by chance (13 letters are two or three words: on the
multilingual sample they removed half its Thai training pages as contaminated). Items shorter than n
words are too short to match reliably and are counted, not used.
"""

from __future__ import annotations

import hashlib
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field

from model.item_formats import load as load_items
from tasks.benchmarks import BenchmarkConfig
from tasks.languages.chars import ALNUM_RUN
from tasks.languages.segmenters import script_words

# Letters that make one word on average, per script written without spaces, as twelfths of a word
# (a spaced word is 12): Chinese words average about 1.5 characters (1.69 with jieba on the multilingual
# sample), kana about 2 (Japanese 2.3 letters a word there, kanji and kana together), Thai and its
# neighbours about 4 (4.35 with the Thai segmenter there), Tibetan about 3.
WORD = 12
LETTER_WEIGHT = {"CJK": 8, "HIRAGANA": 6, "KATAKANA": 6, "THAI": 3, "LAO": 3, "KHMER": 3, "MYANMAR": 3,
                 "TIBETAN": 4}  # fmt: skip


def _units(text: str) -> list[tuple[str, int]]:
    """(unit, its weight in twelfths of a word): words of spaced scripts whole, other letters one by one."""
    units = []
    for token in ALNUM_RUN.findall(text.lower()):
        for w in script_words(token):
            script = unicodedata.name(w, "").split(" ", 1)[0] if len(w) == 1 else ""
            units.append((w, LETTER_WEIGHT.get(script, WORD)))
    return units


def _grams(units: list[tuple[str, int]], n: int) -> Iterator[bytes]:
    """The hash of every shortest run of units worth n words, one per starting unit."""
    end, total = 0, 0
    for start in range(len(units)):
        while end < len(units) and total < n * WORD:
            total += units[end][1]
            end += 1
        if total < n * WORD:
            return
        yield _gram_hash([u for u, _ in units[start:end]])
        total -= units[start][1]


def _gram_hash(words: list[str]) -> bytes:
    return hashlib.blake2b(" ".join(words).encode(), digest_size=8).digest()


@dataclass
class ContaminationIndex:
    n: int
    grams: dict[bytes, str] = field(default_factory=dict)  # n-gram hash -> "task:item_id"
    items: int = 0
    too_short: int = 0

    def add(self, key: str, text: str) -> None:
        units = _units(text)
        if sum(w for _, w in units) < self.n * WORD:
            self.too_short += 1
            return
        self.items += 1
        for h in _grams(units, self.n):
            self.grams.setdefault(h, key)

    def match(self, text: str) -> tuple[int, str] | None:
        """(number of shared n-grams, first matching item) or None."""
        hits = [self.grams[h] for h in _grams(_units(text), self.n) if h in self.grams]
        return (len(hits), hits[0]) if hits else None

    def items_hit(self, text: str) -> set[str]:
        """Every item that shares an n-gram with `text` (the first item of each n-gram)."""
        return {self.grams[h] for h in _grams(_units(text), self.n) if h in self.grams}


def build_index(benchmarks: list[BenchmarkConfig], n: int) -> ContaminationIndex:
    index = ContaminationIndex(n)
    for b in benchmarks:
        for item in load_items(b.path, b.format, task=b.name, language=b.language):
            index.add(f"{item.task}:{item.item_id}", item.gold())
    return index
