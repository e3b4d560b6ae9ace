"""The sample's instruction set and preference pairs, built offline from the standard library.

Each question asks what a standard-library function does; the answer is the first sentence of its
docstring (human-written text on every Python install). Some prompts add verifiable constraints
(`tasks.instructions`): the answer follows them. A preference pair's chosen answer follows the
prompt's constraints and its rejected one does not, or (a plain question) is the right docstring
against another function's. Functions are split by a hash of their name: the
held-out ones are never trained on and give the chat evaluation's prompts.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import inspect
import re
from typing import Any

from tasks.instructions import InstructionPrompt

MODULES = (
    "base64", "bisect", "calendar", "codecs", "colorsys", "copy", "csv", "datetime", "difflib", "filecmp",
    "fnmatch", "fractions", "functools", "glob", "gzip", "hashlib", "heapq", "html", "inspect", "ipaddress",
    "itertools", "json", "keyword", "locale", "math", "operator", "os", "os.path", "pathlib", "platform", "pprint",
    "random", "re", "secrets", "shlex", "shutil", "statistics", "string", "struct", "tempfile", "textwrap",
    "time", "unicodedata", "urllib.parse", "uuid", "warnings", "zlib",
)  # fmt: skip
# Prompts: no constraint, one, or two that compose (applied in this order, each checked on its own).
CONSTRAINT_SETS = ((), (), ("uppercase",), ("lowercase",), ("max_words",), ("ends_with",), ("starts_with",),
                   ("quoted",), ("uppercase", "quoted"), ("max_words", "quoted"))  # fmt: skip
QUESTIONS = ("What does {name} do?", "Explain {name} in one sentence.", "What is {name} for?",
             "Describe the Python function {name}.")  # fmt: skip
TRAINING_VARIANTS = 2  # prompts per trained function (a question and constraints drawn for each)
HELD_OUT = 0.12  # share of functions kept for evaluation
MAX_ANSWER_CHARS = 160
SIGNATURE = re.compile(r"^[\w.]+\(.*\)(\s*->.*)?$")


def _first_sentence(doc: str) -> str | None:
    lines = [line.strip() for line in doc.strip().splitlines()]
    while lines and (not lines[0] or SIGNATURE.match(lines[0])):  # builtins start with their signature
        lines.pop(0)
    paragraph = " ".join(lines[: lines.index("")] if "" in lines else lines)
    sentence = re.split(r"(?<=[.!?])\s", paragraph, maxsplit=1)[0].strip()
    if not 20 <= len(sentence) <= MAX_ANSWER_CHARS or not sentence[0].isupper():
        return None
    return sentence if sentence.endswith((".", "!", "?")) else sentence + "."


@functools.cache
def documented_functions() -> tuple[tuple[str, str], ...]:
    """(qualified name, first docstring sentence) of the public functions of `MODULES`, sorted."""
    found: dict[str, str] = {}
    for module_name in MODULES:
        module = importlib.import_module(module_name)
        for name, member in inspect.getmembers(module, callable):
            if name.startswith("_") or inspect.isclass(member) or not (doc := inspect.getdoc(member)):
                continue
            if sentence := _first_sentence(doc):
                found.setdefault(f"{module_name}.{name}", sentence)
    return tuple(sorted(found.items()))


def _unit(key: str) -> float:
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") / 2**64


def _prompt(name: str, variant: int = 0) -> InstructionPrompt:
    pick = int(_unit(f"prompt{variant}:{name}") * len(CONSTRAINT_SETS) * len(QUESTIONS))
    question = QUESTIONS[pick % len(QUESTIONS)].format(name=name)
    return InstructionPrompt(name, question, CONSTRAINT_SETS[pick // len(QUESTIONS)])


def _split(held_out: bool, variants: int = 1) -> list[tuple[InstructionPrompt, str]]:
    return [(_prompt(name, variant), sentence) for name, sentence in documented_functions()
            if (_unit("split:" + name) < HELD_OUT) == held_out for variant in range(variants)]  # fmt: skip


def instruction_set() -> list[dict[str, Any]]:
    """The training conversations, in the `messages` format."""
    return [{"messages": [{"role": "user", "content": prompt.text()},
                          {"role": "assistant", "content": prompt.answer(sentence)}]}
            for prompt, sentence in _split(held_out=False, variants=TRAINING_VARIANTS)]  # fmt: skip


def preference_pairs() -> list[dict[str, Any]]:
    """`prompt`/`chosen`/`rejected`: a prompt with constraints prefers the answer that follows them to the
    same answer that does not; a plain question prefers the right docstring to another function's (the
    next one in a seeded shuffle)."""
    pairs = _split(held_out=False)
    order = sorted(range(len(pairs)), key=lambda i: _unit(f"wrong:{pairs[i][0].key}"))
    wrong = {order[i]: pairs[order[(i + 1) % len(order)]][1] for i in range(len(order))}
    return [{"prompt": prompt.text(), "chosen": prompt.answer(sentence),
             "rejected": sentence if prompt.constraints else wrong[i]}
            for i, (prompt, sentence) in enumerate(pairs)]  # fmt: skip


def evaluation_prompts() -> list[tuple[InstructionPrompt, str]]:
    """The held-out prompts with their reference answers (functions never trained on), as many per
    function as training draws."""
    return _split(held_out=True, variants=TRAINING_VARIANTS)
