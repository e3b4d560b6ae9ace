#!/usr/bin/env bash
# The GPU check, on one CUDA device: the trainer's tokens/s and MFU for the 124M preset with
# torch.compile on and off (goal: MFU >= 50%), then ours vs the plain PyTorch loop on the same GPU
# (bf16, compile on both sides, median of 3). Results go to the folder given (default benchmarks/results).
#   bash benchmarks/gpu_check.sh [out-folder]
set -euo pipefail
out=${1:-benchmarks/results}
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
python3 -c "import torch; print(torch.__version__, torch.cuda.get_device_name())"
python3 benchmarks/train_throughput.py --device cuda --presets 124m --compile on,off --batch-size 16 \
  --seq-len 1024 --vocab-size 50304 --steps 40 --log-every 10 --repeats 1 --out "$out"
python3 benchmarks/run.py --only train --device cuda --presets 124m --train-steps 30 --repeats 3 --out "$out"
