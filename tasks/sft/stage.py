"""sft: fine-tune the base model on conversations, the loss on the assistant's tokens only.

Reads the instruction files (or the sample's set), drops examples that overlap the evaluation sets,
encodes each conversation with the chat template into one row with its loss mask (`examples/`,
split train/val by example hash), grows the embedding for the chat tokens the tokenizer lacks, and
trains with the pretraining loop from the base model's weights. Writes `model.pt` and `chat.json`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from model.chat import encode_conversation, fixed_length
from storage.errors import UserError
from tasks.conversations import ReadStats, read_instructions
from tasks.post_training import StartingModel, contamination_index, example_key, examples_outcome, held_out, write_rows
from tasks.sample.instructions import instruction_set
from tasks.sft.config import SftConfig
from tasks.stage import StageInput, StageOutcome
from tasks.training_run import record_training, run_training


def _sample(stats: ReadStats) -> Iterator[list[dict[str, str]]]:
    for conversation in instruction_set():
        stats.records += 1
        yield conversation["messages"]


def conversations(cfg: SftConfig, stats: ReadStats) -> list[list[dict[str, str]]]:
    """The conversations to train on, in file order (the sample's set without files), capped at max_examples."""
    found = []
    for messages in read_instructions(cfg.data, cfg.format, stats) if cfg.data else _sample(stats):
        system = [{"role": "system", "content": cfg.system_prompt}] if cfg.system_prompt else []
        found.append([*system, *messages])
        if cfg.max_examples and len(found) >= cfg.max_examples:
            break
    return found


def chat_rows(convs: list[list[dict[str, str]]], start: StartingModel, cfg: SftConfig, seq_len: int,
              stats: ReadStats) -> dict[str, list[dict[str, Any]]]:  # fmt: skip
    """{"train": rows, "val": rows}: one fixed-length row per conversation; contaminated and
    over-long ones counted in `stats` and left out."""
    index = contamination_index(cfg)
    split: dict[str, list[dict[str, Any]]] = {"train": [], "val": []}
    for messages in convs:
        if index is not None and index.match(" ".join(m["content"] for m in messages)):
            stats.skipped["decontaminated"] += 1
            continue
        row = fixed_length(*encode_conversation(messages, start.encode, start.vocab), seq_len + 1)
        if row is None:
            stats.skipped["prompt_too_long"] += 1
            continue
        key = example_key(messages)
        split["val" if held_out(key, cfg.val_fraction, cfg.seed) else "train"].append(
            {"example_id": key, "tokens": row[0], "loss_mask": row[1]}
        )
    return split


def final_val_loss(result: dict[str, Any]) -> float | None:
    return result["val_history"][-1]["val_loss"] if result.get("val_history") else None


def run(inputs: dict[str, StageInput], cfg: SftConfig, out: Path) -> StageOutcome:
    from model.gpt import GPTConfig

    trained, tok = inputs["train"], inputs["tokenize"]
    if not cfg.enabled or trained.info.get("skipped"):
        why = "sft.enabled=false" if not cfg.enabled else "no base model"
        return StageOutcome(info={"skipped": why})
    start = StartingModel(trained.file("model"), tok.file("tokenizer"))
    stats = ReadStats()
    convs = conversations(cfg, stats)
    split = chat_rows(convs, start, cfg, start.config["seq_len"], stats)
    if len(split["train"]) < cfg.batch_size:
        raise UserError(f"sft: {len(split['train'])} training conversations cannot fill one batch of "
                        f"{cfg.batch_size}", hint=f"skipped: {dict(stats.skipped)}")  # fmt: skip
    for name, rows in split.items():
        if rows:
            write_rows(rows, out / "examples" / f"{name}-00000.parquet")
    start.write_chat_file(out)
    files = [str(out / "examples" / "train-00000.parquet")]
    val_files = [str(out / "examples" / "val-00000.parquet")] if split["val"] else []
    train_cfg = cfg.trainer_config(
        start.config,
        max_steps=cfg.max_steps,
        lr=cfg.lr,
        val_every=cfg.val_every or cfg.max_steps,
        val_rows=max(1, len(split["val"])),
    )
    result = run_training(files, GPTConfig(**start.config), train_cfg, out, "sft", val_files,
                          init_state=start.state)  # fmt: skip
    outcome = examples_outcome(stats, split)
    record_training(outcome, result, "sft", "sft_val_loss")
    outcome.info = {"examples": {k: len(v) for k, v in split.items()}, "dropped": dict(stats.skipped),
                    "chat_tokens_added": start.vocab.added, "system_prompt": cfg.system_prompt,
                    "vocab_size": start.config["vocab_size"],
                    "final_loss": result["history"][-1]["loss"], "val_loss": final_val_loss(result)}  # fmt: skip
    return outcome
