"""sft's config: the instruction data, its chat rows and the fine-tuning run."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from tasks.post_training import PostTrainSettings


class SftConfig(PostTrainSettings):
    """Supervised fine-tuning of the base model on conversations, the loss on the assistant's tokens only.
    One conversation per row of the base model's `seq_len + 1` tokens (cut at the end, padded with EOS
    and masked): no packing, so no attention across conversations. On in the sample; off in the crawl
    configs until a team names its instruction data."""

    format: Literal["auto", "alpaca", "sharegpt", "messages"] = Field(
        "auto", description="the instruction files' shape; auto: decided per file from its first record"
    )
    system_prompt: str | None = Field(None, description="a system message put first in every conversation")
    max_steps: int = Field(300, ge=1)
    lr: float = Field(1e-3, gt=0.0, description="peak learning rate (about a third of pretraining's)")
