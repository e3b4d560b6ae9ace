"""One benchmark, two ways of asking (OLMES, Gu et al. 2024): cloze, where each answer's own text is the
continuation scored, and multiple choice, where the options are listed with letters in the prompt and
the letter is scored. Small models do better in cloze, larger ones in lettered multiple choice; OLMES
reports the better of the two per task and says which it was.

Built from an item's `question` and `options` (the loaders of ARC, OpenBookQA, CommonsenseQA, MMLU,
PIQA, Social IQa and HellaSwag keep them); the harness's own formulation stays the default.
"""

from __future__ import annotations

from dataclasses import replace

from model.items import Item

LETTERS = "ABCDEFGHIJ"
FORMULATIONS = ("harness", "cloze", "mc")
# The formats whose loaders keep each item's question and options.
WITH_OPTIONS = ("arc", "okapi_arc", "mmlu", "mmlu_jsonl", "piqa", "siqa", "hellaswag")


def cloze(item: Item) -> Item:
    """`Question: ...\\nAnswer:` and each option's text as the continuation (OLMES's cloze)."""
    return replace(item, context=f"Question: {item.question}\nAnswer:", choices=[" " + o for o in item.options],
                   contexts=None)  # fmt: skip


def lettered(item: Item) -> Item:
    """`Question: ...\\n A. ...\\n B. ...\\nAnswer:` and the letters as continuations (OLMES's MCF)."""
    listed = "".join(f" {LETTERS[i]}. {o}\n" for i, o in enumerate(item.options))
    return replace(item, context=f"Question: {item.question}\n{listed}Answer:",
                   choices=[f" {LETTERS[i]}" for i in range(len(item.options))], contexts=None)  # fmt: skip


def formulate(items: list[Item], formulation: str) -> list[Item]:
    """The items asked the given way; `harness`: as the loader made them (lm-evaluation-harness's)."""
    if formulation == "harness":
        return items
    if any(item.question is None or item.options is None for item in items):
        raise ValueError(f"formulation {formulation!r} needs each item's question and options: formats "
                         f"{', '.join(WITH_OPTIONS)} have them")  # fmt: skip
    return [(cloze if formulation == "cloze" else lettered)(item) for item in items]


# How a cloze answer's log-likelihood is normalised before the best is picked (OLMES section 3.4):
# none, per character, per token, or PMI (less its log-probability after `Answer:` alone). The key
# each one's accuracy has in a task's results:
NORMALIZATION_KEYS = {"none": "acc", "char": "acc_norm", "token": "acc_token", "pmi": "acc_pmi"}
# OLMES's choice per task for the cloze formulation, found by the benchmark's name (its start); the
# lettered formulation is never normalised (each answer is one letter).
OLMES_NORMALIZATION = {"arc_challenge": "pmi", "arc_easy": "char", "boolq": "none", "csqa": "pmi",
                       "commonsense_qa": "pmi", "hellaswag": "char", "mmlu": "char", "openbookqa": "pmi",
                       "obqa": "pmi", "piqa": "char", "siqa": "char", "social_iqa": "char",
                       "winogrande": "none"}  # fmt: skip


def olmes_normalization(name: str) -> str | None:
    """OLMES's normalisation for a benchmark by its name (`ARC-Challenge`, `arc_challenge_25`...)."""
    key = name.lower().replace("-", "_")
    return next((norm for task, norm in OLMES_NORMALIZATION.items() if key.startswith(task)), None)
