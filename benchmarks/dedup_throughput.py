"""MinHash dedup at growing sizes: seconds, peak RSS and disk per phase, and how time per document grows.

    python benchmarks/dedup_throughput.py [--docs 100000 1000000 10000000] [--workers 2]
                                          [--memory-limit-mb 512] [--partitions 8]

Input: `tasks.dedup.quality_check.synthetic_documents` (60% originals, 40% edited copies), made in
blocks of 500,000 documents (copies within a block; 5,000-document shards; a process per core), so
10M documents never sit in memory. Per size, each phase in a fresh subprocess (its peak RSS is its own): signatures with
`workers` processes, then the global phase (the document table, the partitioned pair and
verification tasks in a pool of `workers`, connected components) with the pipeline's default dedup
settings otherwise. Peak RSS is reported for the flow process, for its largest task process and for
all of them together (the last two sampled every 0.1 s).
Results: benchmarks/results/<date>-<host>-dedup.json/.md and a figure of the curve.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

from output import RESULTS, write_results

ROOT = Path(__file__).resolve().parents[1]
BLOCK = 500_000
PHASE = """
import json, resource, sys, threading, time
from pathlib import Path
import psutil
from tasks.dedup.config import DedupConfig
from tasks.dedup.phases import signature_shard
from tasks.dedup.clusters import find_clusters
from tasks.stage import map_shards

PEAK = {"task": 0, "all": 0}

def sample(stop):
    # Pool workers are the forkserver's children, not ours: RUSAGE_CHILDREN never sees them. Sampled.
    me = psutil.Process()
    while not stop.is_set():
        sizes = []
        for proc in me.children(recursive=True):
            try:
                sizes.append(proc.memory_info().rss)
            except psutil.Error:
                pass
        PEAK["task"] = max(PEAK["task"], max(sizes, default=0))
        PEAK["all"] = max(PEAK["all"], sum(sizes) + me.memory_info().rss)
        time.sleep(0.1)

if __name__ == "__main__":
    phase, shards, work = sys.argv[1], json.loads(Path(sys.argv[2]).read_text()), Path(sys.argv[3])
    cfg = DedupConfig.model_validate({**json.loads(sys.argv[4]), "quality_check_docs": 0})
    stop = threading.Event()
    threading.Thread(target=sample, args=(stop,), daemon=True).start()
    started = time.perf_counter()
    if phase == "signatures":
        map_shards(signature_shard, shards, work, cfg, workers=cfg.workers, label="bench")
        stats = {}
    else:
        stats = find_clusters(work, shards, cfg)
    seconds = time.perf_counter() - started
    stop.set()
    flow = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": seconds, "peak_rss_flow_mb": flow, "peak_rss_task_mb": PEAK["task"] / 2**20,
                      "peak_rss_all_mb": PEAK["all"] / 2**20, **stats}))
"""
GENERATE = """
import json, os, sys
from multiprocessing import Pool
from pathlib import Path
from tasks.dedup.quality_check import synthetic_documents, write_synthetic_shards

def block(args):
    k, size, folder = args
    docs = synthetic_documents(size, seed=k)
    for d in docs:
        d["doc_id"] = f"b{k:04d}-{d['doc_id']}"
    return write_synthetic_shards(len(docs), k, Path(folder) / f"block-{k:04d}", docs)

if __name__ == "__main__":
    n, size, folder = int(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3])
    blocks = [(k, min(size, n - start), str(folder)) for k, start in enumerate(range(0, n, size))]
    with Pool(min(len(blocks), os.cpu_count() or 1)) as pool:
        paths = [p for found in pool.map(block, blocks) for p in found]
    (folder / "shards.json").write_text(json.dumps(paths))
