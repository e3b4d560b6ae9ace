"""The model's own config: presets and the training settings the trainer reads (no pipeline knowledge)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from storage.section import Section

# (n_layer, n_head, n_embd): tiny for CPU tests, small for the sample, then GPT-2 124M / 350M classes.
MODEL_PRESETS: dict[str, tuple[int, int, int]] = {
    "tiny": (2, 2, 64),
    "small": (4, 4, 128),
    "124m": (12, 12, 768),
    "350m": (24, 16, 1024),
}


class AnnealConfig(Section):
    """The last `fraction` of steps train on tokenize's `anneal` split (the mixture `mix.anneal` picks:
    top quality buckets, named domains), at the schedule's decaying learning rate."""

    fraction: float = Field(0.0, ge=0.0, lt=1.0, description="0 = no annealing phase")


class TrainConfig(Section):
    preset: Literal["tiny", "small", "124m", "350m"] | None = Field(
        None, description="model size; n_layer/n_head/n_embd given explicitly win over the preset"
    )
    n_layer: int = Field(4, ge=1)
    n_head: int = Field(4, ge=1)
    n_embd: int = Field(128, ge=16)
    tie_embeddings: bool = True
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    batch_size: int = Field(16, ge=1, description="rows per micro-batch per process")
    grad_accum: int = Field(1, ge=1)
    tokens_per_step: int | None = Field(None, ge=1, description="sets grad_accum to reach this many tokens/step")
    micro_batch: Literal["fixed", "auto"] = Field(
        "fixed", description="auto (CUDA): the largest batch_size that fits, then grad_accum to tokens_per_step"
    )
    fused_loss: Literal["auto", "off", "chunked", "liger"] = Field(
        "auto", description="LM head + loss without the logits: auto = liger if installed, else chunked, on CUDA"
    )
    loss_chunk_rows: int = Field(4096, ge=64, description="rows per chunk of the chunked loss")
    vocab_multiple: int = Field(128, ge=1, le=4096, description="the embedding's rows padded to a multiple of this")
    max_steps: int = Field(600, ge=1)
    lr: float = Field(3e-3, gt=0.0)
    min_lr_ratio: float = Field(0.1, ge=0.0, le=1.0)
    # wsd: warmup, a stable peak, then a linear decay to the floor over the last decay_fraction of
    # steps (MiniCPM, Hägele et al. 2024): the stable phase can be extended or branched from.
    schedule: Literal["cosine", "wsd"] = "cosine"
    decay_fraction: float = Field(0.2, gt=0.0, le=1.0, description="wsd: share of steps spent decaying")
    anneal: AnnealConfig = Field(default_factory=AnnealConfig)
    warmup_steps: int = Field(40, ge=0)
    weight_decay: float = Field(0.1, ge=0.0)
    grad_clip: float = Field(1.0, gt=0.0)
    spike_factor: float | None = Field(3.0, gt=1.0, description="loss above this x its running mean is a spike")
    skip_spikes: bool = False
    checkpoint_every: int = Field(200, ge=1)
    milestone_every: int = Field(
        0, ge=0, description="also keep the weights at every multiple of this step (for `crawl2model curve`); 0 = none"
    )
    log_every: int = Field(10, ge=1)
    val_every: int = Field(100, ge=0, description="steps between validation losses (the curve); 0 = none")
    val_rows: int = Field(64, ge=1, description="held-out rows in each validation loss")
    device: Literal["auto", "cpu", "cuda"] = "auto"
    nproc: int = Field(1, ge=1, le=1024, description="data-parallel processes; >1 launches torchrun")
    strategy: Literal["ddp", "fsdp"] = "ddp"
    compile: Literal["auto", "on", "off"] = "auto"
    threads: int = Field(0, ge=0, description="torch CPU threads per process; 0 = all cores")
    seed: int = 0

    @model_validator(mode="after")
    def _preset_and_heads(self) -> TrainConfig:
        if self.preset is not None:
            for name, value in zip(("n_layer", "n_head", "n_embd"), MODEL_PRESETS[self.preset], strict=True):
                if name not in self.model_fields_set:
                    object.__setattr__(self, name, value)
        if self.n_embd % self.n_head or (self.n_embd // self.n_head) % 2:
            raise ValueError("n_embd must be a multiple of n_head with an even head size (RoPE)")
        return self
