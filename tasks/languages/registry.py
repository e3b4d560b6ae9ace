"""The one language registry: a language code -> its word segmenter, whether its script puts spaces
between words, its stop words and its published filter settings.

Codes are lid.176's (ISO 639-1 where one exists: `ja`, `zh`, `ru`). Stop words and settings are
FineWeb-2's (`fineweb2.json`, imported by `tasks/languages/fineweb2.py`; Apache License 2.0, see
NOTICE) for the 169 lid.176 languages it covers; English keeps Gopher's own stop words and the config's
thresholds, so English runs exactly as before. Adding a language is one line in `SEGMENTERS` (when it
needs more than whitespace) and, for settings, an entry in `fineweb2.json` or the user's config.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tasks.languages.segmenters import segmenter

# Gopher's stop words (Rae et al. 2021), the English list its rule was published with.
GOPHER_STOP_WORDS = frozenset({"the", "be", "to", "of", "and", "that", "have", "with"})

# Languages written with spaces whose words spaCy's rule-based tokenizer splits (punctuation, clitics,
# exceptions): every language spaCy 3 builds a blank tokenizer for without another package. English
# stays whitespace (Gopher's words); lid.176's `no` is spaCy's `nb`.
SPACY = ("af am ar az bg bn ca cs da de dsb el es et eu fa fi fo fr ga gd gu he hi hr hsb ht hu hy id is it kmr "
         "kn ky la lb lg lij lt lv mk ml mr ms nb ne nl nn pl pt ro ru sa si sk sl sq sr sv ta te ti tl tn tr tt uk "
         "ur yo").split()  # fmt: skip
# Languages that need more than whitespace. `letters`: a script without spaces between words and no
# segmenter here; each letter counts as a word.
SEGMENTERS = {
    **{code: f"spacy:{code}" for code in SPACY}, "no": "spacy:nb",
    "zh": "jieba", "wuu": "jieba", "yue": "jieba",
    "ja": "sudachi",
    "ko": "kiwi",
    "th": "thai",
    "lo": "letters", "km": "letters", "my": "letters", "bo": "letters",
}  # fmt: skip
# Scripts written without spaces between words: shingles and n-grams are taken over letters.
UNSPACED = frozenset({"zh", "wuu", "yue", "ja", "th", "lo", "km", "my", "bo"})
# Where a sentence ends: after . ! ? and a space, or after a full stop that takes no space (Chinese and
# Japanese 。！？, Devanagari ।, Arabic ؟ and ۔, Myanmar ။, Khmer ។); Thai and Lao mark none and end a
# sentence with a space.
SENTENCE_END = re.compile(r"(?<=[.!?])\s+|(?<=[。！？।॥؟۔။។])\s*")
SPACE_ENDS_SENTENCE = frozenset({"th", "lo"})
# How many characters of English text one character of the script carries, for length minimums
# (extract.min_text_chars): a Chinese or Japanese character about three (a 200-character page there
# says what 600 English characters do), a Hangul syllable block about two.
TEXT_WEIGHT = {"zh": 3.0, "wuu": 3.0, "yue": 3.0, "ja": 3.0, "ko": 2.0}


@dataclass(frozen=True)
class Language:
    code: str
    segmenter: str = "whitespace"
    spaced: bool = True
    stop_words: frozenset[str] = frozenset()
    settings: dict[str, Any] = field(default_factory=dict)  # FineWeb-2's, empty where none is published
    text_weight: float = 1.0

    def text_length(self, text: str) -> float:
        """The text's length in English characters' worth (see TEXT_WEIGHT)."""
        return len(text) * self.text_weight

    def words(self, text: str) -> list[str]:
        return segmenter(self.segmenter)(text)


@functools.cache
def published_settings() -> dict[str, dict[str, Any]]:
    return json.loads((Path(__file__).with_name("fineweb2.json")).read_text())["languages"]


@functools.cache
def language(code: str | None) -> Language:
    """The registry's entry for a language code (whitespace and no settings for an unknown one)."""
    code = code or "en"
    if code == "en":
        return Language("en", stop_words=GOPHER_STOP_WORDS)
    settings = published_settings().get(code, {})
    return Language(code, SEGMENTERS.get(code, "whitespace"), code not in UNSPACED,
                    frozenset(settings.get("stopwords", ())), settings, TEXT_WEIGHT.get(code, 1.0))  # fmt: skip


def words(text: str, lang: str | None) -> list[str]:
    """The words of `text` as its language counts them."""
    return language(lang).words(text)


def sentences(text: str, lang: str | None) -> list[str]:
    """The sentences of `text` as its language ends them (whitespace inside collapsed to one space)."""
    flat = " ".join(text.split())
    parts = flat.split(" ") if lang in SPACE_ENDS_SENTENCE else SENTENCE_END.split(flat)
    return [s.strip() for s in parts if s.strip()]


def known_languages() -> list[str]:
    return sorted({"en", *published_settings(), *SEGMENTERS})
