"""FineWeb's own heuristic rules (Penedo et al. 2024, FineWebQualityFilter in datatrove)."""

from __future__ import annotations

from collections.abc import Iterator

from tasks.filter.config import FineWebConfig
from tasks.filter.rules import Measurement, TextRule, at_least, at_most

LINE_END_PUNCTUATION = (".", "?", "!", '"', "'", "”", "’", ":", ";")


class FineWebQuality(TextRule):
    name = "fineweb"
    cfg: FineWebConfig

    def measure_text(self, text: str) -> Iterator[Measurement]:
        c = self.cfg
        lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
        if not lines:
            yield Measurement("fineweb_empty", 0.0, False)
            return
        punct = sum(ln.endswith(LINE_END_PUNCTUATION) for ln in lines) / len(lines)
        if c.min_line_punct_ratio is not None:
            yield at_least("fineweb_line_punct_ratio", punct, c.min_line_punct_ratio)
        short = sum(len(ln) <= c.short_line_chars for ln in lines) / len(lines)
        if c.max_short_line_ratio is not None:
            yield at_most("fineweb_short_line_ratio", short, c.max_short_line_ratio)
        seen: set[str] = set()
        dup_chars = 0
        for ln in lines:
            if ln in seen:
                dup_chars += len(ln)
            seen.add(ln)
        dup = dup_chars / max(sum(len(ln) for ln in lines), 1)
        if c.max_dup_line_char_ratio is not None:
            yield at_most("fineweb_dup_line_char_ratio", dup, c.max_dup_line_char_ratio)
        newline_ratio = text.count("\n") / max(len(text.split()), 1)
        if c.max_newline_word_ratio is not None:
            yield at_most("fineweb_list_ratio", newline_ratio, c.max_newline_word_ratio)
