"""Text identity shared by dedup and the yardstick: normalization, exact keys, word shingles, Jaccard."""

from __future__ import annotations

import hashlib
import re
import unicodedata

from tasks.languages import language
from tasks.languages.chars import PUNCT
from tasks.languages.segmenters import letters

# The same map for ASCII text, as one str.translate (twice as fast as the regex): NFKC changes no ASCII.
ASCII_PUNCT_TO_SPACE = str.maketrans({chr(c): " " for c in range(128) if not re.match(r"[\w\s]", chr(c))})


def normalize(text: str, lang: str | None = None) -> str:
    """Case, Unicode form, punctuation and whitespace do not make documents different. In a language
    written without spaces between words (Chinese, Japanese, Thai ...) each letter becomes a word, so
    word shingles are letter n-grams there (a Japanese clause is not one "word")."""
    if text.isascii():
        return " ".join(text.lower().translate(ASCII_PUNCT_TO_SPACE).split())
    text = unicodedata.normalize("NFKC", text).lower()
    if not language(lang).spaced:
        return " ".join(letters(text))
    return " ".join(PUNCT.sub(" ", text).split())


def exact_key(normalized: str) -> bytes:
    return hashlib.blake2b(normalized.encode(), digest_size=16).digest()


def shingles(normalized: str, k: int) -> set[bytes]:
    """Word k-grams; a document shorter than k words is one shingle."""
    words = normalized.split()
    if len(words) < k:
        return {" ".join(words).encode()}
    return {" ".join(words[i : i + k]).encode() for i in range(len(words) - k + 1)}


def jaccard(a: set[bytes], b: set[bytes]) -> float:
    if not a and not b:
        return 1.0
    return len(a & b) / len(a | b)
