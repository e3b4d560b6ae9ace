"""What sft and dpo share: their training settings, the model they start from, chat rows, decontamination.

A post-training stage starts from a stage output holding `model.pt` (train's base model, or sft's chat
model) and the tokenize stage's SentencePiece model. A chat output also holds `chat.json` (the chat
tokens' ids and the template), which evaluate, export and `crawl2model chat` read.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
import sentencepiece as spm
import torch
from pydantic import Field

from model.chat import (
    JINJA_TEMPLATE,
    ChatVocab,
    Message,
    chat_vocab,
    encode_conversation,
    grow_embedding,
    padded_vocab,
    reply_ids,
)
from model.config import TrainConfig
from model.data import LOSS_MASK
from model.gpt import GPT, GPTConfig
from model.packing import BOS_ID, EOS_ID
from storage.section import ExistingFile, Section
from storage.shards import atomic_write_bytes, atomic_write_json, write_parquet
from tasks.benchmarks import BenchmarkConfig
from tasks.contamination import ContaminationIndex, build_index
from tasks.conversations import ReadStats
from tasks.sample.instructions import evaluation_prompts
from tasks.stage import StageOutcome

# The post-training stages, in order: evaluate compares their models with the base model.
POST_TRAINING = ("sft", "dpo")
CHAT_FILE = "chat.json"
TOKENIZER_FILE = "tokenizer.model"
ROW_SCHEMA = pa.schema([("example_id", pa.string()), ("tokens", pa.list_(pa.int32())),
                        (LOSS_MASK, pa.list_(pa.int8()))])  # fmt: skip


class PostTrainSettings(Section):
    """Settings sft and dpo share: their data, their training run and its decontamination."""

    enabled: bool = Field(True, description="off: the stage passes (no chat model); the sample runs it")
    data: list[ExistingFile] = Field(
        default_factory=list, description="JSON or JSON Lines files in a published shape; empty: the sample's own set"
    )
    max_examples: int | None = Field(None, ge=1, description="cap on the examples read (the first ones)")
    val_fraction: float = Field(0.1, ge=0.0, lt=0.5, description="held-out share (by example hash)")
    batch_size: int = Field(16, ge=1)
    warmup_steps: int = Field(10, ge=0)
    min_lr_ratio: float = Field(0.1, ge=0.0, le=1.0)
    weight_decay: float = Field(0.0, ge=0.0)
    log_every: int = Field(10, ge=1)
    val_every: int = Field(50, ge=0, description="steps between held-out evaluations; 0 = only at the end")
    checkpoint_every: int = Field(100, ge=1)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    compile: Literal["auto", "on", "off"] = "auto"
    threads: int = Field(0, ge=0, description="torch CPU threads; 0 = all cores")
    decontaminate: Literal["remove", "off"] = Field(
        "remove", description="drop examples sharing an n-gram with an evaluation item or chat prompt"
    )
    decontamination_ngram: int = Field(8, ge=5, le=50, description="words per n-gram (Tulu 3 uses 8)")
    # Filled from evaluate.benchmarks by the pipeline config unless set here.
    eval_benchmarks: list[BenchmarkConfig] = Field(default_factory=list)
    seed: int = 0

    def trainer_config(self, model: dict[str, Any], **settings: Any) -> TrainConfig:
        """The trainer's settings for this run on a model of this shape (the base model's)."""
        shared = ("batch_size", "warmup_steps", "min_lr_ratio", "weight_decay", "log_every", "checkpoint_every",
                  "device", "compile", "threads", "seed")  # fmt: skip
        return TrainConfig(n_layer=model["n_layer"], n_head=model["n_head"], n_embd=model["n_embd"],
                           tie_embeddings=model["tie_embeddings"], spike_factor=None,
                           **{k: getattr(self, k) for k in shared}, **settings)  # fmt: skip


class StartingModel:
    """The weights a post-training stage starts from, with the tokenizer and the chat tokens' ids."""

    def __init__(self, model_file: str, tokenizer_file: str):
        is_base = not (Path(model_file).parent / CHAT_FILE).exists()
        self.chat_file = None if is_base else Path(model_file).parent / CHAT_FILE
        self.sp = spm.SentencePieceProcessor(model_file=tokenizer_file)
        checkpoint = torch.load(model_file, map_location="cpu", weights_only=True)
        self.config: dict[str, Any] = dict(checkpoint["config"])
        self.vocab: ChatVocab = chat_vocab(self.sp.piece_to_id, self.sp.get_piece_size())
        rows = max(self.config["vocab_size"], padded_vocab(self.vocab.size, 128))
        # A base model gets rows for the chat tokens; a chat model already has them.
        self.state = grow_embedding(checkpoint["model"], rows, self.vocab) if is_base else checkpoint["model"]
        self.config["vocab_size"] = rows

    def encode(self, text: str) -> list[int]:
        return self.sp.encode(text)

    def decode(self, ids: list[int]) -> str:
        """Text of ids, the chat tokens (not the tokenizer's own pieces) left out."""
        return self.sp.decode([i for i in ids if i < self.vocab.base_size])

    def gpt(self) -> GPT:
        model = GPT(GPTConfig(**self.config))
        model.load_state_dict(self.state)
        return model.eval()

    def respond(self, model: GPT, messages: list[Message], max_new_tokens: int, **sampling: Any) -> str:
        """The model's reply under the chat template (greedy unless `temperature` is given)."""
        prompt, _ = encode_conversation(messages, self.encode, self.vocab, generation_prompt=True)
        ids = reply_ids(model, prompt, self.vocab.end_id, max_new_tokens, self.vocab.size, **sampling)
        return self.decode(ids).strip()

    def continue_text(self, model: GPT, text: str, max_new_tokens: int, **sampling: Any) -> str:
        """A plain continuation of `text` (a base model's use), stopping at EOS."""
        ids = reply_ids(model, [BOS_ID, *self.encode(text)], EOS_ID, max_new_tokens, self.vocab.base_size, **sampling)
        return self.decode(ids)

    @property
    def is_chat(self) -> bool:
        return self.chat_file is not None

    def write_chat_file(self, out: Path) -> None:
        """chat.json, and the tokenizer beside the model: a chat model's folder is all `crawl2model chat` needs."""
        atomic_write_json(out / CHAT_FILE, {"ids": self.vocab.ids, "base_size": self.vocab.base_size,
                                            "size": self.vocab.size, "template": JINJA_TEMPLATE})  # fmt: skip
        atomic_write_bytes(out / TOKENIZER_FILE, self.sp.serialized_model_proto())


