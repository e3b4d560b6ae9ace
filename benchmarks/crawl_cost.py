"""Cost at crawl scale: core-seconds per GB of WARC for each CPU stage, projected to one Common Crawl crawl.

    python benchmarks/crawl_cost.py [--size-mb 200 | --warc CC-MAIN-....warc.gz | --real-pages 20]
                                    [--extractor trafilatura|resiliparse]

Input: a user's WARC (`--warc`: a Common Crawl file is the real measurement); or a WARC of real pages
(`--real-pages N`: `real_pages.py`'s 106 pages in 11 languages, as saved, each N times under distinct
URLs so that the per-page times are long enough to measure; every language kept and dedup off, so
filter and tokenize read every copy; dedup's term comes from the curve, below); or one gzipped WARC
of `--size-mb` written like `long_crawl.py`'s (about 25 kB a record, as Common Crawl's: pages from the
sample generator with an inline image, so bytes do not compress away).
The real CLI runs acquire through tokenize on it with every stage on one process (`*.workers=1`,
tokenize on one thread), so each stage's wall seconds in the catalog are its core-seconds (an upper
bound: I/O waits count). The dedup quality check is off: it is cached per dedup settings, not paid
per GB. Tokenize includes training its SentencePiece model on a sample, filter its classifier (costs per
run, not per GB): on a small input they inflate the cost per document. `--marginal` runs the same kind
of input again at 3x the size and projects each stage's cost per *extra* document (the slope between
the two runs), recording the fixed seconds per run that leaves; without it the average is projected.

Projection: CC-MAIN-2024-51 (December 2024) holds 2.64 billion pages (394 TiB uncompressed), from
Common Crawl's announcement. Each stage's core-seconds per document it reads, times the documents
it would read in that crawl: all pages for extract, then this run's extract and filter pass rates
(which depend on the page mix); dedup's removals are not applied to tokenize's count, because the
generator repeats its ~2,000 source pages, so dedup removes far more here than on a crawl (an upper
bound for tokenize). Dedup's term comes from the measured curve instead (`--dedup-curve`, by default
the newest `*-dedup.json` of benchmarks/dedup_throughput.py with several sizes): core-seconds per
document (wall seconds x workers, an upper bound) at the largest size measured, carried to the
crawl's documents with the per-tenfold growth of time per document between the two largest sizes
(1.0 when it fell: no improvement is extrapolated). Results:
benchmarks/results/<date>-<host>-crawl-cost[-resiliparse].json/.md.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.long_crawl import write_crawl  # noqa: E402
from benchmarks.output import RESULTS, write_results  # noqa: E402
from benchmarks.real_pages import CACHE, real_pages_or_exit, write_warc  # noqa: E402

CRAWL = {"name": "CC-MAIN-2024-51", "pages": 2.64e9, "uncompressed_tib": 394,
         "source": "https://blog.commoncrawl.org/blog/december-2024-crawl-archive-now-available"}  # fmt: skip
STAGES = ("extract", "filter", "dedup", "tokenize")
# Real pages: every language kept (most are not English), and the copies not deduplicated away, so that
# filter and tokenize are timed on all of them; dedup's term comes from the measured curve regardless.
REAL_PAGES = ("extract.languages=all", "dedup.enabled=false")
ONE_PROCESS = ["extract.workers=1", "filter.workers=1", "dedup.workers=1", "tokenize.workers=1",
               "dedup.quality_check_docs=0"]  # fmt: skip


def run_pipeline(warc: Path, work: Path, extractor: str = "trafilatura", more: tuple[str, ...] = ()) -> dict[str, dict]:
    """The real CLI in its own process (as a user runs it; a second run in one process would share
    Prefect's logging with the first), then each completed stage's seconds and counts from the catalog."""
    from storage.catalog import Catalog

    sets = [f"acquire.paths={json.dumps([str(warc)])}", f"extract.extractor={extractor}", *ONE_PROCESS, *more]
    cmd = [sys.executable, "-m", "flows.cli", "run", "--workdir", str(work), "--until", "tokenize",
           *[a for s in sets for a in ("--set", s)]]  # fmt: skip
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit((done.stdout + done.stderr)[-3000:])
    _, rows = Catalog(work).query("select stage, seconds, docs_in, docs_out from stage_runs where status = 'completed'")
    return {stage: {"seconds": s, "docs_in": i, "docs_out": o} for stage, s, i, o in rows}


def removals(work: Path) -> dict[str, dict]:
    """Why pages went: extract's and filter's removals by rule, and filter's by language too."""
    from storage.catalog import Catalog

    catalog = Catalog(work)
    out: dict[str, dict] = {}
    for stage in ("extract", "filter"):
        _, rows = catalog.query(f"select rule, count(*) from {stage}_removed group by rule order by 2 desc")
        out[stage] = dict(rows)
    _, rows = catalog.query("select d.lang, r.rule, count(*) from filter_removed r join extract_docs d using (doc_id) "
                            "group by all order by 1, 3 desc")  # fmt: skip
    out["filter_by_language"] = {}
    for lang, rule, n in rows:
        out["filter_by_language"].setdefault(lang, {})[rule] = n
    _, rows = catalog.query("select lang, count(*) from extract_docs group by lang order by 2 desc")
    out["extract_kept_by_language"] = dict(rows)
    return out


def response_records(warc: Path) -> int:
    """The pages in a WARC: its response records."""
    from warcio.archiveiterator import ArchiveIterator

    with open(warc, "rb") as f:
        return sum(record.rec_type == "response" for record in ArchiveIterator(f))


def crawl_documents_in(stage: str, stages: dict[str, dict], pages: float) -> float:
    """Documents the stage reads at crawl scale: pages through the pass rates of extract and filter."""
    rate = {s: stages[s]["docs_out"] / stages[s]["docs_in"] for s in ("extract", "filter")}
    return {"extract": pages, "filter": pages * rate["extract"]}.get(stage, pages * rate["extract"] * rate["filter"])


def dedup_from_curve(path: Path, crawl_docs: float) -> dict:
    """Dedup's crawl core-hours from the measured curve (see the module doc), with what it assumed."""
    curve = json.loads(path.read_text())
    sizes, workers = curve["sizes"], curve["workers"]
    last = sizes[-1]
    per_doc = sum(last[phase]["seconds"] for phase in ("signatures", "global")) * workers / last["docs"]
    growth = 1.0
    if len(sizes) > 1:
        before = sizes[-2]
        decades = math.log10(last["docs"] / before["docs"])
        ratio = (
            (last["signatures"]["seconds"] + last["global"]["seconds"])
            / last["docs"]
            / ((before["signatures"]["seconds"] + before["global"]["seconds"]) / before["docs"])
        )
        growth = max(1.0, ratio ** (1 / decades))
    factor = growth ** math.log10(crawl_docs / last["docs"])
    return {"curve": path.name, "largest_measured_docs": last["docs"], "core_us_per_doc": round(per_doc * 1e6, 1),
            "growth_per_tenfold": round(growth, 3), "factor_to_crawl": round(factor, 3),
            "crawl_core_hours": round(per_doc * factor * crawl_docs / 3600)}  # fmt: skip


def newest_curve(results: Path) -> Path | None:
    curves = [p for p in sorted(results.glob("*-dedup.json")) if "sizes" in json.loads(p.read_text())]
    return curves[-1] if curves else None


def write_input(args: argparse.Namespace, tmp: Path, scale: int = 1) -> tuple[Path, int]:
    """The WARC to measure and its pages: the user's, real pages, or generated; `scale` times the size."""
    if args.warc is not None:
        return args.warc.resolve(), response_records(args.warc)
    if args.real_pages:
        warc = tmp / f"real-pages-{scale}.warc.gz"
        return warc, write_warc(real_pages_or_exit(args.cache), warc, copies=args.real_pages * scale)
    warc = tmp / f"crawl-{scale}.warc.gz"
    return warc, write_crawl(warc, args.size_mb * 10**6 * scale)


def marginal_costs(small: dict[str, dict], large: dict[str, dict]) -> dict[str, dict]:
    """Per stage, seconds per extra document between two sizes and the fixed seconds per run that
    leaves (training SentencePiece or the classifier, opening pools): at crawl scale only the first
    counts. A slope that is not positive (noise on a stage that takes a fraction of a second) is left out."""
    out = {}
    for stage in STAGES:
        extra_docs = large[stage]["docs_in"] - small[stage]["docs_in"]
        slope = (large[stage]["seconds"] - small[stage]["seconds"]) / extra_docs if extra_docs > 0 else 0.0
        if slope > 0:
            out[stage] = {
                "seconds_per_doc": slope,
                "fixed_seconds": small[stage]["seconds"] - slope * small[stage]["docs_in"],
            }
    return out


def projection(stages: dict[str, dict], marginal: dict[str, dict], records: int, gb: float,
               args: argparse.Namespace) -> tuple[dict[str, Any], list[list[Any]]]:  # fmt: skip
    """Each stage's cost per GB and per document, carried to the crawl (see the module doc)."""
    rows, table = [], {}
    for stage in STAGES:
        core_s, docs_in = stages[stage]["seconds"], stages[stage]["docs_in"]
        per_kdoc = marginal[stage]["seconds_per_doc"] * 1000 if stage in marginal else core_s / docs_in * 1000
        crawl_docs = crawl_documents_in(stage, stages, CRAWL["pages"])
        crawl_core_h = per_kdoc * crawl_docs / 1000 / 3600
        table[stage] = {"core_seconds": round(core_s, 2), "core_seconds_per_gb": round(core_s / gb, 1),
                        "core_seconds_per_1000_docs_in": round(core_s / docs_in * 1000, 3), "docs_in": docs_in,
                        "docs_out": stages[stage]["docs_out"], "crawl_docs_in": round(crawl_docs),
                        "crawl_core_hours": round(crawl_core_h)}  # fmt: skip
        if stage in marginal:
            table[stage] |= {"core_seconds_per_1000_extra_docs": round(per_kdoc, 3),
                             "fixed_core_seconds": round(marginal[stage]["fixed_seconds"], 2)}  # fmt: skip
        rows.append([stage, round(core_s, 1), round(core_s / gb, 1), round(per_kdoc, 3), f"{crawl_docs / 1e9:.2f}B",
                     f"{crawl_core_h:,.0f}"])  # fmt: skip
    if args.dedup_curve is not None:  # the measured curve, not this small run, decides dedup's term
        curve = dedup_from_curve(args.dedup_curve, table["dedup"]["crawl_docs_in"])
        table["dedup"] |= {"crawl_core_hours_small_run": table["dedup"]["crawl_core_hours"], "from_curve": curve,
                           "crawl_core_hours": curve["crawl_core_hours"]}  # fmt: skip
        rows[STAGES.index("dedup")][-1] = f"{curve['crawl_core_hours']:,} (curve)"
    total = sum(t["crawl_core_hours"] for t in table.values())
    rows.append(["all four", round(sum(t["core_seconds"] for t in table.values()), 1),
                 round(sum(t["core_seconds_per_gb"] for t in table.values()), 1), "", "", f"{total:,.0f}"])  # fmt: skip
    source = str(args.warc) if args.warc else f"real pages x{args.real_pages}" if args.real_pages else "generated"
    report = {"warc": source, "warc_gb": round(gb, 3), "records": records, "pages_per_gb": round(records / gb),
              "crawl": CRAWL | {"implied_compressed_tb": round(CRAWL["pages"] / (records / gb) / 1000, 1)},
              "stages": table, "crawl_core_hours": total, "extractor": args.extractor,
              "per_document": "marginal (3x size)" if marginal else "average"}  # fmt: skip
    return report, rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size-mb", type=int, default=200)
    parser.add_argument("--warc", type=Path, help="measure on this WARC (real pages) instead of a generated one")
    parser.add_argument("--real-pages", type=int, metavar="COPIES",
                        help="measure on real_pages.py's pages, each this many times")  # fmt: skip
    parser.add_argument("--cache", type=Path, default=CACHE, help="where real_pages.py keeps its downloads")
    parser.add_argument("--marginal", action="store_true",
                        help="also run at 3x the size; project with each stage's cost per extra document")  # fmt: skip
    parser.add_argument("--extractor", choices=["trafilatura", "resiliparse"], default="trafilatura")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--dedup-curve", type=Path, default=newest_curve(RESULTS),
                        help="a dedup_throughput.py result with several sizes (default: the newest)")  # fmt: skip
    args = parser.parse_args()
    if args.marginal and args.warc is not None:
        raise SystemExit("error: --marginal needs an input it can make larger (--real-pages or --size-mb), not --warc")
    more = REAL_PAGES if args.real_pages else ()
    with tempfile.TemporaryDirectory() as tmp:
        warc, records = write_input(args, Path(tmp))
        gb = warc.stat().st_size / 1e9
        stages = run_pipeline(warc, Path(tmp) / "work", args.extractor, more)
        removed = removals(Path(tmp) / "work")
        marginal = {}
        if args.marginal:
            large, _ = write_input(args, Path(tmp), scale=3)
            marginal = marginal_costs(stages, run_pipeline(large, Path(tmp) / "work-3x", args.extractor, more))
    report, rows = projection(stages, marginal, records, gb, args)
    report["removed"] = removed
    title = (f"Core-seconds per GB of WARC ({gb:.2f} GB, {records:,} records, one process per stage, "
             f"{args.extractor}), projected to {CRAWL['name']} ({CRAWL['pages'] / 1e9:.2f}B pages)")  # fmt: skip
    kind = (
        "crawl-cost"
        + ("-real-pages" if args.real_pages else "")
        + ("" if args.extractor == "trafilatura" else f"-{args.extractor}")
    )
    per_doc = "core-s per 1,000 extra docs" if marginal else "core-s per 1,000 docs in"
    print(write_results(args.out, kind, report, title,
                        ["stage", "core-seconds", "core-s per GB", per_doc, f"docs in, {CRAWL['name']}",
                         "core-hours"], rows))  # fmt: skip


if __name__ == "__main__":
    main()