"""
# Folders (and files) of the work directory, by the phase that writes them.
DISK = {"signatures": ["sigs", "buckets"], "global": ["docs.parquet", "pairs", "candidates", "values", "measured",
                                                      "clusters.parquet"]}  # fmt: skip


def run(script: str, *args: str) -> str:
    out = subprocess.run([sys.executable, "-c", script, *args], cwd=ROOT, capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})  # fmt: skip
    if out.returncode != 0:
        raise SystemExit(out.stderr[-4000:])
    return out.stdout


def disk_mb(paths: list[Path]) -> float:
    files = [f for p in paths if p.exists() for f in ([p] if p.is_file() else p.rglob("*")) if f.is_file()]
    return round(sum(f.stat().st_size for f in files) / 2**20, 1)


def measure(n: int, root: Path, settings: dict) -> dict:
    """One size: generate, signatures, global phase; seconds, peak RSS and disk of each."""
    started = time.perf_counter()
    run(GENERATE, str(n), str(BLOCK), str(root / "input"))
    generate_s = time.perf_counter() - started
    shards_file, work = root / "input" / "shards.json", root / "work"
    phases = {}
    for phase in ("signatures", "global"):
        result = json.loads(run(PHASE, phase, str(shards_file), str(work), json.dumps(settings)).splitlines()[-1])
        result["disk_mb"] = disk_mb([work / p for p in DISK[phase]])
        result["us_per_doc"] = round(result["seconds"] / n * 1e6, 2)
        phases[phase] = result
    return {"docs": n, "generate_s": round(generate_s, 1), "input_mb": disk_mb([root / "input"]), **phases}


def plot(sizes: list[dict], path: Path) -> None:
    from tasks.figures import pyplot, save_figure

    plt = pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    docs = [s["docs"] for s in sizes]
    for phase in ("signatures", "global"):
        left.plot(docs, [s[phase]["us_per_doc"] for s in sizes], marker="o", label=phase)
        right.plot(docs, [s[phase]["peak_rss_all_mb"] for s in sizes], marker="o", label=f"{phase}: all processes")
    right.plot(docs, [s["global"]["peak_rss_task_mb"] for s in sizes], marker="o", label="global: largest task")
    right.plot(docs, [s["global"]["peak_rss_flow_mb"] for s in sizes], marker="o", label="global: flow process")
    for ax, label in ((left, "microseconds per document"), (right, "peak RSS, MB")):
        ax.set_xscale("log")
        ax.set_xlabel("documents")
        ax.set_ylabel(label)
        ax.set_ylim(bottom=0)
        ax.legend()
    left.set_title("time per document (flat = linear)")
    right.set_title("memory")
    save_figure(fig, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--docs", type=int, nargs="+", default=[100_000])
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--memory-limit-mb", type=int, default=512, help="dedup.memory_limit_mb (per DuckDB)")
    parser.add_argument("--partitions", type=int, default=8, help="dedup.partitions")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--name", default="dedup", help="the results file's name (after date and host)")
    args = parser.parse_args()
    settings = {"workers": args.workers, "memory_limit_mb": args.memory_limit_mb, "partitions": args.partitions}
    sizes = []
    for n in args.docs:
        with tempfile.TemporaryDirectory() as tmp:
            sizes.append(measure(n, Path(tmp), settings))
            print(json.dumps(sizes[-1]), file=sys.stderr, flush=True)
    for before, after in zip(sizes, sizes[1:], strict=False):
        for phase in ("signatures", "global"):
            after[phase]["time_per_doc_growth"] = round(after[phase]["us_per_doc"] / before[phase]["us_per_doc"], 3)
    report = {"workers": args.workers, "settings": settings, "block_docs": BLOCK,
              "config": "14 bands x 8 rows, 112 permutations, 5-word shingles, exact-Jaccard verification",
              "sizes": sizes}  # fmt: skip
    rows = [[f"{s['docs']:,}", phase, round(s[phase]["seconds"], 1), s[phase]["us_per_doc"],
             s[phase].get("time_per_doc_growth", ""), round(s[phase]["peak_rss_flow_mb"]),
             round(s[phase]["peak_rss_task_mb"]), round(s[phase]["peak_rss_all_mb"]), s[phase]["disk_mb"]]
            for s in sizes for phase in ("signatures", "global")]  # fmt: skip
    counts = ", ".join(f"{s['docs']:,}" for s in sizes)
    title = f"Dedup at {counts} generated documents"
    headers = [
        "documents",
        "phase",
        "seconds",
        "us/doc",
        "growth",
        "peak RSS flow MB",
        "largest task MB",
        "all processes MB",
        "disk MB",
    ]
    print(write_results(args.out, args.name, report, title, headers, rows))
    if len(sizes) > 1:
        plot(sizes, args.out / f"{date.today()}-{socket.gethostname()}-{args.name}.png")


if __name__ == "__main__":
    main()
