#!/usr/bin/env bash
# The wheels the lent GPU machine's image lacks for benchmarks/gpu_check.sh, fetched here into .whl/
# (ignored by git; the device call carries it): pydantic and its three helpers at this project's
# pins with typing_extensions (model/config.py needs them), and liger-kernel (its fused linear + cross-entropy kernel, one
# of the levers measured; pure Python over the image's own triton). The image has torch, numpy and
# pyarrow; nothing can be fetched there.
#   bash benchmarks/gpu_wheels.sh
set -euo pipefail
cd "$(dirname "$0")/.."
pin() { grep -i "^$1==" constraints.txt; }
rm -rf .whl && mkdir -p .whl
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl \
  "$(pin pydantic)" "$(pin pydantic_core)" "$(pin annotated-types)" "$(pin typing-inspection)" "$(pin typing_extensions)" liger-kernel==0.8.5
ls .whl
