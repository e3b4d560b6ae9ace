"""Reading and extraction throughput: warcio against fastwarc, trafilatura against resiliparse, one
process and a process pool.

    python benchmarks/extract_throughput.py [--pages 2400] [--repeats 3] [--workers 2]

Input: the embedded sample generator's WARC files (same generator as the pipeline's sample).
Reading = iterating every record and its block; extraction = the extract stage's per-shard function
(HTTP parse, decoding, main-text extraction by extract.extractor, language id), median of repeats.
Extraction word precision and recall against the sample's known main text are reported alongside, so
speed is never bought with quality unseen (the sample's pages are clean: both extractors near 1.0
here). Results: benchmarks/results/<date>-<host>-extract.json/.md.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
from pathlib import Path

# These run as scripts, so their own folder is on sys.path.
from output import RESULTS, write_results
from tokenize_throughput import timed


def read_all(paths: list[str], reader: str) -> tuple[int, int]:
    from tasks.extract.warc_records import iter_records

    records = size = 0
    for path in paths:
        for record in iter_records(path, reader):
            records += 1
            size += 0 if isinstance(record, Exception) else record.block_length
    return records, size


def extract_all(paths: list[str], reader: str, out: Path, workers: int, extractor: str = "trafilatura") -> int:
    from tasks.extract.config import ExtractConfig
    from tasks.extract.stage import ExtractShard, process_shard
    from tasks.stage import map_shards, sum_stats

    shutil.rmtree(out, ignore_errors=True)
    stats = map_shards(
        process_shard, paths, out, ExtractShard(ExtractConfig(reader=reader, extractor=extractor), ""),
        workers=workers, label="bench",
    )  # fmt: skip
    return sum_stats(stats)["docs_in"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pages", type=int, default=2400)
    parser.add_argument("--files", type=int, default=4, help="WARC files (= shards for the process pool)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    from tasks.sample.ground_truth import extraction_quality, load_ground_truth
    from tasks.sample.warc import write_sample

    with tempfile.TemporaryDirectory() as tmp:
        sample = Path(tmp) / "sample"
        write_sample(sample, n_pages=args.pages, planted=max(1, args.pages // 100), seed=0, n_files=args.files)
        paths = sorted(map(str, sample.glob("*.warc.gz")))
        truth = load_ground_truth(sample / "ground_truth.jsonl")
        results, rows = {}, []
        # Warm-up: imports, the language-id model and trafilatura's caches load once, untimed.
        extract_all(paths[:1], "warcio", Path(tmp) / "warm-up", 1)
        for reader in ("warcio", "fastwarc"):
            seconds, (records, size) = timed(lambda r=reader: read_all(paths, r), args.repeats)
            results[f"read {reader}"] = {"records": records, "seconds": seconds, "records_per_s": records / seconds,
                                         "mb_per_s": size / seconds / 1e6}  # fmt: skip
            runs = [(w, e) for w in sorted({1, args.workers}) for e in ("trafilatura", "resiliparse")]
            for workers, extractor in runs:
                out = Path(tmp) / f"out-{reader}-{workers}-{extractor}"
                seconds, records = timed(lambda r=reader, o=out, w=workers, e=extractor: extract_all(paths, r, o, w, e),
                                         args.repeats)  # fmt: skip
                quality = extraction_quality(truth, sorted(map(str, out.glob("docs/*.parquet"))))
                name = f"extract {reader} x{workers}" + ("" if extractor == "trafilatura" else f" {extractor}")
                results[name] = {
                    "records": records,
                    "seconds": seconds,
                    "records_per_s": records / seconds,
                    "records_per_s_per_core": records / seconds / workers,
                    **quality,
                }
        base_read, base_x1 = results["read warcio"], results["extract warcio x1"]
        for name, r in results.items():
            base = base_read if name.startswith("read") else base_x1
            r["ratio_vs_warcio_1_process"] = r["records_per_s"] / base["records_per_s"]
            per_core = r.get("records_per_s_per_core", r["records_per_s"])
            quality = (
                f"{r['extract_word_precision']:.3f} / {r['extract_word_recall']:.3f}"
                if "extract_word_recall" in r
                else ""
            )
            ratio = f"{r['ratio_vs_warcio_1_process']:.2f}x"
            rows.append([name, r["records"], f"{r['records_per_s']:,.0f}", f"{per_core:,.0f}", ratio, quality])
    report = {"pages": args.pages, "files": args.files, "repeats": args.repeats, "cores": os.cpu_count(),
              "results": results}  # fmt: skip
    title = f"Reading and extraction, {args.pages} pages (median of {args.repeats})"
    headers = ["run", "records", "records/s", "per core", "vs warcio x1", "word P / R"]
    text = write_results(args.out, "extract", report, title, headers, rows)
    print(text)


if __name__ == "__main__":
    main()
