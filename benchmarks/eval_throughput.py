"""Benchmark scoring speed: items/s, batched (padded rows, shared rows for one-token choices) against
one forward pass per choice, on MMLU-shaped items (four one-token choices after a long prompt) and
HellaSwag-shaped items (four multi-token endings). A randomly initialised model of the given preset:
speed does not depend on the weights. CPU here; on a GPU (bf16) when one is present.

    python benchmarks/eval_throughput.py [--preset small] [--items 200] [--batch-size 32]

Results: benchmarks/results/<date>-<host>-eval.json/.md. Projection: MMLU's 14,042 items at the
measured batched rate.
"""

from __future__ import annotations

import argparse
import random
import time
from pathlib import Path

import torch
from output import RESULTS, write_results

from model.benchmarks import continuation_logprob, item_results
from model.config import MODEL_PRESETS
from model.gpt import GPT, GPTConfig
from model.items import Item

WORDS = "the of model data token river stone paper value result method system answer question".split()


def items(kind: str, n: int, seed: int = 0) -> list[Item]:
    rng = random.Random(seed)
    text = lambda k: " ".join(rng.choice(WORDS) for _ in range(k))  # noqa: E731
    if kind == "mmlu":
        return [Item("mmlu", str(i), f"{text(60)}\nA. {text(6)}\nB. {text(6)}\nC. {text(6)}\nD. {text(6)}\nAnswer:",
                     [" A", " B", " C", " D"], i % 4) for i in range(n)]  # fmt: skip
    return [Item("hellaswag", str(i), text(40), [" " + text(rng.randint(8, 20)) for _ in range(4)], i % 4)
            for i in range(n)]  # fmt: skip


def encode_chars(text: str) -> list[int]:
    return [ord(c) % 256 for c in text]


def rate(fn, n: int) -> float:
    started = time.perf_counter()
    fn()
    return n / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--preset", default="small", choices=list(MODEL_PRESETS))
    parser.add_argument("--items", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--one-items", type=int, default=0, help="items for the one-forward-per-choice rate "
                        "(default: --items; fewer on a GPU saves time)")  # fmt: skip
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    n_layer, n_head, n_embd = MODEL_PRESETS[args.preset]
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = GPT(GPTConfig(vocab_size=256, seq_len=512, n_layer=n_layer, n_head=n_head, n_embd=n_embd)).to(device)
    model.eval()
    rows, report = [], {"preset": args.preset, "device": device, "batch_size": args.batch_size, "tasks": {}}
    for kind in ("mmlu", "hellaswag"):
        batch, few = items(kind, args.items), items(kind, args.one_items or args.items)
        item_results(model, encode_chars, few[: args.batch_size], args.batch_size)  # warm-up: kernels, cuBLAS
        one = rate(lambda b=few: [continuation_logprob(model, encode_chars, i.context, c) for i in b
                                  for c in i.choices], len(few))  # fmt: skip
        batched = rate(lambda b=batch: item_results(model, encode_chars, b, args.batch_size), len(batch))
        report["tasks"][kind] = {"items": len(batch), "one_at_a_time_items": len(few), "one_at_a_time_items_per_s": one,
                                 "batched_items_per_s": batched, "speedup": batched / one}  # fmt: skip
        rows.append([kind, len(batch), round(one, 1), round(batched, 1), round(batched / one, 2)])
    report["mmlu_14042_items_minutes"] = 14042 / report["tasks"]["mmlu"]["batched_items_per_s"] / 60
    rows.append(["MMLU 14,042 items, projected", "", "", f"{report['mmlu_14042_items_minutes']:.1f} min", ""])
    print(write_results(args.out, "eval", report, f"Scoring speed, {args.preset} preset on {device}",
                        ["items", "n", "one at a time (items/s)", "batched (items/s)", "speedup"], rows))  # fmt: skip


if __name__ == "__main__":
    main()
