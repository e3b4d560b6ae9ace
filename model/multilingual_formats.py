"""Multilingual benchmark files in the shapes lm-evaluation-harness reads, with its prompts:
XCOPA (COPA in 11 languages: the premise, a connector word of the item's language, each choice),
XStoryCloze (four sentences, two endings), Belebele (a FLORES passage, a question, four lettered
answers), Okapi's translated ARC (`instruction`, `option_a`..`option_e`, `answer`: the harness's
arc_multilingual; its translated HellaSwag has HellaSwag's fields and loader), XNLI and PAWS-X (no
context: each choice is the whole sentence pair joined by the language's "right? Yes/Also/No"
words), and MMLU translated to other languages as CSV (OpenAI's MMMLU: Question,A,B,C,D,Answer;
Global-MMLU: question,option_a..option_d,answer). XWinograd is Winogrande's shape and loader.

The words of XCOPA (for "because" and "therefore"), XNLI and PAWS-X per language are the harness's
(lm-evaluation-harness, MIT licence: tasks/xcopa/utils.py, tasks/xnli/utils.py,
tasks/paws-x/_generate_config.py); a language without them is refused by name.
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

from model.items import Item, hellaswag_clean, mmlu_item

XCOPA_CONNECTORS = {
    "et": ("sest", "seetõttu"), "ht": ("poukisa", "donk sa"), "it": ("perché", "quindi"), "id": ("karena", "maka"),
    "qu": ("imataq", "chaymi"), "sw": ("kwa sababu", "kwa hiyo"), "zh": ("因为", "所以"), "ta": ("காரணமாக", "எனவே"),
    "th": ("เพราะ", "ดังนั้น"), "tr": ("çünkü", "bu yüzden"), "vi": ("bởi vì", "vì vậy"),
}  # fmt: skip
# XNLI: (the question word, entailment's word, neutral's, contradiction's)
XNLI_WORDS = {
    "ar": ("صحيح", "نعم", "لذا", "رقم"), "bg": ("правилно", "да", "така", "не"),
    "de": ("richtig", "Ja", "Auch", "Nein"),
    "el": ("σωστός", "Ναί", "Έτσι", "όχι"), "en": ("right", "Yes", "Also", "No"),
    "es": ("correcto", "Sí", "Asi que", "No"), "fr": ("correct", "Oui", "Aussi", "Non"),
    "hi": ("सही", "हाँ", "इसलिए", "नहीं"), "ru": ("правильно", "Да", "Так", "Нет"),
    "sw": ("sahihi", "Ndiyo", "Hivyo", "Hapana"), "th": ("ถูกต้อง", "ใช่", "ดังนั้น", "ไม่"),
    "tr": ("doğru", "Evet", "Böylece", "Hayır"), "ur": ("صحیح", "جی ہاں", "اس لئے", "نہیں"),
    "vi": ("đúng", "Vâng", "Vì vậy", "Không"), "zh": ("正确", "是的", "所以", "不是的"),
}  # fmt: skip
# PAWS-X: (the question word, "yes", "no")
PAWSX_WORDS = {
    "de": ("richtig", "Ja", "Nein"), "en": ("right", "Yes", "No"), "es": ("verdad", "Sí", "No"),
    "fr": ("n'est-ce pas", "Oui", "No"), "ja": ("ですね", "はい", "いいえ"), "ko": ("맞죠", "예", "아니요"),
    "zh": ("对吧", "是", "不是"),
}  # fmt: skip
PAWSX_CLEANED = ("de", "en", "es", "fr")  # the harness's paws_LANG tasks with process_docs
# format -> the languages it has words for (the benchmark's `language` must be one)
LANGUAGE_WORDS: dict[str, dict[str, tuple[str, ...]]] = {"xcopa": XCOPA_CONNECTORS, "xnli": XNLI_WORDS,
                                                         "pawsx": PAWSX_WORDS}  # fmt: skip


def words_for(fmt: str, language: str | None, path: str | Path) -> tuple[str, ...]:
    if language not in LANGUAGE_WORDS[fmt]:
        raise ValueError(f"{path}: {fmt} needs the file's language (benchmark `language`), one of "
                         f"{', '.join(sorted(LANGUAGE_WORDS[fmt]))}; got {language!r}")  # fmt: skip
    return LANGUAGE_WORDS[fmt][language]


def _rows(path: str | Path) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def load_xcopa(path: str | Path, task: str = "xcopa", language: str | None = None) -> list[Item]:
    cause, effect = words_for("xcopa", language, path)
    items = []
    for i, row in enumerate(_rows(path)):
        connector = cause if row["question"] == "cause" else effect
        choices = [" " + c[0].lower() + c[1:] for c in (row["choice1"], row["choice2"])]
        items.append(Item(task, str(row.get("idx", i)), row["premise"].strip()[:-1] + f" {connector}", choices,
                          int(row["label"])))  # fmt: skip
    return items


def load_xnli(path: str | Path, task: str = "xnli", language: str | None = None) -> list[Item]:
    """No context: choice k is `premise, right? WORD_k, hypothesis` after one space (entailment, neutral,
    contradiction; labels 0-2), as the harness's xnli_LANG tasks."""
    question, *labels = words_for("xnli", language, path)
    items = []
    for i, row in enumerate(_rows(path)):
        choices = [f" {row['premise']}, {question}? {word}, {row['hypothesis']}" for word in labels]
        items.append(Item(task, str(row.get("id", i)), "", choices, int(row["label"])))
    return items


def _detokenize(text: str) -> str:
    """The harness's PAWS-X clean-up: spaces before n't, brackets, quotes and . , ' removed."""
    for before, after in ((" n't", "n't"), (" )", ")"), ("( ", "("), ('" ', '"'), (' "', '"')):
        text = text.replace(before, after)
    return re.sub(r" (['.,])", r"\1", text)


def load_pawsx(path: str | Path, task: str = "pawsx", language: str | None = None) -> list[Item]:
    """No context, no delimiter: `sentence1, right? No, sentence2` (label 0: not a paraphrase) and
    `... Yes, ...`, as the harness's paws_LANG tasks; in the languages it cleans (German, English,
    Spanish, French: not Japanese, Korean, Chinese) sentence1 without its final . , or ; and sentence2
    lower-cased first, and pairs with an empty sentence left out."""
    question, yes, no = words_for("pawsx", language, path)
    items = []
    for i, row in enumerate(_rows(path)):
        first, second = row["sentence1"], row["sentence2"]
        if language in PAWSX_CLEANED:
            if not (first and second):
                continue
            first, second = _detokenize(first).strip(), _detokenize(second).strip()
            first = first[:-1] if first.endswith((".", ",", ";")) else first
            second = second[:1].lower() + second[1:]
        choices = [f"{first}, {question}? {word}, {second}" for word in (no, yes)]
        items.append(Item(task, str(row.get("id", i)), "", choices, int(row["label"])))
    return items


def load_okapi_arc(path: str | Path, task: str = "arc_multilingual") -> list[Item]:
    """Okapi's translated ARC (`alexandrainst/m_arc`): the harness's ARC prompt with HellaSwag's clean-up
    on the question and each option, up to five options (empty ones left out)."""
    items = []
    for i, row in enumerate(_rows(path)):
        options = [hellaswag_clean(o) for o in (row.get(f"option_{k}") for k in "abcde") if o]
        question = hellaswag_clean(row["instruction"])
        items.append(Item(task, str(row.get("id", i)), f"Question: {question}\nAnswer:", [" " + o for o in options],
                          "ABCDE".index(row["answer"].strip()), question=question, options=options))  # fmt: skip
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
