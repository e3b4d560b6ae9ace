"""Gopher quality and repetition rules (Rae et al. 2021, appendix A), as in datatrove and DCLM."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from typing import Any

from storage.section import Section
from tasks.filter.rules import Count, Length, Measurement, Ratio, TextRule, at_least, at_most
from tasks.languages import language
from tasks.languages.chars import WORD_OR_PUNCT

BULLETS = ("●", "•", "*", "-", "–", "‣", "◦", "⁃")
ELLIPSIS = ("...", "…")


def repetition_words(text: str, lang: str | None = None) -> list[str]:
    """The words the repetition rules take n-grams of: word and punctuation runs where the language
    puts spaces between words (as Gopher), the segmenter's words where it does not."""
    if language(lang).segmenter == "whitespace":
        return [w.lower() for w in WORD_OR_PUNCT.findall(text)]
    return [w.lower() for w in language(lang).words(text)]


class GopherQualityConfig(Section):
    """DeepMind Gopher quality rules (Rae et al. 2021); None disables a rule."""

    min_words: Count = 50
    max_words: Count = 100_000
    min_mean_word_length: Length = 3.0
    max_mean_word_length: Length = 10.0
    max_symbol_word_ratio: Ratio = 0.1
    max_bullet_lines_ratio: Ratio = 0.9
    max_ellipsis_lines_ratio: Ratio = 0.3
    min_alpha_words_ratio: Ratio = 0.8
    min_stop_words: Count = 2


class GopherRepetitionConfig(Section):
    max_dup_line_ratio: Ratio = 0.3
    max_dup_para_ratio: Ratio = 0.3
    max_dup_line_char_ratio: Ratio = 0.2
    max_dup_para_char_ratio: Ratio = 0.2
    max_top_2gram_char_ratio: Ratio = 0.2
    max_top_3gram_char_ratio: Ratio = 0.18
    max_top_4gram_char_ratio: Ratio = 0.16
    # Characters inside n-grams that occur more than once, n = 5..10 (Gopher's published values).
    max_dup_5gram_char_ratio: Ratio = 0.15
    max_dup_6gram_char_ratio: Ratio = 0.14
    max_dup_7gram_char_ratio: Ratio = 0.13
    max_dup_8gram_char_ratio: Ratio = 0.12
    max_dup_9gram_char_ratio: Ratio = 0.11
    max_dup_10gram_char_ratio: Ratio = 0.10


class GopherQuality(TextRule):
    name = "gopher_quality"
    cfg: GopherQualityConfig

    def published(self, settings: dict[str, Any]) -> dict[str, Any]:
        names = {"min_avg_word_length": "min_mean_word_length", "max_avg_word_length": "max_mean_word_length",
                 "max_non_alpha_words_ratio": "min_alpha_words_ratio"}  # fmt: skip
        return {ours: settings[theirs] for theirs, ours in names.items() if theirs in settings}

    def measure_text(self, text: str, lang: str | None = None) -> Iterator[Measurement]:
        """Every enabled rule in order, lazily: `check` stops at the first failure, `explain` reads all."""
        c = self.cfg_for(lang)
        words = language(lang).words(text)  # whitespace-separated for English, as Gopher counts
        n = len(words)
        if c.min_words is not None:
            yield at_least("gopher_min_words", n, c.min_words)
        if c.max_words is not None:
            yield at_most("gopher_max_words", n, c.max_words)
        mean_len = sum(len(w) for w in words) / max(n, 1)
        if c.min_mean_word_length is not None:
            yield at_least("gopher_min_mean_word_length", mean_len, c.min_mean_word_length)
        if c.max_mean_word_length is not None:
            yield at_most("gopher_max_mean_word_length", mean_len, c.max_mean_word_length)
        symbols = (text.count("#") + sum(text.count(e) for e in ELLIPSIS)) / max(n, 1)
        if c.max_symbol_word_ratio is not None:
            yield at_most("gopher_symbol_word_ratio", symbols, c.max_symbol_word_ratio)
        lines = [ln for ln in text.splitlines() if ln.strip()]
        n_lines = max(len(lines), 1)
        bullets = sum(ln.lstrip().startswith(BULLETS) for ln in lines) / n_lines
        if c.max_bullet_lines_ratio is not None:
            yield at_most("gopher_bullet_lines_ratio", bullets, c.max_bullet_lines_ratio)
        ellipsis = sum(ln.rstrip().endswith(ELLIPSIS) for ln in lines) / n_lines
        if c.max_ellipsis_lines_ratio is not None:
            yield at_most("gopher_ellipsis_lines_ratio", ellipsis, c.max_ellipsis_lines_ratio)
        alpha = sum(any(ch.isalpha() for ch in w) for w in words) / max(n, 1)
        if c.min_alpha_words_ratio is not None:
            yield at_least("gopher_alpha_words_ratio", alpha, c.min_alpha_words_ratio)
        stop_words = language(lang).stop_words
        stop = sum(w.lower().strip(".,;:!?\"'()") in stop_words for w in words)
        if c.min_stop_words is not None:
            yield at_least("gopher_stop_words", stop, c.min_stop_words)


