"""The chat evaluation: the base model against its post-trained checkpoints (sft, dpo).

(a) Verifiable instruction following (IFEval-style, `tasks.instructions`) on held-out prompts about
functions no example trained on: the share of prompts with every constraint followed and the share
of constraints followed, each with a bootstrap interval over prompts, and paired against the base
model. The base model is asked in plain text ("Question: ...\\nAnswer:", its first line); chat models
under the chat template, greedy. (b) The held-out SFT loss (sft's validation conversations, loss on
the assistant's tokens), per model. (c) With `evaluate.judge`, the pairwise win rate against the
base model's answers (`tasks.evaluate.win_rate`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from model.chat import IGNORE
from model.data import inputs_and_targets, load_rows
from model.intervals import Units, interval, paired_delta
from storage.progress import progress_bar
from tasks.evaluate.config import EvaluateConfig
from tasks.evaluate.win_rate import outcomes, win_rates
from tasks.instructions import InstructionPrompt
from tasks.post_training import POST_TRAINING, StartingModel
from tasks.sample.instructions import evaluation_prompts
from tasks.stage import StageInput, workdir_cache


def chat_models(inputs: dict[str, StageInput]) -> dict[str, StageInput]:
    """The post-trained outputs that hold a model, in pipeline order (empty when post-training is off)."""
    return {name: inputs[name] for name in POST_TRAINING
            if name in inputs and not inputs[name].info.get("skipped")}  # fmt: skip


def plain_answer(start: StartingModel, model: torch.nn.Module, question: str, max_new_tokens: int) -> str:
    """A base model's answer: its continuation of "Question: ...\nAnswer:", up to the first line break."""
    return start.continue_text(model, f"Question: {question}\nAnswer:", max_new_tokens).strip().split("\n")[0].strip()


def answers(name: str, start: StartingModel, prompts: list[InstructionPrompt], max_new_tokens: int,
            system: str | None) -> list[str]:  # fmt: skip
    """Each prompt's answer: a chat model's under the template (with the system message sft trained with)."""
    model = start.gpt()
    first = [{"role": "system", "content": system}] if system else []
    found = []
    with progress_bar(f"chat evaluation: {name}", len(prompts)) as advance:
        for prompt in prompts:
            if name == "base":
                found.append(plain_answer(start, model, prompt.text(), max_new_tokens))
            else:
                messages = [*first, {"role": "user", "content": prompt.text()}]
                found.append(start.respond(model, messages, max_new_tokens))
            advance(1)
    return found


@torch.no_grad()
def heldout_loss(start: StartingModel, files: list[str]) -> dict[str, Any]:
    """Mean loss per trained token on sft's held-out conversations, with a bootstrap interval over them."""
    model, rows = start.gpt(), load_rows(files)
    sums, counts = [], []
    for batch in rows.split(32):
        inputs, targets = inputs_and_targets(batch)
        logits, _ = model(inputs)
        losses = torch.nn.functional.cross_entropy(logits.transpose(1, 2), targets, reduction="none")
        sums += losses.sum(1).tolist()
        counts += (targets != IGNORE).sum(1).tolist()
    return interval(Units.of(sums, counts))


def following(checks: list[dict[str, bool]]) -> dict[str, Any]:
    """The two IFEval shares, each with its interval over prompts."""
    per_prompt = np.array([float(all(c.values())) for c in checks])
    followed = np.array([sum(c.values()) for c in checks], dtype=float)
    stated = np.array([len(c) for c in checks], dtype=float)
    return {"prompt_level": interval(Units.of(per_prompt)), "constraint_level": interval(Units.of(followed, stated)),
            "per_prompt": per_prompt.tolist()}  # fmt: skip


def judged(scores: dict[str, Any], prompts: list[InstructionPrompt], cfg: EvaluateConfig, out: Path) -> None:
    """Each chat model's win rate against the base model's answers, when a judge is configured."""
    if cfg.judge is None:
        return
    texts, reference = [p.text() for p in prompts], scores["models"]["base"]["responses"]
    for name, model in scores["models"].items():
        if name != "base":
            results = outcomes(cfg.judge, workdir_cache(out, "win_rate"), name, texts, model["responses"], reference)
            model["win_rate"] = win_rates(results, model["responses"], reference)
            model["win_outcomes"] = results


def item_rows(models: dict[str, Any], ids: list[str]) -> list[dict[str, Any]]:
    """Per prompt, as evaluate's item scores (what `compare` and `experiment recipes` pair): whether each
    model followed every constraint (`chat_following_<model>`) and won against the base model
    (`chat_win_<model>`, when judged)."""
    rows = []
    for name, m in models.items():
        rows += [{"task": f"chat_following_{name}", "item_id": i, "acc": v}
                 for i, v in zip(ids, m["following"]["per_prompt"], strict=True)]  # fmt: skip
        rows += [{"task": f"chat_win_{name}", "item_id": i, "acc": v}
                 for i, v in zip(ids, m.get("win_outcomes", []), strict=False) if v is not None]  # fmt: skip
    return rows


def chat_scores(inputs: dict[str, StageInput], cfg: EvaluateConfig, out: Path) -> dict[str, Any]:
    """{model: {following, heldout_loss, responses}} and paired deltas against the base model."""
    models = chat_models(inputs)
    if not models:
        return {}
    tokenizer, val_files = inputs["tokenize"].file("tokenizer"), inputs["sft"].files("examples")
    val_files = [f for f in val_files if "/val-" in f]
    # Every prompt states at least one constraint, as IFEval's do.
    pairs = [(p, a) for p, a in evaluation_prompts() if p.constraints][: cfg.chat_prompts]
    prompts = [p for p, _ in pairs]
    starts = {"base": StartingModel(inputs["train"].file("model"), tokenizer)}
    starts |= {name: StartingModel(output.file("model"), tokenizer) for name, output in models.items()}
    scores: dict[str, Any] = {"prompts": len(prompts), "models": {}}
    for name, start in starts.items():
        responses = answers(name, start, prompts, cfg.chat_max_new_tokens, inputs["sft"].info.get("system_prompt"))
        checks = [p.check(r) for p, r in zip(prompts, responses, strict=True)]
        scores["models"][name] = {"following": following(checks), "responses": responses,
                                  "heldout_loss": heldout_loss(start, val_files) if val_files else None}  # fmt: skip
    base = scores["models"]["base"]["following"]["per_prompt"]
    for name in models:
        mine = scores["models"][name]["following"]["per_prompt"]
        scores["models"][name]["vs_base"] = paired_delta(Units.of(base), Units.of(mine), lower_is_better=False)
    judged(scores, prompts, cfg, out)
    scores["item_rows"] = item_rows(scores["models"], [f"{p.key}#{i}" for i, p in enumerate(prompts)])
    scores["examples"] = [{"prompt": p.text(), "reference": p.answer(a),
                           **{n: scores["models"][n]["responses"][i] for n in starts}}
                          for i, (p, a) in enumerate(pairs[:5])]  # fmt: skip
    return scores
