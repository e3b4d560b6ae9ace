"""FineWeb's own heuristic rules (Penedo et al. 2024, FineWebQualityFilter in datatrove)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from pydantic import Field

from storage.section import Section
from tasks.filter.rules import Length, Measurement, Ratio, TextRule, at_least, at_most
from tasks.languages import language

LINE_END_PUNCTUATION = (".", "?", "!", '"', "'", "”", "’", ":", ";")


class FineWebConfig(Section):
    """FineWeb's own rules (Penedo et al. 2024) with their published thresholds."""

    enabled: bool = False
    min_line_punct_ratio: Ratio = 0.12
    short_line_chars: int = Field(30, ge=1)
    max_short_line_ratio: Ratio = 0.67
    max_dup_line_char_ratio: Ratio = 0.01
    max_newline_word_ratio: Length = 0.3


class FineWebQuality(TextRule):
    name = "fineweb"
    cfg: FineWebConfig

    def published(self, settings: dict[str, Any]) -> dict[str, Any]:
        names = {"line_punct_thr": "min_line_punct_ratio", "new_line_ratio": "max_newline_word_ratio"}
        return {ours: settings[theirs] for theirs, ours in names.items() if theirs in settings}

    def measure_text(self, text: str, lang: str | None = None) -> Iterator[Measurement]:
        c = self.cfg_for(lang)
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
        newline_ratio = text.count("\n") / max(len(language(lang).words(text)), 1)
        if c.max_newline_word_ratio is not None:
            yield at_most("fineweb_list_ratio", newline_ratio, c.max_newline_word_ratio)