def _dup_fractions(items: list[str]) -> tuple[float, float]:
    """(fraction of items that repeat an earlier one, fraction of characters in them)."""
    seen: set[str] = set()
    dup_items = dup_chars = 0
    for item in items:
        if item in seen:
            dup_items += 1
            dup_chars += len(item)
        seen.add(item)
    total_chars = sum(len(i) for i in items)
    return dup_items / max(len(items), 1), dup_chars / max(total_chars, 1)


def top_ngram_char_ratio(words: list[str], n: int, text_chars: int | None = None) -> float:
    """Characters covered by the most frequent n-gram (joined with spaces, times its count), over all
    characters of the text (as Gopher and datatrove measure it)."""
    if len(words) < n:
        return 0.0
    counts = Counter(" ".join(words[i : i + n]) for i in range(len(words) - n + 1))
    gram, freq = counts.most_common(1)[0]
    if freq < 2:
        return 0.0
    return len(gram) * freq / max(text_chars or sum(len(w) + 1 for w in words), 1)


class GopherRepetition(TextRule):
    name = "gopher_repetition"
    cfg: GopherRepetitionConfig

    def published(self, settings: dict[str, Any]) -> dict[str, Any]:
        update = {"max_dup_line_ratio": settings["dup_line_frac"]} if "dup_line_frac" in settings else {}
        update |= {f"max_top_{n}gram_char_ratio": v for n, v in settings.get("top_n_grams", {}).items()}
        return update | {f"max_dup_{n}gram_char_ratio": v for n, v in settings.get("dup_n_grams", {}).items()}

    def measure_text(self, text: str, lang: str | None = None) -> Iterator[Measurement]:
        c = self.cfg_for(lang)
        paragraphs = [p.strip() for p in re.split(r"\n{2,}", text) if p.strip()]
        para_frac, para_char_frac = _dup_fractions(paragraphs)
        if c.max_dup_para_ratio is not None:
            yield at_most("gopher_dup_para_ratio", para_frac, c.max_dup_para_ratio)
        if c.max_dup_para_char_ratio is not None:
            yield at_most("gopher_dup_para_char_ratio", para_char_frac, c.max_dup_para_char_ratio)
        lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
        line_frac, line_char_frac = _dup_fractions(lines)
        if c.max_dup_line_ratio is not None:
            yield at_most("gopher_dup_line_ratio", line_frac, c.max_dup_line_ratio)
        if c.max_dup_line_char_ratio is not None:
            yield at_most("gopher_dup_line_char_ratio", line_char_frac, c.max_dup_line_char_ratio)
        words = repetition_words(text, lang)
        for n in (2, 3, 4):
            if (limit := getattr(c, f"max_top_{n}gram_char_ratio")) is not None:
                ratio = top_ngram_char_ratio(words, n, len(text))
                yield at_most(f"gopher_top_{n}gram_char_ratio", ratio, limit)
        for n in range(5, 11):
            if (limit := getattr(c, f"max_dup_{n}gram_char_ratio")) is not None:
                ratio = dup_ngram_char_ratio(words, n, len(text))
                yield at_most(f"gopher_dup_{n}gram_char_ratio", ratio, limit)


def dup_ngram_char_ratio(words: list[str], n: int, text_chars: int | None = None) -> float:
    """Characters in n-grams that repeat an earlier one, over all characters of the text.

    Scanned left to right as Gopher describes (and datatrove implements): after a repeat, the scan
    jumps past it, so overlapping repeats are not counted twice.
    """
    seen: set[tuple[str, ...]] = set()
    repeated = i = 0
    while i <= len(words) - n:
        gram = tuple(words[i : i + n])
        if gram in seen:
            repeated += sum(len(w) for w in gram)
            i += n
        else:
            seen.add(gram)
            i += 1
    return repeated / max(text_chars or sum(len(w) + 1 for w in words), 1)