def example_key(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:16]


def held_out(key: str, fraction: float, seed: int) -> bool:
    digest = hashlib.sha256(f"{seed}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < fraction


def contamination_index(cfg: PostTrainSettings) -> ContaminationIndex | None:
    """The evaluation items (benchmarks evaluate scores) and the chat evaluation's reference answers (its
    prompts share their instruction sentences with the sample's training prompts by design: the answers
    are what must not leak)."""
    if cfg.decontaminate == "off":
        return None
    index = build_index(cfg.eval_benchmarks, cfg.decontamination_ngram)
    for prompt, answer in evaluation_prompts():
        index.add(f"chat:{prompt.key}", answer)
    return index


def write_rows(rows: list[dict[str, Any]], path: Path) -> None:
    write_parquet(pa.Table.from_pylist(rows, schema=ROW_SCHEMA), path)


def examples_outcome(stats: ReadStats, split: dict[str, list[Any]]) -> StageOutcome:
    """A post-training stage's outcome with its examples counted: read, kept, and each reason one was left
    out. Examples, not documents: in metrics, outside the document funnel."""
    outcome = StageOutcome()
    outcome.metric("examples_read", stats.records)
    outcome.metric("examples_kept", sum(len(rows) for rows in split.values()))
    for reason, count in sorted(stats.skipped.items()):
        outcome.metric(f"skipped_{reason}", count)
    return outcome
