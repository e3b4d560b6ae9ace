"""Keep the benchmark scripts working on a tiny input (their timings are not asserted)."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_train_throughput_benchmark_runs(tmp_path):
    subprocess.run([sys.executable, "benchmarks/train_throughput.py", "--presets", "tiny", "--steps", "4",
                    "--log-every", "2", "--repeats", "1", "--seq-len", "16", "--vocab-size", "64",
                    "--out", str(tmp_path)], cwd=ROOT, check=True, capture_output=True)  # fmt: skip
    [result] = tmp_path.glob("*-train-cpu.json")
    report = json.loads(result.read_text())
    assert report["results"][0]["preset"] == "tiny" and report["results"][0]["tokens_per_s"] > 0
