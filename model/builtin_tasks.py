"""Downstream tasks the pipeline builds from its own held-out documents, so every run has a score.

- cloze: choose the true next sentence among four; the three others come from other documents.
- last word (LAMBADA-style): predict a passage's final word; correct when every token of the word
  is the model's greedy choice.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable

from model.items import Item

SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
# (text, language) -> its sentences, or its words: the tokenize stage passes the language registry's.
Splitter = Callable[[str, str | None], list[str]]


def plain_sentences(text: str, lang: str | None = None) -> list[str]:
    return [s.strip() for s in SENTENCE_END.split(" ".join(text.split())) if s.strip()]


def plain_words(text: str, lang: str | None = None) -> list[str]:
    return text.split()


def cloze_items(docs: list[tuple[str, str, str | None]], n_items: int, seed: int,
                sentences_of: Splitter = plain_sentences, words_of: Splitter = plain_words) -> list[Item]:  # fmt: skip
    """docs: (doc_id, text, language) of held-out documents; sentences and words as each language
    has them (Chinese ends a sentence with 。 and no space, Thai with a space and no mark)."""
    rng = random.Random(seed)
    sentences = {doc_id: sentences_of(text, lang) for doc_id, text, lang in docs}
    lang_of = {doc_id: lang for doc_id, _, lang in docs}
    # Each sentence segmented once: of a sentence-like length or not.
    good = {d: [5 <= len(words_of(s, lang_of[d])) <= 40 for s in sents] for d, sents in sentences.items()}
    distractors = {d: [s for s, ok in zip(sents, good[d], strict=True) if ok] for d, sents in sentences.items()}
    ids = sorted(d for d, s in distractors.items() if s)
    # Wrong answers come from other documents in the same language (another script would give it away).
    same_language: dict[str | None, list[str]] = {}
    for d in ids:
        same_language.setdefault(lang_of[d], []).append(d)
    # A sentence and the one right after it, both of a sentence-like length.
    candidates = [(d, i) for d in ids if len(same_language[lang_of[d]]) >= 4 for i in range(1, len(sentences[d]) - 1)
                  if good[d][i] and good[d][i + 1]]  # fmt: skip
    if not candidates:
        return []
    items = []
    for doc_id, i in rng.sample(candidates, min(n_items, len(candidates))):
        sents = sentences[doc_id]
        others = rng.sample([d for d in same_language[lang_of[doc_id]] if d != doc_id], 3)
        choices = [" " + sents[i + 1]] + [" " + rng.choice(distractors[d]) for d in others]
        order = list(range(4))
        rng.shuffle(order)
        items.append(Item("cloze", f"{doc_id}:{i}", " ".join(sents[max(0, i - 2) : i + 1]),
                          [choices[j] for j in order], order.index(0)))  # fmt: skip
    return items


def last_word_items(docs: list[tuple[str, str, str | None]], n_items: int, seed: int,
                    context_words: int = 80) -> list[Item]:  # fmt: skip
    """A paragraph's last word after whitespace: scripts written with spaces between words."""
    rng = random.Random(seed)
    candidates = []
    for doc_id, text, _ in docs:
        for j, para in enumerate(p for p in re.split(r"\n\s*\n", text) if len(p.split()) >= 30):
            words = para.split()
            last = words[-1].rstrip(".,;:!?\"')")
            if last.isalpha() and len(last) >= 3:
                candidates.append(
                    Item("last_word", f"{doc_id}:{j}", " ".join(words[-context_words:-1]), [" " + last], 0, kind="lm")
                )
    return rng.sample(candidates, min(n_items, len(candidates)))
