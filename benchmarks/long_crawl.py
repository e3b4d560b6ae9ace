"""Long real crawls: does extract's memory stay flat as a WARC file grows to Common Crawl's size?

    python benchmarks/long_crawl.py [--sizes-mb 250,500,1000] [--out benchmarks/results]

Writes one WARC file per size (about 25 kB a record gzipped, like Common Crawl's: 1 GB is about
40,000 records; pages from the sample's generator with an inline data-URI image, as real pages carry,
so the bytes do not compress away), then runs extract's per-shard function on each in a process of
its own, sampling that process tree's RSS every 50 ms. Records/s and MB/s come from the same run
(they are what extract's progress lines report). Peak memory that does not grow with the file is the
claim: the reader streams records and keeps at most one page (capped) in memory, documents are
written when the shard ends, so the kept documents' text is what grows.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.output import RESULTS, write_results  # noqa: E402


def write_crawl(path: Path, target_bytes: int, seed: int = 0) -> int:
    """A gzipped WARC of response records until it reaches `target_bytes`; returns the record count."""
    from warcio.statusandheaders import StatusAndHeaders
    from warcio.warcwriter import WARCWriter

    from tasks.sample.planted import build_pages
    from tasks.sample.render import render

    rng = random.Random(seed)
    pages = build_pages(2000, 20, seed)
    n = 0
    with open(path, "wb") as f:
        writer = WARCWriter(f, gzip=True)
        while f.tell() < target_bytes:
            page = pages[n % len(pages)]
            image = base64.b64encode(rng.randbytes(22_000)).decode()
            body = render(page, rng).replace("</article>", f'<img src="data:image/png;base64,{image}"></article>')
            data = body.encode(page.charset, "replace")
            headers = StatusAndHeaders("200 OK", [("Content-Type", f"text/html; charset={page.charset}"),
                                                  ("Content-Length", str(len(data)))], protocol="HTTP/1.1")  # fmt: skip
            url = f"https://{page.host}{page.path.replace('.html', f'-{n}.html')}"
            writer.write_record(writer.create_warc_record(url, "response", payload=io.BytesIO(data),
                                                          http_headers=headers))  # fmt: skip
            n += 1
    return n


EXTRACT = """
import json, sys, time
from pathlib import Path
from tasks.extract.config import ExtractConfig
from tasks.extract.stage import ExtractShard, process_shard
started = time.perf_counter()
stats = process_shard(sys.argv[1], Path(sys.argv[2]), ExtractShard(ExtractConfig(), "BENCH"), 0)
print(json.dumps({"seconds": time.perf_counter() - started, "records": stats["docs_in"], "docs": stats["docs_out"]}))
"""


def measure_extract(warc: Path, out: Path) -> dict[str, float]:
    import psutil

    proc = subprocess.Popen([sys.executable, "-c", EXTRACT, str(warc), str(out)], cwd=ROOT, stdout=subprocess.PIPE,
                            text=True)  # fmt: skip
    peak = 0
    root = psutil.Process(proc.pid)
    while proc.poll() is None:
        try:
            tree = [root, *root.children(recursive=True)]
            peak = max(peak, sum(p.memory_info().rss for p in tree))
        except psutil.Error:
            pass
        time.sleep(0.05)
    result = json.loads(proc.stdout.read().strip().splitlines()[-1])
    size = warc.stat().st_size
    seconds = result["seconds"]
    return {**result, "mb": size / 1e6, "peak_rss_mb": peak / 1e6, "records_per_s": result["records"] / seconds,
            "mb_per_s": size / 1e6 / seconds}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes-mb", default="250,500,1000")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for size_mb in [int(s) for s in args.sizes_mb.split(",")]:
            warc = Path(tmp) / f"crawl-{size_mb}mb.warc.gz"
            written = time.perf_counter()
            records = write_crawl(warc, size_mb * 1_000_000)
            print(f"{warc.name}: {records} records written in {time.perf_counter() - written:.0f} s", flush=True)
            results.append({"size_mb": size_mb, **measure_extract(warc, Path(tmp) / f"out-{size_mb}")})
            warc.unlink()
            print(json.dumps(results[-1]), flush=True)
    rows = [[r["size_mb"], f"{r['mb']:.0f}", r["records"], r["docs"], f"{r['seconds']:.1f}",
             f"{r['records_per_s']:.0f}", f"{r['mb_per_s']:.2f}", f"{r['peak_rss_mb']:.0f}"]
            for r in results]  # fmt: skip
    headers = ["target MB", "file MB", "records", "documents", "seconds", "records/s", "MB/s", "peak RSS MB (tree)"]
    title = "extract on one WARC file as it grows (1 process)"
    print(write_results(args.out, "long-crawl", {"results": results}, title, headers, rows))


if __name__ == "__main__":
    main()
