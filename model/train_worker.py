"""One torchrun rank of the train stage: `torchrun ... -m model.train_worker SPEC.json`.

The spec names the token shards, the model and train configs and the output directory. Rank 0
appends each log entry to `_state/train_log.jsonl` (the launching Prefect task follows it) and
writes `_state/train_result.json` at the end.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

from model.config import TrainConfig
from model.distributed import setup, teardown
from model.gpt import GPTConfig
from model.trainer import train
from storage.shards import atomic_write_json


def main(spec_path: str) -> None:
    spec = json.loads(Path(spec_path).read_text())
    cfg = TrainConfig.model_validate(spec["train"])
    out = Path(spec["out"])
    ctx = setup(cfg.device)
    log_file = out / "_state" / "train_log.jsonl"

    def on_log(entry: dict[str, float]) -> None:
        with open(log_file, "a") as f:
            f.write(json.dumps(entry) + "\n")

    try:
        init = torch.load(spec["init"], map_location="cpu", weights_only=True) if spec.get("init") else None
        result = train(spec["files"], GPTConfig(**spec["model"]), cfg, out, on_log, ctx, spec.get("val_files"),
                       spec.get("anneal_files"), init)  # fmt: skip
        if ctx.is_main:
            atomic_write_json(out / "_state" / "train_result.json", result)
    finally:
        teardown(ctx)


if __name__ == "__main__":
    main(sys.argv[1])
