"""Character classes that hold in every script.

Python's `\\w` leaves out combining marks, and most Indic and South-East Asian vowels are marks
(Devanagari's ि, Thai's ี): with `\\w` a Hindi word splits into letters and "punctuation". These
classes keep a letter and its marks together (the `regex` module knows Unicode's mark category).
"""

from __future__ import annotations

import regex

# A word or a run of punctuation, as Gopher's repetition rules count them.
WORD_OR_PUNCT = regex.compile(r"[\w\p{M}]+|[^\w\p{M}\s]+")
# Letters, digits and marks of any script (no underscore): the words decontamination compares.
ALNUM_RUN = regex.compile(r"(?:[^\W_]|\p{M})+")
# Punctuation and symbols: neither a word character, a mark nor white space.
PUNCT = regex.compile(r"[^\w\p{M}\s]")
