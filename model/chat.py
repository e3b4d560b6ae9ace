"""The chat template: conversations as token ids, with the loss on the assistant's tokens only.

A conversation is a list of {"role": system|user|assistant, "content": text}. Each message is its
role's special token, the content as the tokenizer encodes it alone, then `<|end|>`:

    <s> <|system|> You are ... <|end|> <|user|> What does ... <|end|> <|assistant|> It ... <|end|>

The assistant's content and its `<|end|>` are the trained tokens (the model learns to stop); a
generation prompt ends with `<|assistant|>` and generation stops at `<|end|>`. The special tokens are
the tokenizer's own pieces when it was trained with them (`tokenize.special_tokens`), otherwise ids
appended after its vocabulary, the embedding grown to hold them (`grow_embedding`). The same text
form is the Hugging Face export's Jinja template (`JINJA_TEMPLATE`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from model.packing import BOS_ID, EOS_ID, UNK_ID

ROLES = ("system", "user", "assistant")
END = "<|end|>"
CHAT_TOKENS = (*(f"<|{role}|>" for role in ROLES), END)
# Targets the loss ignores (F.cross_entropy's default ignore_index; the fused losses use the same).
IGNORE = -100

JINJA_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}<|{{ message['role'] }}|>{{ message['content'] }}<|end|>"
    "{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}"
)

Message = dict[str, str]


@dataclass(frozen=True)
class ChatVocab:
    """Where the chat tokens live: their ids, and the vocabulary size the model needs for them."""

    ids: dict[str, int]  # token text -> id
    base_size: int  # the tokenizer's own pieces
    size: int  # base_size plus the tokens appended after it

    @property
    def added(self) -> int:
        return self.size - self.base_size

    @property
    def end_id(self) -> int:
        return self.ids[END]

    def role_id(self, role: str) -> int:
        return self.ids[f"<|{role}|>"]


def chat_vocab(piece_to_id: Callable[[str], int], base_size: int) -> ChatVocab:
    """The tokenizer's own piece for each chat token when it has one, else the next id after its vocabulary."""
    ids, size = {}, base_size
    for token in CHAT_TOKENS:
        found = piece_to_id(token)
        if found == UNK_ID:
            ids[token], size = size, size + 1
        else:
            ids[token] = found
    return ChatVocab(ids, base_size, size)


def encode_conversation(
    messages: list[Message], encode: Callable[[str], list[int]], vocab: ChatVocab, generation_prompt: bool = False
) -> tuple[list[int], list[int]]:
    """(token ids, loss mask): the mask is 1 on each assistant message's content and its `<|end|>`."""
    tokens, mask = [BOS_ID], [0]
    for message in messages:
        content = encode(message["content"])
        trained = int(message["role"] == "assistant")
        tokens += [vocab.role_id(message["role"]), *content, vocab.end_id]
        mask += [0, *[trained] * len(content), trained]
    if generation_prompt:
        tokens.append(vocab.role_id("assistant"))
        mask.append(0)
    return tokens, mask


def fixed_length(tokens: list[int], mask: list[int], length: int) -> tuple[list[int], list[int]] | None:
    """One row of `length` tokens: cut at the end or padded with EOS (masked out); None when nothing
    trained is left (an over-long prompt). Rows hold one conversation each: no packing, so no
    attention across conversations (padding comes after, and causal attention never looks ahead)."""
    tokens, mask = tokens[:length], mask[:length]
    if not any(mask[1:]):
        return None
    pad = length - len(tokens)
    return tokens + [EOS_ID] * pad, mask + [0] * pad


def grow_embedding(state: dict[str, torch.Tensor], rows: int, vocab: ChatVocab) -> dict[str, torch.Tensor]:
    """The model's weights with an embedding (and head) of at least `rows` rows; the appended chat
    tokens' rows start at the mean of the tokenizer's rows (Hewitt 2021: a new token then starts as
    an average word rather than as noise the first steps must undo)."""
    grown = dict(state)
    for name in ("embed.weight", "head.weight"):
        if name not in state:
            continue
        old = state[name]
        weight = torch.cat([old, old.new_zeros(max(0, rows - len(old)), old.shape[1])])
        weight[vocab.base_size : vocab.size] = old[: vocab.base_size].float().mean(0).to(old.dtype)
        grown[name] = weight
    return grown


def padded_vocab(size: int, multiple: int) -> int:
    return -(-size // multiple) * multiple


@torch.no_grad()
def reply_ids(model: torch.nn.Module, prompt: list[int], stop_id: int | None, max_new_tokens: int,
              vocab_limit: int | None = None, temperature: float = 0.0, top_k: int | None = None,
              seed: int = 0) -> list[int]:  # fmt: skip
    """Decoding after `prompt` (greedy at temperature 0) until `stop_id` (not included) or max_new_tokens."""
    generator = torch.Generator().manual_seed(seed)
    out = model.generate(torch.tensor([prompt]), max_new_tokens, temperature=temperature, top_k=top_k,
                         generator=generator, stop_token=stop_id, vocab_limit=vocab_limit)  # fmt: skip
    new = out[0, len(prompt) :].tolist()
    return new[:-1] if new and new[-1] == stop_id else new
