"""Downstream tasks the pipeline builds from its own held-out documents, so every run has a score.

- cloze: choose the true next sentence among four; the three others come from other documents.
- last word (LAMBADA-style): predict a passage's final word; correct when every token of the word
  is the model's greedy choice.
"""

from __future__ import annotations

import random
import re

from model.items import Item

SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def _sentences(text: str) -> list[str]:
    return [s.strip() for s in SENTENCE_END.split(" ".join(text.split())) if s.strip()]


def _good(sentence: str) -> bool:
    return 5 <= len(sentence.split()) <= 40


def cloze_items(docs: list[tuple[str, str]], n_items: int, seed: int) -> list[Item]:
    """docs: (doc_id, text) of held-out documents."""
    rng = random.Random(seed)
    sentences = {doc_id: _sentences(text) for doc_id, text in docs}
    distractors = {d: [s for s in sents if _good(s)] for d, sents in sentences.items()}
    ids = sorted(d for d, s in distractors.items() if s)
    # A sentence and the one right after it, both of a sentence-like length.
    candidates = [(d, i) for d in ids for i in range(1, len(sentences[d]) - 1)
                  if _good(sentences[d][i]) and _good(sentences[d][i + 1])]  # fmt: skip
    if len(ids) < 4 or not candidates:
        return []
    items = []
    for doc_id, i in rng.sample(candidates, min(n_items, len(candidates))):
        sents = sentences[doc_id]
        others = rng.sample([d for d in ids if d != doc_id], 3)
        choices = [" " + sents[i + 1]] + [" " + rng.choice(distractors[d]) for d in others]
        order = list(range(4))
        rng.shuffle(order)
        items.append(Item("cloze", f"{doc_id}:{i}", " ".join(sents[max(0, i - 2) : i + 1]),
                          [choices[j] for j in order], order.index(0)))  # fmt: skip
    return items


def last_word_items(docs: list[tuple[str, str]], n_items: int, seed: int, context_words: int = 80) -> list[Item]:
    rng = random.Random(seed)
    candidates = []
    for doc_id, text in docs:
        for j, para in enumerate(p for p in re.split(r"\n\s*\n", text) if len(p.split()) >= 30):
            words = para.split()
            last = words[-1].rstrip(".,;:!?\"')")
            if last.isalpha() and len(last) >= 3:
                candidates.append(
                    Item("last_word", f"{doc_id}:{j}", " ".join(words[-context_words:-1]), [" " + last], 0, kind="lm")
                )
    return rng.sample(candidates, min(n_items, len(candidates)))
