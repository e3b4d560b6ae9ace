#!/usr/bin/env bash
# The GPU check, on one CUDA device: the trainer's tokens/s and MFU for the 124M preset, then each
# lever of issue 23 measured one at a time (goal: MFU >= 50% at 124M, >= 55% at 350M), then ours vs
# the plain PyTorch loop on the same GPU (bf16, compile on both sides, median of 3), then scoring
# items/s at 124M. Results go to the folder given (default benchmarks/results), one file per group.
#   bash benchmarks/gpu_check.sh [out-folder]
set -euo pipefail
out=${1:-benchmarks/results}
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
python3 -c "import torch; print(torch.__version__, torch.cuda.get_device_name())"
tt() { python3 benchmarks/train_throughput.py --device cuda --seq-len 1024 --vocab-size 50304 --steps 30 \
  --log-every 10 --repeats 1 --compile on --out "$out" "$@"; }
# 1. baseline (plain loss), then the chunked loss at the same micro-batch (the fused path alone)
tt --presets 124m --batch-size 16 --fused-loss off,chunked --label -levers-b16
# 2. the larger micro-batches the fused loss makes fit
tt --presets 124m --batch-size 32 --fused-loss chunked --label -levers-b32
tt --presets 124m --batch-size 64 --fused-loss chunked --label -levers-b64
# 3. the automatic micro-batch (largest that fits), accumulating to 512k tokens per step
tt --presets 124m --micro-batch auto --tokens-per-step 524288 --fused-loss auto --label -levers-auto
# 4. 350M with the same levers
tt --presets 350m --micro-batch auto --tokens-per-step 524288 --fused-loss auto --label -levers-350m
python3 benchmarks/run.py --only train --device cuda --presets 124m --train-steps 30 --repeats 3 --out "$out"
# 5. scoring speed at 124M (issue 21: MMLU's 14,042 items in under 5 minutes)
python3 benchmarks/eval_throughput.py --preset 124m --items 2000 --batch-size 64 --out "$out"
