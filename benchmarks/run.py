"""Every benchmark, side by side with the tools people would use instead, in one command:

    python benchmarks/run.py [--repeats 3] [--large-pages 21600] [--workers 2] [--quick]

Inputs: the embedded sample's WARC files (2,400 pages) and a larger WARC set from the same
generator (`--large-pages`: several samples with other seeds, one WARC file each, since the generator
draws on about 2,300 source pages); 20,000 generated near-duplicate documents for MinHash.
Each measurement runs in its own process (`benchmarks/measure.py`), timed there; peak RSS twice: the
largest single process (`wait4`) and the whole process tree's sum (sampled every 50 ms with psutil, so
pool workers count); every figure is the median of `--repeats`. `--only train --device cuda` runs the
training rows on a GPU (bf16, torch.compile on both sides).
Comparisons use the same input, the same thresholds and the same number of cores:
- extract + heuristic filters: ours vs datatrove (WarcReader, Trafilatura, Gopher repetition and
  quality, C4 quality), one process and `--workers` processes; ours also with fastwarc;
- MinHash dedup: ours vs datatrove's four MinHash stages (5-grams, 14 x 8);
- MinHash signatures alone, one process: ours vs the datasketch SHA-1 path it replaced, datatrove's
  hashing and permutations, rensa (Rust), on the same shingles and 112 permutations
  (`minhash_signatures.py`), plus the dedup quality check's recall and precision with the old and
  the new signatures;
- extract with filter's URL rules before trafilatura vs after, a blocklist covering ~20% of the
  sample's pages (`url_prefilter.py`);
- tokenization: ours vs HF tokenizers and tiktoken (`tokenize_throughput.py`);
- a training step, tiny and small presets: ours vs a plain PyTorch GPT of the same shape;
- scaling: the pipeline (acquire..tokenize, Prefect included) on 1x, 2x, 4x of a quarter of the
  large input: time and peak memory.
Results: benchmarks/results/<date>-<host>.json and .md. `--quick` shrinks everything (for tests).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

import psutil
from output import RESULTS, write_results

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PYTHONPATH = os.pathsep.join(filter(None, [str(ROOT), str(HERE), os.environ.get("PYTHONPATH")]))
ENV = {**os.environ, "PYTHONPATH": PYTHONPATH, "PREFECT_LOGGING_LEVEL": "WARNING"}
TARGETS = {"extract+filter": 1.0, "minhash": 2.0, "signatures": 4.0, "prefilter": 1.0, "train": 1.0}


class TreeRSS(threading.Thread):
    """Samples the summed RSS of a process and all its descendants (pool workers that their parent never
    reaps included, which wait4's figure misses) every `interval` seconds; keeps the peak."""

    def __init__(self, pid: int, interval: float = 0.05):
        super().__init__(daemon=True)
        self.root, self.interval, self.peak, self.done = psutil.Process(pid), interval, 0, threading.Event()

    def run(self) -> None:
        while not self.done.wait(self.interval):
            with contextlib.suppress(psutil.Error):
                procs = [self.root, *self.root.children(recursive=True)]
                total = 0
                for p in procs:
                    with contextlib.suppress(psutil.Error):
                        total += p.memory_info().rss
                self.peak = max(self.peak, total)


def spawn(name: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    """Run one measurement in a fresh process; add its peak RSS: the largest single process (wait4: itself
    and the children it reaped) and the whole process tree's (sampled)."""
    cmd = [sys.executable, str(HERE / "measure.py"), name, json.dumps(kwargs)]
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=ENV, stdout=out, stderr=err, text=True)
        tree = TreeRSS(proc.pid)
        tree.start()
        _, status, usage = os.wait4(proc.pid, 0)  # wait4, not wait: it returns the child's rusage
        tree.done.set()
        tree.join()
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if proc.returncode != 0:
        raise SystemExit(f"{name} failed:\n{stderr[-4000:]}")
    result = json.loads(stdout.strip().splitlines()[-1])
    result["peak_rss_mb"] = usage.ru_maxrss / 1024
    result["peak_tree_rss_mb"] = max(tree.peak / 2**20, result["peak_rss_mb"])
    return result


def interleaved(specs: list[tuple[str, dict[str, Any]]], repeats: int, scratch: Path) -> list[dict[str, Any]]:
    """Each repeat runs every (measurement, kwargs) once, in turn, so that a slow spell of the machine
    hits both sides of a comparison alike, first-to-last on even repeats and last-to-first on odd ones,
    so that neither side always runs first; per spec: median seconds (and tokens/s), max peak RSS."""
    runs: list[list[dict[str, Any]]] = [[] for _ in specs]
    for i in range(repeats):
        order = list(enumerate(specs))
        for j, (name, kwargs) in order if i % 2 == 0 else order[::-1]:
            work = scratch / f"{name}-{j}-{i}"
            shutil.rmtree(work, ignore_errors=True)
            work.mkdir(parents=True)
            runs[j].append(spawn(name, {**kwargs, "work": str(work)}))
            shutil.rmtree(work, ignore_errors=True)
    return [summarize(r) for r in runs]


def repeated(name: str, kwargs: dict[str, Any], repeats: int, scratch: Path) -> dict[str, Any]:
    return interleaved([(name, kwargs)], repeats, scratch)[0]


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    out = {k: v for k, v in runs[-1].items() if k not in ("seconds", "peak_rss_mb", "peak_tree_rss_mb")}
    out["seconds"] = statistics.median(r["seconds"] for r in runs)
    out["peak_rss_mb"] = round(max(r["peak_rss_mb"] for r in runs), 1)
    out["peak_tree_rss_mb"] = round(max(r["peak_tree_rss_mb"] for r in runs), 1)
    out["repeats"] = [round(r["seconds"], 3) for r in runs]
    if "tokens_per_s" in runs[0]:
        out["tokens_per_s"] = statistics.median(r["tokens_per_s"] for r in runs)
        out["repeats_tokens_per_s"] = [round(r["tokens_per_s"]) for r in runs]
    if "tokens_per_s_window" in runs[0]:
        out["tokens_per_s_window"] = statistics.median(r["tokens_per_s_window"] for r in runs)
    if "steady_seconds" in runs[0]:
        out["steady_seconds"] = statistics.median(r["steady_seconds"] for r in runs)
        out["repeats_steady"] = [round(r["steady_seconds"], 3) for r in runs]
    return out


def large_layout(pages: int) -> tuple[int, int]:
    """(files, pages per file) of the large input: at most 2,400 pages per file (the generator draws
    on about 2,300 source pages), at least 4 files (the scaling curve takes 1/4, 1/2 and all)."""
    files = max(4, -(-pages // 2400))
    return files, pages // files


def make_inputs(root: Path, sample_pages: int, large_pages: int, synthetic_docs: int) -> dict[str, Any]:
    """Written by a child process, so this one stays small (a child's peak RSS counts what it forked with)."""
    files, per_file = large_layout(large_pages)
    code = f"""
import json, sys
from pathlib import Path
from tasks.sample.warc import write_sample
from tasks.dedup.quality_check import synthetic_documents, write_synthetic_shards
import gzip
root = Path({str(root)!r})
sample = write_sample(root / "sample", n_pages={sample_pages}, planted=max(1, {sample_pages} // 100), seed=0,
                      n_files=4, truncate_last=False)
# The generator draws on ~2,300 source pages; the large input is several samples with other seeds,
# one WARC file each (pages repeat across files with other hosts, layout and planted cases).
large = {{"warc_files": []}}
for i in range({files}):
    large["warc_files"] += write_sample(root / "large" / str(i), n_pages={per_file}, planted=max(1, {per_file} // 100),
                                        seed=1 + i, n_files=1, truncate_last=False)["warc_files"]
docs = synthetic_documents({synthetic_docs}, 0)
shards = write_synthetic_shards({synthetic_docs}, 0, root / "synthetic", docs)
(root / "synthetic_jsonl").mkdir()
for i in range(0, {synthetic_docs}, 5000):
    with gzip.open(root / "synthetic_jsonl" / f"part-{{i // 5000:05d}}.jsonl.gz", "wt") as f:
        for d in docs[i : i + 5000]:
            f.write(json.dumps({{"id": d["doc_id"], "text": d["text"]}}) + "\\n")
(root / "large_all").mkdir()
for i, path in enumerate(large["warc_files"]):
    (root / "large_all" / f"part-{{i:03d}}.warc.gz").symlink_to(path)
large_files = [str(root / "large_all" / f"part-{{i:03d}}.warc.gz") for i in range(len(large["warc_files"]))]
print(json.dumps({{"sample": sample["warc_files"], "sample_truth": sample["ground_truth"], "large": large_files,
                  "synthetic": shards}}))
"""
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=ENV, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(out.stderr[-4000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def rate(x: float) -> float | int:
    return round(x) if x >= 100 else round(x, 1)  # whole numbers in the table, not 1.269e+04


def per_s(count: int, r: dict) -> float:
    """Per second of the steady state where a measurement has one (signatures), else of its whole run."""
    seconds = r.get("steady_seconds") or r["seconds"]
    return count / seconds if seconds else 0.0


SECTIONS = ("extract", "minhash", "signatures", "prefilter", "train", "scaling", "tokenize")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sample-pages", type=int, default=2400)
    parser.add_argument("--large-pages", type=int, default=21600)
    parser.add_argument("--synthetic-docs", type=int, default=20000)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--train-steps", type=int, default=60)
    parser.add_argument("--presets", default="tiny,small")
    parser.add_argument(
        "--device",
        default="cpu",
        choices=["cpu", "cuda"],
        help="training rows; cuda: bf16, torch.compile on both sides, 1024 x 16 tokens, vocab 50304",
    )
    parser.add_argument(
        "--only",
        default=",".join(SECTIONS),
        help=f"comma list of {', '.join(SECTIONS)}; a subset writes <date>-<host>-<sections>.*",
    )
    parser.add_argument("--quick", action="store_true", help="tiny inputs, one repeat: keeps the code working")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    if args.quick:
        args.repeats, args.sample_pages, args.large_pages, args.synthetic_docs = 1, 60, 160, 400
        args.train_steps, args.presets = 3, "tiny"
    sections = [s for s in SECTIONS if s in args.only.split(",")]
    if unknown := set(args.only.split(",")) - set(SECTIONS):
        parser.error(f"--only: unknown sections {sorted(unknown)}")
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        needs_inputs = {"extract", "minhash", "signatures", "prefilter", "scaling"} & set(sections)
        inputs = make_inputs(root, args.sample_pages, args.large_pages, args.synthetic_docs) if needs_inputs else {}
        for section in sections:
            results |= RUNNERS[section](args, inputs, root)
    rows, summary = table(results, args)
    report = {"args": vars(args) | {"out": None}, "targets": TARGETS, "summary": summary, "results": results}
    name = (
        ""
        if sections == list(SECTIONS)
        else "-".join(["side-by-side", *sections] + ([args.device] if "train" in sections else []))
    )
    print(write_results(args.out, name, report, "Benchmarks: crawl2model vs the tools people glue together",
                        ["measurement", "seconds (median)", "docs/s", "docs/s per core", "tokens/s",
                         "peak RSS MB (largest process)", "peak RSS MB (process tree)", "ratio ours/theirs"],
                        rows))  # fmt: skip


def extract_section(args: argparse.Namespace, inputs: dict[str, Any], root: Path) -> dict[str, Any]:
    """Extract + heuristic filters: ours (warcio, fastwarc) vs datatrove, 1 and `--workers` processes."""
    results = {}
    for label, warcs in (("sample", inputs["sample"]), ("large", inputs["large"])):
        folder = str(Path(warcs[0]).parent)
        for n in [1, args.workers] if label == "sample" else [args.workers]:
            theirs, *ours = interleaved([
                ("datatrove_extract_filter", {"warc_dir": folder, "workers": n, "files": len(warcs)}),
                *[("ours_extract_filter", {"warcs": warcs, "workers": n, "reader": r}) for r in ("warcio", "fastwarc")],
            ], args.repeats, root / "work")  # fmt: skip
            results[f"extract+filter {label} datatrove x{n}"] = theirs
            for reader, mine in zip(("warcio", "fastwarc"), ours, strict=True):
                mine["ratio_vs_datatrove"] = theirs["seconds"] / mine["seconds"]
                results[f"extract+filter {label} ours-{reader} x{n}"] = mine
    return results


def minhash_section(args: argparse.Namespace, inputs: dict[str, Any], root: Path) -> dict[str, Any]:
    """MinHash dedup on the generated near-duplicate documents."""
    workers = args.workers
    jsonl = {"jsonl_dir": str(root / "synthetic_jsonl"), "workers": workers, "files": len(inputs["synthetic"])}
    theirs, ours = interleaved([("datatrove_minhash", jsonl),
                                ("ours_minhash", {"shards": inputs["synthetic"], "workers": workers})],
                               args.repeats, root / "work")  # fmt: skip
    ours["ratio_vs_datatrove"] = theirs["seconds"] / ours["seconds"]
    return {f"minhash datatrove x{workers}": theirs, f"minhash ours x{workers}": ours}


SIGNATURE_IMPLS = ("before", "ours", "datatrove", "rensa", "rensa-bulk")


def signatures_section(args: argparse.Namespace, inputs: dict[str, Any], root: Path) -> dict[str, Any]:
    """MinHash signatures alone (one process each), then the quality check with old and new signatures."""
    specs = [("minhash_signatures", {"shards": inputs["synthetic"], "impl": impl}) for impl in SIGNATURE_IMPLS]
    runs = dict(zip(SIGNATURE_IMPLS, interleaved(specs, args.repeats, root / "work"), strict=True))
    results = {}
    for impl, r in runs.items():
        # Steady state (documents/s once imported) is the throughput; seconds with imports kept beside it.
        r["ratio_vs_before"] = runs["before"]["steady_seconds"] / r["steady_seconds"]
        r["ratio_vs_before_with_imports"] = runs["before"]["seconds"] / r["seconds"]
        r["docs_per_s_steady"] = r["docs"] / r["steady_seconds"]
        results[f"signatures {impl} x1"] = r
    for impl in ("before", "ours"):
        results[f"dedup quality check {impl}"] = spawn(
            "minhash_quality", {"impl": impl, "docs": args.synthetic_docs, "work": str(root / f"quality-{impl}")}
        )
    return results


def prefilter_section(args: argparse.Namespace, inputs: dict[str, Any], root: Path) -> dict[str, Any]:
    """Extract on the sample with a blocklist covering ~20% of its pages: URL rules before trafilatura or not."""
    from url_prefilter import blocked_hosts

    from tasks.sample.ground_truth import load_ground_truth

    hosts = blocked_hosts(load_ground_truth(inputs["sample_truth"]), 0.2)
    base = {"warcs": inputs["sample"], "hosts": hosts}
    without, ours = interleaved([("url_prefilter_extract", {**base, "prefilter": False}),
                                 ("url_prefilter_extract", {**base, "prefilter": True})], args.repeats,
                                root / "work")  # fmt: skip
    ours["ratio_vs_without"] = without["seconds"] / ours["seconds"]
    return {"prefilter extract sample without x1": without, "prefilter extract sample url-rules-first x1": ours}


def train_section(args: argparse.Namespace, inputs: dict[str, Any], root: Path) -> dict[str, Any]:
    """A training step per preset: ours (the real trainer reading Parquet) vs the plain loop."""
    results = {}
    gpu = args.device == "cuda"
    for preset in args.presets.split(","):
        shape = {"preset": preset, "seq_len": 1024 if gpu else 128, "vocab": 50304 if gpu else 4096, "batch": 16,
                 "steps": args.train_steps, "device": args.device, "compile": gpu}  # fmt: skip
        label = f"train {preset}" + (" cuda" if gpu else "")
        plain, ours = interleaved([("plain_train_step", shape), ("ours_train_step", shape)], args.repeats,
                                  root / "work")  # fmt: skip
        ours["ratio_vs_plain"] = ours["tokens_per_s"] / plain["tokens_per_s"]
        results[f"{label} plain-pytorch"], results[f"{label} ours"] = plain, ours
    return results


def scaling_section(args: argparse.Namespace, inputs: dict[str, Any], root: Path) -> dict[str, Any]:
    """1x, 2x, 4x of a quarter of the large input, the real pipeline through tokenize."""
    results = {}
    quarter = len(inputs["large"]) // 4
    per_file = large_layout(args.large_pages)[1]
    for mult in (1, 2, 4):
        r = repeated("pipeline_until_tokenize", {"warcs": inputs["large"][: quarter * mult]}, args.repeats,
                     root / "work")  # fmt: skip
        r["pages"] = per_file * quarter * mult
        results[f"scaling pipeline {mult}x"] = r
    return results


def tokenize_section(args: argparse.Namespace, inputs: dict[str, Any], root: Path) -> dict[str, Any]:
    """Tokenization, through its own benchmark script (median of the same repeats)."""
    tok_out = root / "tokenize"
    subprocess.run([sys.executable, str(HERE / "tokenize_throughput.py"), "--docs", "60" if args.quick else "2000",
                    "--repeats", str(args.repeats), "--vocab-size", "400" if args.quick else "4096",
                    "--out", str(tok_out)], cwd=ROOT, env=ENV, check=True, capture_output=True)  # fmt: skip
    [tok_file] = tok_out.glob("*-tokenize.json")
    tokenize = json.loads(tok_file.read_text())["results"]
    return {f"tokenize {name}": {"seconds": r.get("seconds"), "tokens_per_s": r["tokens_per_s"]}
            for name, r in tokenize.items()}  # fmt: skip


RUNNERS = {"extract": extract_section, "minhash": minhash_section, "signatures": signatures_section,
           "prefilter": prefilter_section,
           "train": train_section,
           "scaling": scaling_section, "tokenize": tokenize_section}  # fmt: skip


def table(results: dict[str, Any], args: argparse.Namespace) -> tuple[list[list[Any]], dict[str, Any]]:
    rows, summary = [], {}
    for name, r in results.items():
        docs = None
        if name.startswith("extract+filter"):
            files, per_file = large_layout(args.large_pages)
            docs = args.sample_pages if " sample " in name else files * per_file
        elif name.startswith("prefilter"):
            docs = args.sample_pages
        elif name.startswith(("minhash", "signatures")):
            docs = args.synthetic_docs
        elif name.startswith("scaling"):
            docs = r["pages"]
        cores = int(name.rsplit("x", 1)[-1]) if name.split()[-1].startswith("x") else 1
        ratio = next((r[k] for k in ("ratio_vs_datatrove", "ratio_vs_plain", "ratio_vs_before", "ratio_vs_without")
                      if k in r), None)  # fmt: skip
        rows.append([name, round(r["seconds"], 2) if r.get("seconds") else "",
                     rate(per_s(docs, r)) if docs else "", rate(per_s(docs, r) / cores) if docs else "",
                     f"{r['tokens_per_s']:,.0f}" if r.get("tokens_per_s") else "", r.get("peak_rss_mb", ""),
                     r.get("peak_tree_rss_mb", ""),
                     f"{ratio:.2f}x" if ratio else ""])  # fmt: skip
        if ratio:
            kind = name.split()[0]
            summary[name] = {"ratio": round(ratio, 3), "target": TARGETS.get(kind),
                             "meets_target": ratio >= TARGETS.get(kind, 0)}  # fmt: skip
    return rows, summary


if __name__ == "__main__":
    main()
