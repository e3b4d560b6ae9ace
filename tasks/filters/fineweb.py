"""FineWeb's own heuristic rules (Penedo et al. 2024, FineWebQualityFilter in datatrove)."""

from __future__ import annotations

from tasks.config import FineWebConfig
from tasks.filters import Verdict

LINE_END_PUNCTUATION = (".", "?", "!", '"', "'", "”", "’", ":", ";")


class FineWebQuality:
    def __init__(self, cfg: FineWebConfig):
        self.cfg = cfg

    def check(self, text: str) -> Verdict:
        c = self.cfg
        lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
        if not lines:
            return "fineweb_empty", 0.0
        punct = sum(ln.endswith(LINE_END_PUNCTUATION) for ln in lines) / len(lines)
        if c.min_line_punct_ratio is not None and punct < c.min_line_punct_ratio:
            return "fineweb_line_punct_ratio", punct
        short = sum(len(ln) <= c.short_line_chars for ln in lines) / len(lines)
        if c.max_short_line_ratio is not None and short > c.max_short_line_ratio:
            return "fineweb_short_line_ratio", short
        seen: set[str] = set()
        dup_chars = 0
        for ln in lines:
            if ln in seen:
                dup_chars += len(ln)
            seen.add(ln)
        dup = dup_chars / max(sum(len(ln) for ln in lines), 1)
        if c.max_dup_line_char_ratio is not None and dup > c.max_dup_line_char_ratio:
            return "fineweb_dup_line_char_ratio", dup
        newline_ratio = text.count("\n") / max(len(text.split()), 1)
        if c.max_newline_word_ratio is not None and newline_ratio > c.max_newline_word_ratio:
            return "fineweb_list_ratio", newline_ratio
        return None
