"""Host synchronisations per training step (issue 23's "no host synchronisation in the step").

On CUDA, `torch.cuda.set_sync_debug_mode("warn")` makes every synchronising call (a `.item()`, a
device-to-host copy, a stream sync) warn; each warning is charged to the step that made it. Only the
flush steps (log and checkpoint steps, where the trainer reads losses and norms on purpose) may
synchronise; every other step should count 0. On the CPU, where nothing is queued, it counts the
Python-level reads of a tensor's value instead (`.item()`, `float(t)`, ...), the same check the tests
make, with deferred reads turned on as on CUDA.

    python benchmarks/host_syncs.py --device cuda --preset 124m [--compile on]
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from unittest import mock

import torch
from output import RESULTS, write_results
from train_throughput import add_run_args, synthetic_tokens

import model.trainer as trainer_module
from model.config import MODEL_PRESETS, TrainConfig
from model.gpt import GPTConfig
from model.trainer import train

READS = ("item", "tolist", "numpy", "__bool__", "__float__", "__int__", "__index__")


@contextlib.contextmanager
def cuda_syncs_charged(charge: Callable[[], None]) -> Iterator[None]:
    """Each "called a synchronizing CUDA operation" warning calls `charge`."""

    def on_warning(message, category, filename, lineno, file=None, line=None) -> None:
        if "synchroniz" in str(message):
            charge()

    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.showwarning = on_warning
        torch.cuda.set_sync_debug_mode("warn")
        try:
            yield
        finally:
            torch.cuda.set_sync_debug_mode("default")


@contextlib.contextmanager
def host_reads_charged(charge: Callable[[], None]) -> Iterator[None]:
    """Each Python-level read of a tensor's value calls `charge` (then reads it as usual)."""

    def reader(method: Callable) -> Callable:
        def read(self, *args, **kwargs):
            charge()
            return method(self, *args, **kwargs)

        return read

    with contextlib.ExitStack() as patches:
        for name in READS:
            patches.enter_context(mock.patch.object(torch.Tensor, name, reader(getattr(torch.Tensor, name))))
        yield


def syncs_per_step(args: argparse.Namespace, files: list[str], work: Path) -> Counter:
    """Train `args.steps` steps with every synchronisation charged to the step (1-based) making it;
    step 0 is the set-up before the first step (model, optimizer, compile happens in step 1)."""
    n_layer, n_head, n_embd = MODEL_PRESETS[args.preset]
    model_cfg = GPTConfig(vocab_size=args.vocab_size, seq_len=args.seq_len, n_layer=n_layer, n_head=n_head,
                          n_embd=n_embd)  # fmt: skip
    cfg = TrainConfig(preset=args.preset, batch_size=args.batch_size, grad_accum=args.grad_accum,
                      max_steps=args.steps, warmup_steps=2, log_every=args.log_every, checkpoint_every=10**9,
                      device=args.device, compile=args.compile, fused_loss=args.fused_loss)  # fmt: skip
    counts, current = Counter(), [0]

    def step_charged(step: int) -> contextlib.AbstractContextManager:
        current[0] = step
        return contextlib.nullcontext()

    def charge() -> None:
        counts[current[0]] += 1

    counting = cuda_syncs_charged if args.device == "cuda" else host_reads_charged
    deferred_reads = mock.patch.object(trainer_module, "reads_every_step", lambda cfg, device: False)  # as on CUDA
    with mock.patch.object(trainer_module, "step_scope", step_charged), deferred_reads, counting(charge):
        train(files, model_cfg, cfg, work / "run")
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_run_args(parser, batch_size=8, steps=12, log_every=5)
    parser.add_argument("--preset", default="tiny", choices=list(MODEL_PRESETS))
    parser.add_argument("--compile", default="off", choices=["on", "off"])
    parser.add_argument("--fused-loss", default="auto")
    parser.add_argument("--grad-accum", type=int, default=2)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        files = synthetic_tokens(Path(tmp) / "train-00000.parquet", 512, args.seq_len, args.vocab_size)
        counts = syncs_per_step(args, files, Path(tmp))
    flushes = {s for s in range(1, args.steps + 1) if s % args.log_every == 0 or s == args.steps}
    other = [s for s in range(1, args.steps + 1) if s not in flushes]
    report = {"args": vars(args) | {"out": None}, "what": "CUDA synchronisations" if args.device == "cuda"
              else "host reads of tensor values", "per_step": {str(s): counts[s] for s in range(args.steps + 1)},
              "flush_steps": sorted(flushes), "syncs_outside_flushes": sum(counts[s] for s in other),
              "syncs_at_flushes": sum(counts[s] for s in flushes)}  # fmt: skip
    rows = [[s, "flush" if s in flushes else ("set-up" if s == 0 else "step"), counts[s]]
            for s in range(args.steps + 1)]  # fmt: skip
    print(write_results(args.out, f"host-syncs-{args.device}", report,
                        f"{report['what']} per step ({args.preset}, compile {args.compile}, {args.device}): "
                        f"{report['syncs_outside_flushes']} outside the flush steps",
                        ["step", "kind", "count"], rows))  # fmt: skip


if __name__ == "__main__":
    main()
