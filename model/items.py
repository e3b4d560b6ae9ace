"""Benchmark items and their loaders, without torch: tokenize decontaminates against them, evaluate scores them.

Each item is a context and a list of continuations (`model.benchmarks` scores them). Loaders read the
published files from local paths: HellaSwag JSONL, ARC (AI2 JSONL or the flat HF export), PIQA
(JSONL plus its labels file) and a generic `{"context", "choices", "label"}` JSONL.
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import asdict, dataclass, replace
from pathlib import Path


@dataclass
class Item:
    task: str
    item_id: str
    context: str
    choices: list[str]  # continuations, each starting with its delimiter (usually a space)
    label: int
    # Schema items (Winogrande, llm-foundry's schema format): one context per choice, each followed
    # by the same continuation; choice i is scored as contexts[i] + choices[i].
    contexts: list[str] | None = None
    kind: str = "mc"  # "mc": pick the best choice; "lm": greedy match of the one continuation (LAMBADA)
    # What the prompt opens with before any shots (MMLU's "The following are multiple choice questions
    # (with answers) about SUBJECT.\n\n"); items with the same description share their shots' pool.
    description: str = ""
    # The question and its answer options, where the format has them: another formulation (OLMES's
    # lettered multiple choice, or cloze) is built from these (`model.formulations`).
    question: str | None = None
    options: list[str] | None = None

    def context_of(self, choice: int) -> str:
        return self.description + (self.contexts[choice] if self.contexts else self.context)

    def gold(self) -> str:
        """The solved item without the description: a shot's text, and what decontamination looks for."""
        return (self.contexts[self.label] if self.contexts else self.context) + self.choices[self.label]


def _jsonl(path: str | Path) -> list[dict]:
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def hellaswag_clean(text: str) -> str:
    # The harness's preprocessing: WikiHow artifacts out, double spaces collapsed.
    text = text.strip().replace(" [title]", ". ")
    text = re.sub(r"\[.*?\]", "", text)
    return text.replace("  ", " ")


def load_hellaswag(path: str | Path, task: str = "hellaswag") -> list[Item]:
    items = []
    for i, row in enumerate(_jsonl(path)):
        # The harness's context: ctx_a and ctx_b capitalized (the published `ctx` leaves ctx_b lower-case).
        ctx = f"{row['ctx_a']} {row['ctx_b'].capitalize()}" if "ctx_a" in row else row["ctx"]
        context = hellaswag_clean(f"{row.get('activity_label', '')}: {ctx}")
        choices = [" " + hellaswag_clean(e) for e in row["endings"]]
        items.append(Item(task, str(row.get("ind", i)), context, choices, int(row["label"]), question=context,
                          options=[c[1:] for c in choices]))  # fmt: skip
    return items


def load_arc(path: str | Path, task: str = "arc") -> list[Item]:
    items = []
    for i, row in enumerate(_jsonl(path)):
        q = row["question"]
        if isinstance(q, dict):  # AI2 release: {"question": {"stem", "choices": [{"text", "label"}]}}
            stem, texts, labels = q["stem"], [c["text"] for c in q["choices"]], [c["label"] for c in q["choices"]]
        else:  # flat export: {"question", "choices": {"text": [...], "label": [...]}}
            stem, texts, labels = q, row["choices"]["text"], row["choices"]["label"]
        # Some ARC items label choices 1-4 instead of A-D.
        key = str(row["answerKey"])
        items.append(Item(task, str(row.get("id", i)), f"Question: {stem}\nAnswer:", [" " + t for t in texts],
                          [str(label) for label in labels].index(key), question=stem, options=texts))  # fmt: skip
    return items


def row_labels(path: str | Path, rows: list[dict]) -> list[int]:
    """Each row's `label`, or the line of the `<stem>-labels.lst` published beside the file (PIQA, SIQA)."""
    labels_file = Path(path).with_name(Path(path).stem + "-labels.lst")
    listed = labels_file.read_text().split() if labels_file.exists() else None
    out = []
    for i, row in enumerate(rows):
        if "label" not in row and listed is None:
            raise ValueError(f"{path}: item {i} has no label and {labels_file.name} is missing")
        out.append(int(row["label"]) if "label" in row else int(listed[i]))
    return out


def load_piqa(path: str | Path, task: str = "piqa") -> list[Item]:
    rows = _jsonl(path)
    items = []
    for i, (row, label) in enumerate(zip(rows, row_labels(path, rows), strict=True)):
        items.append(Item(task, str(row.get("id", i)), f"Question: {row['goal']}\nAnswer:",
                          [" " + row["sol1"], " " + row["sol2"]], label, question=row["goal"],
                          options=[row["sol1"], row["sol2"]]))  # fmt: skip
    return items


def mmlu_item(task: str, item_id: str, subject: str, question: str, options: list[str], label: int) -> Item:
    """The harness's MMLU prompt: the subject's header, the question, lettered choices, `Answer:`; the
    choices are the letters."""
    lettered = "".join(f"\n{letter}. {text}" for letter, text in zip("ABCD", options, strict=True))
    header = f"The following are multiple choice questions (with answers) about {subject.replace('_', ' ')}.\n\n"
    return Item(task, item_id, f"{question.strip()}{lettered}\nAnswer:", [" A", " B", " C", " D"], label,
                description=header, question=question.strip(), options=list(options))  # fmt: skip


def load_generic(path: str | Path, task: str = "generic") -> list[Item]:
    items = []
    for i, row in enumerate(_jsonl(path)):
        choices = [c if c[:1].isspace() else " " + c for c in row["choices"]]
        items.append(Item(task, str(row.get("id", i)), row["context"], choices, int(row["label"])))
    return items


def with_few_shot(items: list[Item], shots: int, seed: int, pool: list[Item] | None = None,
                  first_n: bool = False) -> list[Item]:  # fmt: skip
    """Prefix each item with `shots` solved examples: from `pool` (a dev or train split) when given, else
    from the file's other items; never the item itself; only examples with the same description (MMLU's
    subject). `first_n`: the pool's first ones in file order (the harness's MMLU), else a seeded draw."""
    if shots <= 0:
        return items
    rng = random.Random(seed)
    by_description: dict[str, list[Item]] = {}
    for x in items if pool is None else pool:
        by_description.setdefault(x.description, []).append(x)
    out = []
    for item in items:
        candidates = [x for x in by_description.get(item.description, []) if x.gold() != item.gold()]
        examples = candidates[:shots] if first_n else rng.sample(candidates, min(shots, len(candidates)))
        prefix = "".join(x.gold() + "\n\n" for x in examples)
        contexts = [prefix + c for c in item.contexts] if item.contexts else None
        out.append(replace(item, context=prefix + item.context, contexts=contexts))
    return out


def items_as_rows(items: list[Item]) -> list[dict]:
    return [asdict(item) | {"text": item.gold()} for item in items]


def items_from_rows(rows: list[dict]) -> list[Item]:
    return [Item(r["task"], r["item_id"], r["context"], r["choices"], r["label"], r.get("contexts"),
                 r.get("kind", "mc"), r.get("description", ""), r.get("question"), r.get("options"))
            for r in rows]  # fmt: skip
