"""Word segmenters: a language's text as the words its statistics count.

English keeps whitespace (Gopher's definition: the sample's figures do not move). The 70 languages
written with spaces that spaCy has a tokenizer for use it (`spacy.blank(code)`, its punctuation and
exception rules, as datatrove and FineWeb-2 count words); the others, and any language when spaCy is
not installed, fall back to whitespace, stated. Chinese (jieba), Japanese
(SudachiPy, core dictionary), Korean (Kiwi) and Thai (PyThaiNLP's newmm) have dedicated segmenters, the
`languages` extra; a script written without spaces whose segmenter is not installed, or that has none
here (Lao, Khmer, Burmese, Tibetan), counts each letter as a word, which keeps word counts and n-grams
meaningful instead of treating a whole clause as one word. Each segmenter is loaded once per process,
when a document of its language first needs it.
"""

from __future__ import annotations

import functools
import logging
import re
import unicodedata
from collections.abc import Callable

log = logging.getLogger("crawl2model")

Segmenter = Callable[[str], list[str]]


def whitespace(text: str) -> list[str]:
    return text.split()


# A letter or a digit: `\w` without the underscore is exactly Unicode's categories L and N (checked over
# every code point in the tests), and one regex search is several times faster than a loop over them.
LETTER_OR_DIGIT = re.compile(r"[^\W_]")


def _is_word(token: str) -> bool:
    """A token with a letter or a digit in it (punctuation and spaces are not words)."""
    return LETTER_OR_DIGIT.search(token) is not None


def letters(text: str) -> list[str]:
    """Each letter or digit of a script without word boundaries as a word; runs of Latin letters or
    digits inside it (a product name, a year) stay one word."""
    out: list[str] = []
    run = ""
    for ch in text:
        if ch.isascii() and ch.isalnum():
            run += ch
            continue
        if run:
            out.append(run)
            run = ""
        category = unicodedata.category(ch)[0]
        if category in "LN":
            out.append(ch)
        elif category == "M" and out:
            out[-1] += ch  # a vowel sign or tone mark belongs to its letter (Thai, Lao, Khmer ...)
    if run:
        out.append(run)
    return out


# Scripts written without spaces between words, by the first word of their letters' Unicode names.
UNSPACED_SCRIPTS = frozenset({"CJK", "HIRAGANA", "KATAKANA", "THAI", "LAO", "KHMER", "MYANMAR", "TIBETAN"})


@functools.cache
def unspaced_letter(ch: str) -> bool:
    return unicodedata.name(ch, "").split(" ", 1)[0] in UNSPACED_SCRIPTS


def script_words(token: str) -> list[str]:
    """A run of letters split where no language tag is at hand (benchmark items): letters of scripts
    written without spaces each on their own, runs of the other scripts whole."""
    if token.isascii() or not any(unspaced_letter(ch) for ch in token):
        return [token]
    out, run = [], ""
    for ch in token:
        if unspaced_letter(ch):
            out += [run, ch] if run else [ch]
            run = ""
        else:
            run += ch
    return out + ([run] if run else [])


@functools.cache
def _jieba() -> Segmenter:
    import jieba

    jieba.setLogLevel(logging.WARNING)
    return lambda text: [t for t in jieba.lcut(text) if _is_word(t)]


@functools.cache
def _sudachi() -> Segmenter:
    from sudachipy import Dictionary, SplitMode

    tokenizer = Dictionary(dict="core").create(mode=SplitMode.C)
    # Sudachi refuses inputs over ~49 kB: segment line by line.
    return lambda text: [m.surface() for line in text.splitlines() for m in tokenizer.tokenize(line[:12_000])
                         if _is_word(m.surface())]  # fmt: skip


@functools.cache
def _kiwi() -> Segmenter:
    from kiwipiepy import Kiwi

    kiwi = Kiwi()
    return lambda text: [t.form for t in kiwi.tokenize(text) if _is_word(t.form)]


@functools.cache
def _thai() -> Segmenter:
    from pythainlp.tokenize import word_tokenize

    return lambda text: [t for t in word_tokenize(text, engine="newmm", keep_whitespace=False) if _is_word(t)]


@functools.cache
def _spacy(code: str) -> Segmenter:
    import spacy

    tokenizer = spacy.blank(code).tokenizer  # rules only: no model, nothing downloaded
    return lambda text: [t.text for t in tokenizer(text) if _is_word(t.text)]


LOADERS: dict[str, Callable[[], Segmenter]] = {"jieba": _jieba, "sudachi": _sudachi, "kiwi": _kiwi, "thai": _thai}


def _remembering(segment: Segmenter) -> Segmenter:
    """A dedicated segmenter costs milliseconds a document and the filter asks it several times for the
    same text (Gopher's quality and repetition rules, FineWeb's, the word count): the last few results
    are kept (a copy is returned each time, so no caller can change what another one reads)."""
    recent = functools.lru_cache(maxsize=8)(lambda text: tuple(segment(text)))
    return lambda text: list(recent(text))


@functools.cache
def segmenter(name: str) -> Segmenter:
    """The segmenter called `name`; `letters` in place of a dedicated one that is not installed (said once)."""
    if name == "whitespace":
        return whitespace
    if name == "letters":
        return letters
    if name.startswith("spacy:"):
        try:
            return _remembering(_spacy(name.removeprefix("spacy:")))
        except ImportError:
            log.warning("spaCy is not installed (pip install 'crawl2model[languages]'): whitespace words for %r",
                        name.removeprefix("spacy:"))  # fmt: skip
            return whitespace
    try:
        return _remembering(LOADERS[name]())
    except ImportError:
        log.warning("word segmenter %r is not installed (pip install 'crawl2model[languages]'): counting "
                    "letters as words for its language", name)  # fmt: skip
        return letters
