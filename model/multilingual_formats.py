"""Multilingual benchmark files in the shapes lm-evaluation-harness reads, with its prompts:
XCOPA (COPA in 11 languages: the premise, a connector word of the item's language, each choice),
XStoryCloze (four sentences, two endings), Belebele (a FLORES passage, a question, four lettered
answers), and MMLU translated to other languages as CSV (OpenAI's MMMLU: Question,A,B,C,D,Answer;
Global-MMLU: question,option_a..option_d,answer). XWinograd is Winogrande's shape and loader.

XCOPA's connectors (the words for "because" and "therefore") are the harness's (lm-evaluation-harness,
MIT licence, tasks/xcopa/utils.py); a language without one is refused by name.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from model.items import Item, mmlu_item

XCOPA_CONNECTORS = {
    "et": ("sest", "seetõttu"), "ht": ("poukisa", "donk sa"), "it": ("perché", "quindi"), "id": ("karena", "maka"),
    "qu": ("imataq", "chaymi"), "sw": ("kwa sababu", "kwa hiyo"), "zh": ("因为", "所以"), "ta": ("காரணமாக", "எனவே"),
    "th": ("เพราะ", "ดังนั้น"), "tr": ("çünkü", "bu yüzden"), "vi": ("bởi vì", "vì vậy"),
}  # fmt: skip


def _rows(path: str | Path) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def load_xcopa(path: str | Path, task: str = "xcopa", language: str | None = None) -> list[Item]:
    if language not in XCOPA_CONNECTORS:
        raise ValueError(f"{path}: XCOPA needs the file's language (benchmark `language`), one of "
                         f"{', '.join(sorted(XCOPA_CONNECTORS))}; got {language!r}")  # fmt: skip
    cause, effect = XCOPA_CONNECTORS[language]
    items = []
    for i, row in enumerate(_rows(path)):
        connector = cause if row["question"] == "cause" else effect
        choices = [" " + c[0].lower() + c[1:] for c in (row["choice1"], row["choice2"])]
        items.append(Item(task, str(row.get("idx", i)), row["premise"].strip()[:-1] + f" {connector}", choices,
                          int(row["label"])))  # fmt: skip
    return items


def load_xstorycloze(path: str | Path, task: str = "xstorycloze") -> list[Item]:
    items = []
    for i, row in enumerate(_rows(path)):
        story = " ".join(row[f"input_sentence_{k}"] for k in range(1, 5))
        endings = [row["sentence_quiz1"], row["sentence_quiz2"]]
        items.append(Item(task, str(row.get("story_id", i)), story, [" " + e for e in endings],
                          int(row["answer_right_ending"]) - 1, question=story, options=endings))  # fmt: skip
    return items


def load_belebele(path: str | Path, task: str = "belebele") -> list[Item]:
    items = []
    for i, row in enumerate(_rows(path)):
        answers = [row[f"mc_answer{k}"] for k in range(1, 5)]
        lettered = "".join(f"{letter}: {a}\n" for letter, a in zip("ABCD", answers, strict=True))
        prompt = f"P: {row['flores_passage']}\nQ: {row['question'].strip()}\n{lettered}Answer:"
        items.append(Item(task, f"{row.get('link', '')}:{row.get('question_number', i)}", prompt,
                          [" A", " B", " C", " D"], ["1", "2", "3", "4"].index(str(row["correct_answer_num"])),
                          question=f"{row['flores_passage']}\n{row['question'].strip()}", options=answers))  # fmt: skip
    return items


# A translated MMLU's header: (question, the four options, the answer letter, the subject) columns.
TRANSLATED_MMLU_HEADERS = (
    ("Question", ("A", "B", "C", "D"), "Answer", "Subject"),
    ("question", ("option_a", "option_b", "option_c", "option_d"), "answer", "subject"),
)


def translated_mmlu_header(path: str | Path) -> tuple | None:
    with open(path, encoding="utf-8") as f:
        first = next(csv.reader(f), [])
    return next((h for h in TRANSLATED_MMLU_HEADERS if {h[0], *h[1], h[2]} <= set(first)), None)


def load_translated_mmlu(path: str | Path, task: str = "mmlu") -> list[Item]:
    """MMMLU / Global-MMLU CSV: the harness's MMLU prompt (question, lettered choices, `Answer:`), the
    subject's header in English as the harness's translated MMLU tasks keep it."""
    question, options, answer, subject = translated_mmlu_header(path)
    with open(path, encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    return [mmlu_item(task, f"{Path(path).stem}:{i}", row.get(subject) or "general", row[question],
                      [row[o] for o in options], "ABCD".index(row[answer].strip().upper()))
            for i, row in enumerate(rows)]  # fmt: skip
