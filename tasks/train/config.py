"""train's config is the model's: the trainer reads it, so it lives in `model.config`."""

from __future__ import annotations

from model.config import MODEL_PRESETS, TrainConfig

__all__ = ["MODEL_PRESETS", "TrainConfig"]
