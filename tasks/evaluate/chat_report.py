"""The run report's post-training section: instruction following, held-out SFT loss, win rates."""

from __future__ import annotations

from typing import Any

from model.intervals import fmt_ci
from tasks.figures import markdown_table


def _delta_cell(d: dict[str, Any] | None) -> str:
    if not d:
        return ""
    ci = f" [{d['ci'][0]:+.3f}, {d['ci'][1]:+.3f}]" if d.get("ci") else ""
    return f"{d['delta']:+.3f}{ci} ({d['verdict']})"


def _win_cell(w: dict[str, Any] | None, key: str) -> str:
    return fmt_ci(w[key]["value"], w[key]["ci"], 3) if w and w.get(key) else ""


def chat_section(chat: dict[str, Any]) -> list[str]:
    models = chat["models"]
    parts = ["", "## Post-training: the chat models against the base model", "",
             f"Instruction following (IFEval-style, strict) on {chat['prompts']} held-out prompts about functions "
             "no example trained on: the share of prompts with every constraint followed and of constraints "
             "followed; the base model is asked in plain text, chat models under the chat template, greedy. "
             "Held-out SFT loss: per assistant token on sft's validation conversations. Win rate: the judge's "
             "preference over the base model's answer, and length-controlled (AlpacaEval 2's length term set to "
             "zero). 95% bootstrap intervals over prompts; the change in prompt-level share is paired with the "
             "base model's on the same prompts.", ""]  # fmt: skip
    rows = []
    for name, m in models.items():
        f, win = m["following"], m.get("win_rate")
        rows.append([name, fmt_ci(f["prompt_level"]["value"], f["prompt_level"]["ci"], 3),
                     fmt_ci(f["constraint_level"]["value"], f["constraint_level"]["ci"], 3),
                     _delta_cell(m.get("vs_base")),
                     fmt_ci(m["heldout_loss"]["value"], m["heldout_loss"]["ci"]) if m.get("heldout_loss") else "",
                     _win_cell(win, "win_rate"), _win_cell(win, "lc_win_rate")])  # fmt: skip
    parts.append(markdown_table(["model", "prompts followed", "constraints followed", "prompts: vs base",
                                 "held-out SFT loss", "win rate vs base", "LC win rate"], rows))  # fmt: skip
    if chat.get("examples"):
        parts += ["", "Examples (held-out prompts):", ""]
        for example in chat["examples"]:
            answers = "; ".join(f"{n}: `{example[n][:120]}`" for n in models)
            parts.append(f"- **{example['prompt']}** reference: `{example['reference']}`; {answers}")
    return parts
