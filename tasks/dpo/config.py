"""dpo's config: the preference pairs and the preference-tuning run."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from tasks.post_training import PostTrainSettings


class DpoConfig(PostTrainSettings):
    """Direct Preference Optimization of sft's chat model against itself frozen (the reference). Off by
    default (the sample runs it with `--set dpo.enabled=true`); it needs sft."""

    enabled: bool = Field(False, description="on: tune sft's chat model on preference pairs (needs sft.enabled)")
    format: Literal["auto", "pairs", "ultrafeedback", "hh"] = Field(
        "auto", description="the preference files' shape; auto: decided per file from its first record"
    )
    beta: float = Field(0.1, gt=0.0, le=10.0, description="how far from the reference the policy may move (DPO's beta)")
    nll_weight: float = Field(
        1.0, ge=0.0, le=10.0, description="adds this x the chosen answer's loss per token to DPO's (RPO, Pang et al. "
        "2024): keeps the chosen answers' likelihood from falling with the rejected ones' (on the sample, plain "
        "DPO took instruction following from sft's 0.99 to 0.40, with this term 0.96: docs/results); 0 = plain DPO",
    )  # fmt: skip
    max_steps: int = Field(100, ge=1)
    lr: float = Field(2e-4, gt=0.0, description="peak learning rate (DPO wants a small one)")
    val_every: int = Field(25, ge=0, description="steps between held-out preference accuracies; 0 = only at the end")
