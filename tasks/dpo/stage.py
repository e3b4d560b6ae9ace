"""dpo: tune sft's chat model on preference pairs with the DPO loss; held-out preference accuracy logged.

Each pair becomes two rows (the prompt with the chosen answer, and with the rejected one), the loss
mask on the answer; pairs overlapping the evaluation sets are dropped; a held-out share (by pair
hash) measures the preference accuracy and reward margin before the first step and every
`val_every` steps.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from model.chat import encode_conversation, fixed_length
from storage.errors import UserError
from tasks.conversations import Preference, ReadStats, read_preferences
from tasks.dpo.config import DpoConfig
from tasks.post_training import StartingModel, contamination_index, example_key, examples_outcome, held_out
from tasks.sample.instructions import preference_pairs
from tasks.stage import StageInput, StageOutcome
from tasks.training_run import ProgressReporter


def _sample(stats: ReadStats) -> Iterator[Preference]:
    for pair in preference_pairs():
        stats.records += 1
        yield Preference([{"role": "user", "content": pair["prompt"]}], pair["chosen"], pair["rejected"])


def preferences(cfg: DpoConfig, stats: ReadStats) -> list[Preference]:
    """The pairs to train on, in file order (the sample's pairs without files), capped at max_examples."""
    found = []
    for pair in read_preferences(cfg.data, cfg.format, stats) if cfg.data else _sample(stats):
        found.append(pair)
        if cfg.max_examples and len(found) >= cfg.max_examples:
            break
    return found


def pair_rows(pairs: list[Preference], start: StartingModel, cfg: DpoConfig, seq_len: int,
              stats: ReadStats) -> dict[str, list[Any]]:  # fmt: skip
    """{"train": [[chosen row, rejected row], ...], "val": ...}, each row (tokens, mask)."""
    index = contamination_index(cfg)
    split: dict[str, list[Any]] = {"train": [], "val": []}
    for pair in pairs:
        if index is not None and index.match(" ".join([*(m["content"] for m in pair.prompt), pair.chosen])):
            stats.skipped["decontaminated"] += 1
            continue
        rows = [fixed_length(*encode_conversation([*pair.prompt, {"role": "assistant", "content": answer}],
                                                  start.encode, start.vocab), seq_len + 1)
                for answer in (pair.chosen, pair.rejected)]  # fmt: skip
        if None in rows:
            stats.skipped["prompt_too_long"] += 1
            continue
        key = example_key([pair.prompt, pair.chosen, pair.rejected])
        split["val" if held_out(key, cfg.val_fraction, cfg.seed) else "train"].append(rows)
    return split


def run(inputs: dict[str, StageInput], cfg: DpoConfig, out: Path) -> StageOutcome:
    import torch

    from model.dpo import train_dpo
    from model.gpt import GPTConfig

    chat, tok = inputs["sft"], inputs["tokenize"]
    if not cfg.enabled or chat.info.get("skipped"):
        return StageOutcome(info={"skipped": "dpo.enabled=false" if not cfg.enabled else "no sft model"})
    start = StartingModel(chat.file("model"), tok.file("tokenizer"))
    stats = ReadStats()
    pairs = preferences(cfg, stats)
    split = pair_rows(pairs, start, cfg, start.config["seq_len"], stats)
    if len(split["train"]) < cfg.batch_size:
        raise UserError(f"dpo: {len(split['train'])} training pairs cannot fill one batch of {cfg.batch_size}",
                        hint=f"skipped: {dict(stats.skipped)}")  # fmt: skip
    width = start.config["seq_len"] + 1
    tensors = {name: torch.tensor(rows, dtype=torch.long).reshape(len(rows), 2, 2, width) if rows else
               torch.empty(0, 2, 2, width, dtype=torch.long) for name, rows in split.items()}  # fmt: skip
    torch.save(tensors, out / "pairs.pt")
    start.write_chat_file(out)
    train_cfg = cfg.trainer_config(start.config, max_steps=cfg.max_steps, lr=cfg.lr, val_every=cfg.val_every)
    report = ProgressReporter(cfg.max_steps, "dpo")
    result = train_dpo(tensors["train"], tensors["val"], GPTConfig(**start.config), train_cfg, cfg.beta, out,
                       start.state, report, cfg.nll_weight)  # fmt: skip
    report.publish_table()
    return _outcome(result, stats, split)


def _outcome(result: dict[str, Any], stats: ReadStats, split: dict[str, list[Any]]) -> StageOutcome:
    outcome = examples_outcome(stats, split)
    for entry in result["history"]:
        for key in ("loss", "lr", "grad_norm", "reward_margin", "pref_accuracy"):
            outcome.metric(f"dpo_{key}", entry[key], step=int(entry["step"]))
    for entry in result["val_history"]:
        for key in ("pref_accuracy", "reward_margin", "dpo_loss"):
            outcome.metric(f"heldout_{key}", entry[key], step=int(entry["step"]))
    first, last = (result["val_history"][0], result["val_history"][-1]) if result["val_history"] else ({}, {})
    outcome.info = {"pairs": {k: len(v) for k, v in split.items()}, "dropped": dict(stats.skipped),
                    "heldout_before": first, "heldout_after": last,
                    "final_loss": result["history"][-1]["loss"]}  # fmt: skip
    return outcome
