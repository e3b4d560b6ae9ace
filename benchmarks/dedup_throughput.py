"""MinHash dedup throughput and memory on generated near-duplicate documents.

    python benchmarks/dedup_throughput.py [--docs 100000] [--repeats 1] [--workers 2]

Input: `tasks.dedup.quality_check.synthetic_documents` (60% originals, 40% edited copies), written as
5,000-document shards. Measured per phase, with the pipeline's default dedup config:
signatures (datasketch, one process, then a process pool), and the bucket/cluster step (DuckDB +
union-find + verification). Each measurement runs in a fresh subprocess, so its peak RSS is its own.
Results: benchmarks/results/<date>-<host>-dedup.json/.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from output import RESULTS, write_results

ROOT = Path(__file__).resolve().parents[1]
PHASE = """
import json, resource, sys, time
from pathlib import Path
from tasks.dedup.config import DedupConfig
from tasks.dedup.phases import signature_shard
from tasks.dedup.clusters import find_clusters
from tasks.stage import map_shards
if __name__ == "__main__":
    phase, shards, work, workers = sys.argv[1], json.loads(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4])
    cfg = DedupConfig(workers=workers, quality_check_docs=0)
    started = time.perf_counter()
    if phase == "signatures":
        map_shards(signature_shard, shards, work, cfg, workers=workers, label="bench")
        stats = {}
    else:
        stats = find_clusters(work, shards, cfg)
    seconds = time.perf_counter() - started
    usage = [resource.getrusage(who).ru_maxrss for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    peak = max(usage)
    print(json.dumps({"seconds": seconds, "peak_rss_mb": peak / 1024, **stats}))
"""


def run_phase(script: Path, phase: str, shards: list[str], work: Path, workers: int) -> dict:
    cmd = [sys.executable, str(script), phase, json.dumps(shards), str(work), str(workers)]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    if out.returncode != 0:
        raise SystemExit(out.stderr[-4000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def write_shards(n: int, folder: Path) -> list[str]:
    """In a subprocess: a child's peak RSS includes what it inherited at fork, so this process stays small."""
    code = (
        "import json, sys; from pathlib import Path; from tasks.dedup.quality_check import write_synthetic_shards; "
        "print(json.dumps(write_synthetic_shards(int(sys.argv[1]), 0, Path(sys.argv[2]))))"
    )
    out = subprocess.run([sys.executable, "-c", code, str(n), str(folder)], cwd=ROOT, capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})  # fmt: skip
    if out.returncode != 0:
        raise SystemExit(out.stderr[-4000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--docs", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        started = time.perf_counter()
        shards = write_shards(args.docs, root / "input")
        generate_s = time.perf_counter() - started
        script = root / "phase.py"
        script.write_text(PHASE)
        runs: dict[str, list[dict]] = {"signatures x1": [], f"signatures x{args.workers}": [], "buckets+clusters": []}
        for rep in range(args.repeats):
            for workers in (1, args.workers):
                work = root / f"work-{rep}-{workers}"
                runs[f"signatures x{workers}"].append(run_phase(script, "signatures", shards, work, workers))
            runs["buckets+clusters"].append(run_phase(script, "clusters", shards, work, 1))

    results = {}
    for name, reps in runs.items():
        seconds = statistics.median(r["seconds"] for r in reps)
        cores = int(name.split("x")[-1]) if " x" in name else 1
        results[name] = {
            "seconds": round(seconds, 2),
            "docs_per_s": round(args.docs / seconds),
            "docs_per_s_per_core": round(args.docs / seconds / cores),
            "peak_rss_mb": round(max(r["peak_rss_mb"] for r in reps), 1),
            **{k: v for k, v in reps[-1].items() if k not in ("seconds", "peak_rss_mb", "cluster_seconds")},
        }
    report = {"docs": args.docs, "repeats": args.repeats, "workers": args.workers, "generate_s": round(generate_s, 1),
              "config": "14 bands x 8 rows, 112 permutations, 5-word shingles, exact-Jaccard verification",
              "results": results}  # fmt: skip
    rows = [
        [name, r["seconds"], r["docs_per_s"], r["docs_per_s_per_core"], r["peak_rss_mb"]] for name, r in results.items()
    ]
    print(write_results(args.out, "dedup", report, f"Dedup on {args.docs:,} generated documents",
                        ["phase", "seconds", "docs/s", "docs/s per core", "peak RSS MB"], rows))  # fmt: skip


if __name__ == "__main__":
    main()
