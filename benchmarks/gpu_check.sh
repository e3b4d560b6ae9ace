#!/usr/bin/env bash
# The GPU check, on one CUDA device, in two parts that each fit one 10-minute call of a lent machine
# (a lease is ~15 minutes in all, start-up included), most important first:
#   headline: the 124M and 350M presets with every lever on (automatic micro-batch, fused loss,
#             512k tokens per step; goal of issue 23: MFU >= 50% at 124M, >= 55% at 350M), scoring
#             items/s at 124M (issue 21: MMLU's 14,042 items in under 5 minutes)
#   levers:   host synchronisations per step, then each lever alone at 124M (plain vs chunked vs
#             Liger loss at 16 x 1024, then micro-batch 64), then ours vs the plain PyTorch loop
# A step that fails is reported and the next one runs. Results: one file pair per step under OUT
# (default benchmarks/results); with PACK, OUT is also packed into that .tgz after every step, so a
# call that runs out of time still returns what finished.
#   bash benchmarks/gpu_wheels.sh                       # here, once: the wheels the image lacks
#   bash benchmarks/gpu_check.sh headline|levers|all [OUT] [PACK]
set -uo pipefail
part=${1:-all} out=${2:-benchmarks/results} pack=${3:-}
cd "$(dirname "$0")/.."
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
python3 -c "import torch; print(torch.__version__, torch.cuda.get_device_name())" || exit 1
failed=()
step() {  # step NAME COMMAND...: run, note a failure, pack what is there
  echo "== $1 ($(date +%T))"
  "${@:2}" || failed+=("$1")
  if [ -n "$pack" ]; then tar czf "$pack.tmp" -C "$out" . && mv "$pack.tmp" "$pack"; fi
}
tt() { python3 benchmarks/train_throughput.py --device cuda --seq-len 1024 --vocab-size 50304 --steps 30 \
  --log-every 10 --repeats 1 --compile on --out "$out" "$@"; }
every_lever=(--micro-batch auto --tokens-per-step 524288 --fused-loss auto)
if [ "$part" = headline ] || [ "$part" = all ]; then
  step 124m tt --presets 124m "${every_lever[@]}" --label -levers-124m
  step 350m tt --presets 350m "${every_lever[@]}" --label -levers-350m
  step eval python3 benchmarks/eval_throughput.py --preset 124m --items 2000 --one-items 200 --batch-size 64 --out "$out"
fi
if [ "$part" = levers ] || [ "$part" = all ]; then
  step host-syncs python3 benchmarks/host_syncs.py --device cuda --preset 124m --seq-len 1024 --vocab-size 50304 \
    --batch-size 16 --grad-accum 2 --steps 12 --log-every 5 --out "$out"
  step loss-b16 tt --presets 124m --batch-size 16 --fused-loss off,chunked --label -levers-b16
  step liger-b16 tt --presets 124m --batch-size 16 --fused-loss liger --label -levers-b16-liger
  step chunked-b64 tt --presets 124m --batch-size 64 --fused-loss chunked --label -levers-b64
  step side-by-side python3 benchmarks/run.py --only train --device cuda --presets 124m --train-steps 30 --repeats 2 \
    --out "$out"
fi
[ ${#failed[@]} -eq 0 ] || { echo "failed: ${failed[*]}"; exit 1; }
