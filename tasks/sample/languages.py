"""The sample's pages in other languages (`acquire.sample_languages`): articles, and in each language
its own near-duplicates, spam and boilerplate-only pages.

Packages ship little prose outside English, so every language's articles are made the same way, from
that language's own words: the gettext catalogs' translations (English: the catalogs' message ids, the
same messages in the original) give the content words, drawn by their frequency, and FineWeb-2's stop
words give the function words, at one function word in three. English made this way is the yardstick
for "the same quality": a filter that keeps English articles and removes Japanese ones made identically
treats the language, not the text, as the defect.
"""

from __future__ import annotations

import functools
import random
import unicodedata
from collections import Counter

from storage.errors import UserError
from tasks.sample.planted import Page

# Sentence ends: the language's full stop, and whether sentences are separated by a space.
FULL_STOP = {"zh": "。", "ja": "。", "wuu": "。", "yue": "。", "hi": "।", "th": ""}
FUNCTION_WORD_SHARE = 1 / 3
LANGUAGE_CASES = ("near_duplicate", "spam", "boilerplate_only")


@functools.cache
def _words_of(lang: str) -> tuple[list[str], list[str]]:
    """(content words most frequent first, function words) of the language, as its registry counts words."""
    from tasks.languages import language, words
    from tasks.sample.sources import source_messages, translation_texts

    texts = source_messages() if lang == "en" else translation_texts().get(lang, [])
    # The language's own words, not the product names and codes the catalogs carry.
    # Spaced languages keep their written word forms (Korean's morphemes would not rejoin into text).
    spaced = language(lang).spaced
    counts = Counter(
        w.lower()
        for t in texts
        for w in (t.split() if spaced else words(t, lang))
        if _is_word(w, ascii_ok=language(lang).settings.get("script", "Latn") == "Latn", min_len=2 if spaced else 1)
    )
    function = sorted(w for w in language(lang).stop_words if _is_word(w, ascii_ok=True))
    content = [w for w, _ in sorted(counts.items(), key=lambda wc: (-wc[1], wc[0])) if w not in function]
    if len(content) < 50 or not function:
        raise UserError(
            f"sample: not enough text in {lang!r} among the installed packages' catalogs",
            hint=f"languages with text here: {', '.join(sorted(available_languages()))}",
        )
    return content, function


def _is_word(word: str, ascii_ok: bool, min_len: int = 1) -> bool:
    """Letters and combining marks only (Thai and Devanagari vowels are marks)."""
    return (
        len(word) >= min_len
        and all(unicodedata.category(c)[0] in "LM" for c in word)
        and (ascii_ok or not word.isascii())
    )


@functools.cache
def available_languages() -> list[str]:
    from tasks.sample.sources import translation_texts

    texts = translation_texts()
    return sorted({"en", *(lang for lang, t in texts.items() if "_" not in lang and len(" ".join(t)) > 2000)})


class _Writer:
    """Sentences in one language: content words by Zipf's law, function words between them."""

    def __init__(self, lang: str, rng: random.Random):
        from tasks.languages import language

        self.lang, self.rng = lang, rng
        self.content, self.function = _words_of(lang)
        self.weights = [1.0 / (rank + 1) for rank in range(len(self.content))]
        self.spaced = language(lang).spaced
        self.stop = FULL_STOP.get(lang, ".")

    def words(self, n: int) -> list[str]:
        picks = self.rng.choices(self.content, self.weights, k=n)
        return [self.rng.choice(self.function) if self.rng.random() < FUNCTION_WORD_SHARE else w for w in picks]

    def sentence(self) -> str:
        words = self.words(self.rng.randint(8, 18))
        if not self.spaced:
            return "".join(words) + self.stop
        return " ".join([words[0][:1].upper() + words[0][1:], *words[1:]]) + self.stop

    def paragraph(self) -> str:
        sentences = [self.sentence() for _ in range(self.rng.randint(3, 6))]
        return (" " if self.spaced or not self.stop else "").join(sentences)

    def title(self) -> str:
        return (" " if self.spaced else "").join(self.words(self.rng.randint(3, 6)))


def language_pages(languages: list[str], articles: int, planted: int, seed: int) -> list[Page]:
    """`articles` articles per language, and `planted` of each of its planted cases."""
    pages = []
    for lang in languages:
        rng = random.Random(f"{seed}:{lang}")
        writer = _Writer(lang, rng)
        host = f"{lang}.news-portal.example"
        originals = [
            Page(writer.title(), [writer.paragraph() for _ in range(rng.randint(3, 5))], host, f"/article-{i}.html",
                 lang=lang)
            for i in range(articles)
        ]  # fmt: skip
        pages += originals
        for i in range(planted):
            src = originals[i]
            near = _near_copy(src.paragraphs, writer, rng)
            mirror = f"mirror.{lang}.example"
            pages.append(Page(src.title, near, mirror, src.path, "near_duplicate", src.url, lang=lang))
            # Keyword stuffing: one short phrase again and again, a keyword changed here and there.
            phrase, stuffing = writer.words(4), writer.words(6)
            spam = [(" " if writer.spaced else "").join(w for _ in range(15) for w in [*phrase, rng.choice(stuffing)])
                    for _ in range(5)]  # fmt: skip
            pages.append(Page(stuffing[0], spam, f"deals.{lang}.example", f"/offer-{i}.html", "spam", lang=lang))
            pages.append(Page(writer.title(), [], host, f"/landing-{i}.html", "boilerplate_only", lang=lang))
    return pages


def _near_copy(paragraphs: list[str], writer: _Writer, rng: random.Random) -> list[str]:
    """An edited copy: a script with spaces gets one word in a hundred replaced, one without one letter
    in a hundred (1% of its "words" either way; a shingle Jaccard of about 0.9 with the original)."""
    if not writer.spaced:
        return [_change_letters(p, 0.01, rng) for p in paragraphs]
    words = [p.split(" ") for p in paragraphs]
    spots = [(i, j) for i, para in enumerate(words) for j in range(len(para))]
    for i, j in rng.sample(spots, max(1, len(spots) // 100)):
        words[i][j] = writer.words(1)[0]
    return [" ".join(para) for para in words]


def _change_letters(text: str, share: float, rng: random.Random) -> str:
    """The text with `share` of its letters replaced by other letters of the same text."""
    letters = list(text)
    positions = [i for i, c in enumerate(letters) if c.isalpha()]
    pool = [letters[i] for i in positions]
    for i in rng.sample(positions, max(1, round(len(positions) * share))):
        letters[i] = rng.choice(pool)
    return "".join(letters)
