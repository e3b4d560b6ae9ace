"""C4's line and document rules (Raffel et al. 2020, as in datatrove's C4QualityFilter).

C4 edits documents: lines without terminal punctuation, with too few words, with an over-long word,
mentioning javascript or a cookie/terms policy are dropped; then a document with "lorem ipsum", a
curly bracket, or too few sentences left is removed. `clean` returns the kept text and what it
dropped, so the stage can record both.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from typing import Any

from pydantic import Field

from storage.section import Section
from tasks.filter.rules import Count, Measurement, TextRule, at_least
from tasks.languages import language

# Full stops of other scripts too, for a language C4's rules are asked to apply to (filter.c4.languages):
# Chinese and Japanese 。！？ and closing quotes, Arabic ؟, Devanagari ।.
TERMINAL_PUNCTUATION = (".", "!", "?", '"', "'", "”", "’", "。", "！", "？", "」", "』", "؟", "।")
POLICY_PHRASES = (
    "terms of use",
    "privacy policy",
    "cookie policy",
    "uses cookies",
    "use of cookies",
    "use cookies",
)
SENTENCE_END = re.compile(r"[.!?]+(?:\s|$)|[。！？؟।]+")


class C4Config(Section):
    """C4's rules (Raffel et al. 2020). Off by default: the curly-bracket rule alone removes most
    technical pages, including the sample's documentation; FineWeb keeps C4 without the
    terminal-punctuation line rule."""

    enabled: bool = False
    drop_no_terminal_punctuation: bool = True
    min_words_per_line: Count = 3
    max_word_length: Count = 1000
    drop_javascript_lines: bool = True
    drop_policy_lines: bool = True
    remove_lorem_ipsum: bool = True
    remove_curly_bracket: bool = True
    min_sentences: Count = 5
    languages: list[str] = Field(
        default_factory=lambda: ["en"],
        description="languages C4's rules apply to: they were made for English (FineWeb-2 drops them elsewhere)",
    )


class C4Filter(TextRule):
    """C4's line filter (an edit: the lines it drops are counted by reason), then its document rules."""

    name = "c4"
    cfg: C4Config

    def applies(self, doc: dict[str, Any]) -> bool:
        return (doc.get("lang") or "en") in self.cfg.languages

    def measure(self, doc: dict[str, Any]) -> Iterator[Measurement]:
        return super().measure(doc) if self.applies(doc) else iter(())

    def edit(self, doc: dict[str, Any]) -> Counter:
        if not self.applies(doc):
            return Counter()
        doc["text"], dropped = self.clean(doc["text"], doc.get("lang"))
        return Counter({f"c4.lines_dropped.{reason}": n for reason, n in dropped.items()})

    def clean(self, text: str, lang: str | None = None) -> tuple[str, Counter]:
        """The text with C4's dropped lines removed, and why each line went; a line's words are its
        language's (whitespace for English, as C4 counts them)."""
        c = self.cfg
        kept, dropped = [], Counter()
        for line in text.splitlines():
            stripped = line.strip()
            if not stripped:
                kept.append(line)
                continue
            lower = stripped.lower()
            words = language(lang).words(stripped)
            if c.max_word_length is not None and any(len(w) > c.max_word_length for w in words):
                dropped["long_word"] += 1
            elif c.drop_no_terminal_punctuation and not stripped.endswith(TERMINAL_PUNCTUATION):
                dropped["no_terminal_punctuation"] += 1
            elif c.min_words_per_line is not None and len(words) < c.min_words_per_line:
                dropped["few_words"] += 1
            elif c.drop_javascript_lines and "javascript" in lower:
                dropped["javascript"] += 1
            elif c.drop_policy_lines and any(p in lower for p in POLICY_PHRASES):
                dropped["policy"] += 1
            else:
                kept.append(line)
        return "\n".join(kept).strip(), dropped

    def measure_text(self, text: str, lang: str | None = None) -> Iterator[Measurement]:
        """Document rules, on text already cleaned by `clean`."""
        c = self.cfg_for(lang)
        if c.remove_lorem_ipsum:
            yield Measurement("c4_lorem_ipsum", None, "lorem ipsum" not in text.lower())
        if c.remove_curly_bracket:
            yield Measurement("c4_curly_bracket", None, "{" not in text)
        if c.min_sentences is not None:
            sentences = len(SENTENCE_END.findall(text))
            yield at_least("c4_min_sentences", sentences, c.min_sentences)
