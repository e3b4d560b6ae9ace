"""Talking to a checkpoint: `crawl2model generate` and `crawl2model chat`.

A chat model's folder (sft's or dpo's output) holds `model.pt`, `chat.json` and `tokenizer.model`, so
the checkpoint alone is enough; a base model's `model.pt` needs the tokenizer named (`--tokenizer`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from storage.errors import UserError
from tasks.post_training import TOKENIZER_FILE, StartingModel


def load(checkpoint: Path, tokenizer: Path | None) -> tuple[StartingModel, Any]:
    """The checkpoint with its tokenizer, and its GPT ready to generate; a clear error when either is missing."""
    if not checkpoint.is_file():
        raise UserError(f"{checkpoint}: no such checkpoint", hint="a model.pt from the train, sft or dpo stage")
    tokenizer = tokenizer or checkpoint.parent / TOKENIZER_FILE
    if not tokenizer.is_file():
        raise UserError(f"no tokenizer beside {checkpoint}", hint="name one with --tokenizer (the tokenize "
                        "stage's tokenizer.model); sft and dpo outputs carry their own")  # fmt: skip
    import torch

    if "config" not in torch.load(checkpoint, map_location="cpu", weights_only=True):
        raise UserError(f"{checkpoint}: not a model.pt (a training checkpoint holds no model config)",
                        hint="use the stage output's model.pt")  # fmt: skip
    start = StartingModel(str(checkpoint), str(tokenizer))
    return start, start.gpt()


def generate(checkpoint: Path, prompt: str, tokenizer: Path | None, max_new_tokens: int, **sampling: Any) -> str:
    """A chat model's reply to `prompt` as a user message, or a base model's continuation of it."""
    start, model = load(checkpoint, tokenizer)
    if start.is_chat:
        return start.respond(model, [{"role": "user", "content": prompt}], max_new_tokens, **sampling)
    return start.continue_text(model, prompt, max_new_tokens, **sampling)


def converse(checkpoint: Path, tokenizer: Path | None, read: Callable[[], str | None], write: Callable[[str], None],
             system: str | None, max_new_tokens: int, **sampling: Any) -> int:  # fmt: skip
    """A conversation under the chat template until `read` returns None (EOF) or "exit"; the turns taken.
    The whole history is the prompt (its oldest tokens dropped past the model's context)."""
    start, model = load(checkpoint, tokenizer)
    if not start.is_chat:
        raise UserError(f"{checkpoint} is a base model (no chat.json beside it)",
                        hint="chat with sft's or dpo's model.pt; `crawl2model generate` continues text")  # fmt: skip
    messages = [{"role": "system", "content": system}] if system else []
    turns = 0
    while (line := read()) is not None and line.strip() not in ("exit", "quit"):
        if not line.strip():
            continue
        messages.append({"role": "user", "content": line})
        answer = start.respond(model, messages, max_new_tokens, **sampling)
        messages.append({"role": "assistant", "content": answer})
        write(answer)
        turns += 1
    return turns
