"""Training throughput of our train loop: tokens/s (and MFU on a GPU) per preset, median of repeats.

CPU (what CI machines have):
    python benchmarks/train_throughput.py --device cpu --presets tiny,small
One H100 (the 124M preset, compile on and off; the goal is MFU >= 50%):
    python benchmarks/train_throughput.py --device cuda --presets 124m --compile on,off \\
        --batch-size 16 --seq-len 1024 --vocab-size 50304 --steps 60
Results go to benchmarks/results/<date>-<host>-train.json and .md.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import torch

# These run as scripts, so their own folder is on sys.path.
from measure import timed_throughput
from output import RESULTS, write_results

from model.config import MODEL_PRESETS, TrainConfig
from model.gpt import GPTConfig
from model.trainer import train
from storage.shards import write_parquet


def synthetic_tokens(path: Path, rows: int, seq_len: int, vocab: int) -> list[str]:
    data = np.random.default_rng(0).integers(0, vocab, size=(rows, seq_len + 1), dtype=np.int32)
    write_parquet(pa.table({"tokens": pa.array(list(data), pa.list_(pa.int32()))}), path, row_group_size=256)
    return [str(path)]


def measure(preset: str, compile_mode: str, fused_loss: str, args: argparse.Namespace, files: list[str],
            work: Path) -> dict:  # fmt: skip
    n_layer, n_head, n_embd = MODEL_PRESETS[preset]
    model_cfg = GPTConfig(vocab_size=args.vocab_size, seq_len=args.seq_len, n_layer=n_layer, n_head=n_head,
                          n_embd=n_embd)  # fmt: skip
    cfg = TrainConfig(preset=preset, batch_size=args.batch_size, max_steps=args.steps, warmup_steps=2,
                      log_every=args.log_every, checkpoint_every=10**9, device=args.device, compile=compile_mode,
                      threads=args.threads, fused_loss=fused_loss, micro_batch=args.micro_batch,
                      tokens_per_step=args.tokens_per_step)  # fmt: skip
    runs = []
    for repeat in range(args.repeats):
        started = time.perf_counter()
        result = train(files, model_cfg, cfg, work / f"{preset}-{compile_mode}-{fused_loss}-{repeat}")
        timed = timed_throughput(result["history"], warm=1)  # the first interval holds the warm-up
        runs.append({
            "tokens_per_s": timed["tokens_per_s"],
            "mfu": timed.get("mfu"),
            "seconds": time.perf_counter() - started,
            "final_loss": result["history"][-1]["loss"],
        })  # fmt: skip
    return {
        "preset": preset, "compile": compile_mode, "fused_loss": fused_loss, "params": result["params"],
        "device": result["device"], "tokens_per_step": result["tokens_per_step"], "grad_accum": result["grad_accum"],
        "tokens_per_s": statistics.median(r["tokens_per_s"] for r in runs),
        "mfu": statistics.median(r["mfu"] for r in runs) if runs[0]["mfu"] is not None else None,
        "repeats": runs,
    }  # fmt: skip


def add_run_args(parser: argparse.ArgumentParser, batch_size: int, steps: int, log_every: int) -> None:
    """The device, batch and synthetic-data shape every training benchmark takes."""
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--batch-size", type=int, default=batch_size)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--vocab-size", type=int, default=4096)
    parser.add_argument("--steps", type=int, default=steps)
    parser.add_argument("--log-every", type=int, default=log_every)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_run_args(parser, batch_size=16, steps=40, log_every=10)
    parser.add_argument("--presets", default="tiny,small")
    parser.add_argument("--compile", default="off", help="comma list of on/off")
    parser.add_argument("--fused-loss", default="off", help="comma list of off/chunked/liger/auto")
    parser.add_argument("--micro-batch", default="fixed", choices=["fixed", "auto"])
    parser.add_argument("--tokens-per-step", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--label", default="", help="suffix of the results file name, e.g. -chunked-b32")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        files = synthetic_tokens(work / "train-00000.parquet", 4096, args.seq_len, args.vocab_size)
        results = [measure(p, c, f, args, files, work) for p in args.presets.split(",") for c in args.compile.split(",")
                   for f in args.fused_loss.split(",")]  # fmt: skip
    device = torch.cuda.get_device_name() if args.device == "cuda" else platform.processor() or platform.machine()
    report = {"device": device, "torch": torch.__version__, "threads": torch.get_num_threads(),
              "args": vars(args) | {"out": None}, "results": results}  # fmt: skip
    rows = [[r["preset"], f"{r['params']:,}", r["compile"], r["fused_loss"], r["tokens_per_step"], r["grad_accum"],
             f"{r['tokens_per_s']:,.0f}", f"{r['mfu']:.1%}" if r["mfu"] is not None else "n/a"]
            for r in results]  # fmt: skip
    print(write_results(
        args.out, f"train-{args.device}{args.label}", report,
        f"Training throughput ({device}, torch {torch.__version__}, {report['threads']} threads)",
        ["preset", "params", "compile", "fused loss", "tokens/step", "grad accum", "tokens/s (median of repeats)",
         "MFU"], rows,
    ))  # fmt: skip


if __name__ == "__main__":
    main()
