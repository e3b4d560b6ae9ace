"""The benchmark files teams keep on disk, read into `Item`s (no torch, nothing downloaded).

Formats, by the fields of a file's first row (`detect` recognises them for `format: auto`):
- llm-foundry / DCLM gauntlet ICL: multiple choice `{"query", "choices", "gold"}`, schema
  `{"context_options", "continuation", "gold"}`, language modelling `{"context", "continuation"}`;
- MMLU CSV (the original release without a header: question, four choices, answer letter; or the
  headed `question,choice0..choice3,answer` with an integer answer), one file or a directory of them,
  or the Hugging Face JSONL (`question`, `subject`, `choices`, `answer`); the subject's header as the
  harness writes it, and its dev split (`data/dev/` beside `data/test/`) for the shots;
- Winogrande `{"sentence", "option1", "option2", "answer"}`, scored as lm-evaluation-harness does:
  the sentence up to the blank with each option is the context, the rest of the sentence the
  continuation;
- LAMBADA (JSONL `text`, or plain lines): the last word, greedy match and perplexity;
- BoolQ, COPA, Social IQa (labels in the row or a `*-labels.lst` beside the file), OpenBookQA and
  CommonsenseQA (the AI2 question/choices/answerKey shape ARC has), HellaSwag, ARC, PIQA, generic.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from model.items import Item, load_arc, load_generic, load_hellaswag, load_piqa, mmlu_item, row_labels
from model.multilingual_formats import (
    LANGUAGE_WORDS,
    load_belebele,
    load_okapi_arc,
    load_pawsx,
    load_translated_mmlu,
    load_xcopa,
    load_xnli,
    load_xstorycloze,
    translated_mmlu_header,
)
from storage.errors import UserError

Loader = Callable[..., list[Item]]


def _rows(path: str | Path) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def _space(text: str) -> str:
    return text if text[:1].isspace() else " " + text


def load_icl_mc(path: str | Path, task: str = "icl_mc") -> list[Item]:
    return [Item(task, str(i), row["query"], [_space(c) for c in row["choices"]], int(row["gold"]))
            for i, row in enumerate(_rows(path))]  # fmt: skip


def load_icl_schema(path: str | Path, task: str = "icl_schema") -> list[Item]:
    items = []
    for i, row in enumerate(_rows(path)):
        n = len(row["context_options"])
        items.append(Item(task, str(i), row["context_options"][0], [_space(row["continuation"])] * n,
                          int(row["gold"]), contexts=list(row["context_options"])))  # fmt: skip
    return items


def load_icl_lm(path: str | Path, task: str = "icl_lm") -> list[Item]:
    return [Item(task, str(i), row["context"], [_space(row["continuation"])], 0, kind="lm")
            for i, row in enumerate(_rows(path))]  # fmt: skip


def _mmlu_files(path: str | Path) -> list[Path]:
    p = Path(path)
    return sorted(p.glob("*.csv")) if p.is_dir() else [p]


MMLU_SPLITS = ("_test", "_dev", "_val")


def mmlu_subject(file: Path) -> str:
    """`high_school_biology_test.csv` -> `high_school_biology` (the release's file names)."""
    stem = file.stem
    return next((stem.removesuffix(s) for s in MMLU_SPLITS if stem.endswith(s)), stem)


def load_mmlu(path: str | Path, task: str = "mmlu") -> list[Item]:
    """The original release's CSVs (no header; the answer a letter) or a headed export (integer answer)."""
    items = []
    for file in _mmlu_files(path):
        rows = list(csv.reader(file.open(encoding="utf-8")))
        headed = rows and [c.strip().lower() for c in rows[0][:1]] == ["question"]
        for i, row in enumerate(rows[1:] if headed else rows):
            answer = row[5].strip()
            label = int(answer) if headed else "ABCD".index(answer.upper())
            items.append(mmlu_item(task, f"{file.stem}:{i}", mmlu_subject(file), row[0], row[1:5], label))
    return items


def load_mmlu_jsonl(path: str | Path, task: str = "mmlu") -> list[Item]:
    """The Hugging Face export (cais/mmlu): `question`, `subject`, `choices` (four), `answer` (0-3)."""
    rows = _rows(path)
    return [mmlu_item(task, f"{r['subject']}:{i}", r["subject"], r["question"], r["choices"], int(r["answer"]))
            for i, r in enumerate(rows)]  # fmt: skip


def mmlu_dev_split(path: str | Path) -> Path | None:
    """The dev split the release keeps beside the test one (`data/test/` -> `data/dev/`), if there."""
    p = Path(path)
    folder = p if p.is_dir() else p.parent
    dev = folder.parent / "dev"
    return dev if folder.name in ("test", "val") and dev.is_dir() and any(dev.glob("*_dev.csv")) else None


def load_winogrande(path: str | Path, task: str = "winogrande") -> list[Item]:
    items = []
    for i, row in enumerate(_rows(path)):
        before, _, after = row["sentence"].partition("_")
        contexts = [before + row["option1"], before + row["option2"]]
        continuation = _space(after.strip())
        items.append(Item(task, str(row.get("qID", i)), contexts[0], [continuation] * 2, int(row["answer"]) - 1,
                          contexts=contexts))  # fmt: skip
    return items


def load_lambada(path: str | Path, task: str = "lambada") -> list[Item]:
    p = Path(path)
    texts = [r["text"] for r in _rows(p)] if p.suffix == ".jsonl" else p.read_text(encoding="utf-8").splitlines()
    items = []
    for i, text in enumerate(t.strip() for t in texts):
        if " " in text:
            context, word = text.rsplit(" ", 1)
            items.append(Item(task, str(i), context, [" " + word], 0, kind="lm"))
    return items


def load_boolq(path: str | Path, task: str = "boolq") -> list[Item]:
    items = []
    for i, row in enumerate(_rows(path)):
        answer = bool(row["answer"] if "answer" in row else row["label"])
        items.append(Item(task, str(i), f"{row['passage']}\nQuestion: {row['question']}?\nAnswer:", [" no", " yes"],
                          int(answer)))  # fmt: skip
    return items


def load_copa(path: str | Path, task: str = "copa") -> list[Item]:
    items = []
    for i, row in enumerate(_rows(path)):
        connector = {"cause": " because", "effect": " therefore"}[row["question"]]
        # As the harness's COPA: the premise's last character dropped, and each choice given a space of
        # its own before the target delimiter's (two in all; acc_norm counts one of them).
        choices = ["  " + c[0].lower() + c[1:] for c in (row["choice1"], row["choice2"])]
        items.append(Item(task, str(row.get("idx", i)), row["premise"].strip()[:-1] + connector, choices,
                          int(row["label"])))  # fmt: skip
    return items


def load_siqa(path: str | Path, task: str = "siqa") -> list[Item]:
    rows = _rows(path)
    keys = ("answerA", "answerB", "answerC")
    return [Item(task, str(i), f"Q: {row['context']} {row['question']}\nA:", [" " + row[k] for k in keys], label - 1,
                 question=f"{row['context']} {row['question']}", options=[row[k] for k in keys])
            for i, (row, label) in enumerate(zip(rows, row_labels(path, rows), strict=True))]  # fmt: skip


# format -> (loader, the fields a first row must have). JSONL formats are told apart by their fields.
FORMATS: dict[str, tuple[Loader, tuple[str, ...]]] = {
    "icl_mc": (load_icl_mc, ("query", "choices", "gold")),
    "icl_schema": (load_icl_schema, ("context_options", "continuation", "gold")),
    "winogrande": (load_winogrande, ("sentence", "option1", "option2", "answer")),
    "boolq": (load_boolq, ("question", "passage")),
    "copa": (load_copa, ("premise", "choice1", "choice2", "question")),
    "siqa": (load_siqa, ("context", "question", "answerA", "answerB", "answerC")),
    "hellaswag": (load_hellaswag, ("endings", "label")),
    "piqa": (load_piqa, ("goal", "sol1", "sol2")),
    "arc": (load_arc, ("question", "answerKey")),  # also OpenBookQA and CommonsenseQA
    "okapi_arc": (load_okapi_arc, ("instruction", "option_a", "answer")),  # translated ARC (arc_multilingual)
    "mmlu_jsonl": (load_mmlu_jsonl, ("question", "subject", "choices", "answer")),
    "xstorycloze": (load_xstorycloze, ("input_sentence_1", "sentence_quiz1", "answer_right_ending")),
    "belebele": (load_belebele, ("flores_passage", "question", "mc_answer1", "correct_answer_num")),
    "xnli": (load_xnli, ("premise", "hypothesis", "label")),  # with the benchmark's language
    "pawsx": (load_pawsx, ("sentence1", "sentence2", "label")),  # with the benchmark's language
    "xcopa": (load_xcopa, ()),  # COPA's fields: named (with the benchmark's language), never detected
    "translated_mmlu": (load_translated_mmlu, ()),  # CSV with MMMLU's or Global-MMLU's header
    "generic": (load_generic, ("context", "choices", "label")),
    "icl_lm": (load_icl_lm, ("context", "continuation")),
    "lambada": (load_lambada, ("text",)),
    "mmlu": (load_mmlu, ()),
}
ALIASES = {"openbookqa": "arc", "commonsense_qa": "arc"}


class FormatError(UserError):
    """A benchmark file that is not in the format named (or in none known)."""


def first_row(path: str | Path) -> tuple[str, dict[str, Any] | None]:
    """('csv' | 'jsonl' | 'text', the first JSON row or None)."""
    p = Path(path)
    if p.is_dir() or p.suffix == ".csv":
        return "csv", None
    with open(p, encoding="utf-8") as f:
        line = next((line for line in f if line.strip()), "")
    try:
        row = json.loads(line)
    except json.JSONDecodeError:
        return "text", None
    return ("jsonl", row) if isinstance(row, dict) else ("text", None)


def detect(path: str | Path) -> str:
    kind, row = first_row(path)
    if kind == "csv":
        return "translated_mmlu" if Path(path).is_file() and translated_mmlu_header(path) else "mmlu"
    if kind == "text":
        return "lambada"
    for name, (_, fields) in FORMATS.items():
        if fields and all(f in row for f in fields):
            return name
    raise FormatError(f"{path}: no known benchmark format has the fields {sorted(row)}; known: "
                      + "; ".join(f"{n} {list(f)}" for n, (_, f) in FORMATS.items() if f))  # fmt: skip


def check(path: str | Path, fmt: str) -> str:
    """The format to load `path` with (`auto` resolved); a clear error naming found and expected fields."""
    fmt = ALIASES.get(fmt, fmt)
    if fmt == "auto":
        return detect(path)
    kind, row = first_row(path)
    fields = FORMATS[fmt][1]
    if kind == "jsonl" and fields and not all(f in row for f in fields):
        raise FormatError(f"{path} is not {fmt}: its first row has the fields {sorted(row)}, {fmt} needs "
                          f"{list(fields)}")  # fmt: skip
    if fmt == "xcopa":
        fields = FORMATS["copa"][1]
        if kind != "jsonl" or not all(f in row for f in fields):
            raise FormatError(f"{path} is not xcopa: xcopa is JSONL with COPA's fields {list(fields)}")
        return fmt
    if fmt == "translated_mmlu":
        if kind != "csv" or not Path(path).is_file() or translated_mmlu_header(path) is None:
            raise FormatError(f"{path} is not translated_mmlu: a CSV file with MMMLU's header (Question,A,B,C,D,"
                              "Answer) or Global-MMLU's (question,option_a..option_d,answer)")  # fmt: skip
        return fmt
    if kind == "csv" and fmt != "mmlu":
        raise FormatError(f"{path} is CSV (read as mmlu); {fmt} files are JSONL")
    if kind != "csv" and fmt == "mmlu":
        found = f"JSONL with the fields {sorted(row)}" if row else "plain text"
        raise FormatError(f"{path} is not mmlu: it is {found}; mmlu is CSV (a file, or a directory of "
                          "per-subject CSVs)")  # fmt: skip
    if kind == "text" and fmt != "lambada":
        raise FormatError(f"{path} is not {fmt}: it is plain text (read as lambada); {fmt} files are JSONL")
    return fmt


def load(path: str | Path, fmt: str, task: str, language: str | None = None) -> list[Item]:
    fmt = check(path, fmt)
    if fmt in LANGUAGE_WORDS:  # prompts with words of the file's language
        return FORMATS[fmt][0](path, task=task, language=language)
    return FORMATS[fmt][0](path, task=task)
