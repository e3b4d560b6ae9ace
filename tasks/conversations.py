"""Instruction and preference files in their published shapes, read as conversations.

Instructions (`sft.format`): `alpaca` (`instruction`, optional `input`, `output`), `sharegpt`
(`conversations`: [{"from": human|gpt|system, "value"}]), `messages` (the OpenAI and Hugging Face chat
format: [{"role", "content"}]); `auto` decides per file from its first record. Preferences
(`dpo.format`): `pairs` (`prompt`, `chosen`, `rejected` as text), `ultrafeedback` (`chosen`/`rejected`
as message lists that share the prompt), `hh` (HH-RLHF: `chosen`/`rejected` as "\\n\\nHuman: ...
\\n\\nAssistant: ..." transcripts); `auto` as above. Files are JSON arrays or JSON Lines. A file in no
known shape is one error naming the keys it has; a record that does not fit its file's shape is
counted and skipped.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from model.chat import ROLES, Message
from storage.errors import UserError

SHAREGPT_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "system": "system"}


@dataclass
class Preference:
    prompt: list[Message]  # the conversation up to the answer
    chosen: str
    rejected: str


@dataclass
class ReadStats:
    records: int = 0
    skipped: Counter[str] = field(default_factory=Counter)  # why: count


def read_records(path: str) -> Iterator[dict[str, Any]]:
    """The records of a JSON array or JSON Lines file; a line or file that is not JSON is an error naming it."""
    file = Path(path)
    if not file.is_file():
        raise UserError(f"{path}: no such file")
    text = file.read_text(encoding="utf-8", errors="replace")
    if text.lstrip().startswith("["):
        try:
            records = json.loads(text)
        except json.JSONDecodeError as e:
            raise UserError(f"{path}: not valid JSON ({e.msg} at line {e.lineno})") from None
        yield from records
        return
    for number, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                yield json.loads(line)
            except json.JSONDecodeError as e:
                raise UserError(f"{path}:{number}: not valid JSON Lines ({e.msg})") from None


def _alpaca(record: dict[str, Any]) -> list[Message]:
    prompt = record["instruction"] + (f"\n\n{record['input']}" if record.get("input") else "")
    return [{"role": "user", "content": prompt}, {"role": "assistant", "content": record["output"]}]


def _sharegpt(record: dict[str, Any]) -> list[Message]:
    return [{"role": SHAREGPT_ROLES[turn["from"]], "content": turn["value"]} for turn in record["conversations"]]


def _messages(record: dict[str, Any]) -> list[Message]:
    return [{"role": m["role"], "content": m["content"]} for m in record["messages"]]


def _any(record: dict[str, Any]) -> bool:
    return True


# Each shape: the keys a record of it has, a check on its values where keys alone cannot tell shapes
# apart (`auto` takes the first shape whose keys and check fit), and its converter.
INSTRUCTION_SHAPES: dict[str, tuple[set[str], Callable[[dict[str, Any]], bool], Callable]] = {
    "alpaca": ({"instruction", "output"}, _any, _alpaca),
    "sharegpt": ({"conversations"}, _any, _sharegpt),
    "messages": ({"messages"}, _any, _messages),
}


def _pairs(record: dict[str, Any]) -> Preference:
    return Preference([{"role": "user", "content": record["prompt"]}], record["chosen"], record["rejected"])


def _ultrafeedback(record: dict[str, Any]) -> Preference:
    chosen, rejected = _messages({"messages": record["chosen"]}), _messages({"messages": record["rejected"]})
    if chosen[:-1] != rejected[:-1] or chosen[-1]["role"] != "assistant":
        raise ValueError("chosen and rejected do not share the prompt")
    return Preference(chosen[:-1], chosen[-1]["content"], rejected[-1]["content"])


def _hh_turns(transcript: str) -> list[Message]:
    turns: list[Message] = []
    for part in transcript.split("\n\nHuman: ")[1:]:
        human, _, assistant = part.partition("\n\nAssistant: ")
        turns += [{"role": "user", "content": human.strip()}, {"role": "assistant", "content": assistant.strip()}]
    return turns


def _hh(record: dict[str, Any]) -> Preference:
    chosen, rejected = _hh_turns(record["chosen"]), _hh_turns(record["rejected"])
    if not chosen or chosen[:-1] != rejected[:-1]:
        raise ValueError("chosen and rejected do not share the prompt")
    return Preference(chosen[:-1], chosen[-1]["content"], rejected[-1]["content"])


def _message_answers(record: dict[str, Any]) -> bool:
    return isinstance(record.get("chosen"), list)


def _text_prompt(record: dict[str, Any]) -> bool:
    return isinstance(record.get("prompt"), str) and not _message_answers(record)


def _transcripts(record: dict[str, Any]) -> bool:
    return not _message_answers(record)


PREFERENCE_SHAPES: dict[str, tuple[set[str], Callable[[dict[str, Any]], bool], Callable]] = {
    "pairs": ({"prompt", "chosen", "rejected"}, _text_prompt, _pairs),
    "ultrafeedback": ({"chosen", "rejected"}, _message_answers, _ultrafeedback),  # may carry a `prompt` too
    "hh": ({"chosen", "rejected"}, _transcripts, _hh),
}


def detect(path: str, first: dict[str, Any], shapes: dict[str, tuple[set[str], Callable, Callable]]) -> str:
    """The shape of a file from its first record (`auto`): the first shape whose keys and check fit."""
    keys = set(first) if isinstance(first, dict) else set()
    for name, (needed, fits, _) in shapes.items():
        if needed <= keys and fits(first):
            return name
    expected = "; ".join(f"{name}: {', '.join(sorted(needed))}" for name, (needed, _, _) in shapes.items())
    raise UserError(f"{path}: records in no known shape (its first has keys {sorted(keys) or 'none'}); "
                    f"expected one of {expected}")  # fmt: skip


def _read(paths: list[str], fmt: str, shapes: dict[str, tuple[set[str], Callable, Callable]],
          stats: ReadStats) -> Iterator[Any]:  # fmt: skip
    for path in paths:
        records = read_records(path)
        first = next(records, None)
        if first is None:
            stats.skipped["empty_file"] += 1
            continue
        shape = detect(path, first, shapes) if fmt == "auto" else fmt
        convert = shapes[shape][2]
        for record in [first, *records]:
            stats.records += 1
            try:
                yield convert(record)
            except (KeyError, TypeError, ValueError, AttributeError):
                stats.skipped[f"not_{shape}"] += 1


def valid_conversation(messages: list[Message]) -> str | None:
    """Why a conversation cannot be trained on, or None."""
    if any(m["role"] not in ROLES or not isinstance(m["content"], str) for m in messages):
        return "unknown_role"
    if not any(m["role"] == "assistant" and m["content"].strip() for m in messages):
        return "no_assistant_turn"
    return None


def read_instructions(paths: list[str], fmt: str, stats: ReadStats) -> Iterator[list[Message]]:
    for messages in _read(paths, fmt, INSTRUCTION_SHAPES, stats):
        if reason := valid_conversation(messages):
            stats.skipped[reason] += 1
        else:
            yield messages


def read_preferences(paths: list[str], fmt: str, stats: ReadStats) -> Iterator[Preference]:
    for pair in _read(paths, fmt, PREFERENCE_SHAPES, stats):
        if not (isinstance(pair.chosen, str) and isinstance(pair.rejected, str)) or pair.chosen == pair.rejected:
            stats.skipped["chosen_equals_rejected"] += 1
        elif reason := valid_conversation([*pair.prompt, {"role": "assistant", "content": pair.chosen}]):
            stats.skipped[reason] += 1
        else:
            yield pair
