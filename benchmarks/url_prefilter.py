"""Time saved by running the URL rules before trafilatura, on a crawl with blocklisted pages.

    python benchmarks/url_prefilter.py [--pages 2400] [--blocked-share 0.2] [--repeats 3]

Input: the sample generator's WARC files; a blocklist of whole hosts chosen by hash until about
`--blocked-share` of the HTML pages are on them (a crawl where the blocklist matters; the sample's
own three planted blocked hosts are in it too). The same extract shard function runs with the URL
rules (`extract.url_rules`, what the pipeline derives from filter's settings) and without; the
two take turns in each repeat, median of repeats, one process. Reported: seconds, pages not
extracted, the time saved, and that the kept documents are the same.
Results: benchmarks/results/<date>-<host>-url-prefilter.json/.md.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import statistics
import tempfile
import time
from collections import Counter
from pathlib import Path

from output import RESULTS, write_results


def blocked_hosts(truth: list[dict], share: float) -> list[str]:
    """Whole hosts, lowest hash first, until `share` of the pages are on them."""
    from urllib.parse import urlsplit

    pages = Counter(urlsplit(r["url"]).hostname for r in truth if r.get("url"))
    order = sorted(pages, key=lambda h: hashlib.sha256(h.encode()).hexdigest())
    chosen, covered, total = [], 0, sum(pages.values())
    for host in order:
        if covered >= share * total:
            break
        chosen.append(host)
        covered += pages[host]
    return chosen


def extract_once(warcs: list[str], cfg, out: Path) -> tuple[float, dict, set[str]]:
    import pyarrow.parquet as pq

    from tasks.extract.stage import ExtractShard, process_shard

    shutil.rmtree(out, ignore_errors=True)
    started = time.perf_counter()
    stats = Counter()
    for i, warc in enumerate(warcs):
        stats.update(process_shard(warc, out, ExtractShard(cfg, ""), i))
    seconds = time.perf_counter() - started
    kept = {r["doc_id"] for p in sorted((out / "docs").glob("*.parquet")) for r in pq.read_table(p).to_pylist()}
    return seconds, dict(stats), kept


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pages", type=int, default=2400)
    parser.add_argument("--blocked-share", type=float, default=0.2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    from tasks.config import load_config
    from tasks.sample.ground_truth import load_ground_truth
    from tasks.sample.warc import write_sample

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        sample = write_sample(root / "in", n_pages=args.pages, planted=max(1, args.pages // 100), truncate_last=False)
        hosts = blocked_hosts(load_ground_truth(sample["ground_truth"]), args.blocked_share)
        cfg = load_config(None, [f"filter.blocklist_domains={hosts!r}".replace("'", '"')]).stage("extract")
        without = cfg.model_copy(update={"url_rules": None})
        configs = {"url rules before trafilatura": cfg, "trafilatura on every page": without}
        runs: dict[str, list[float]] = {name: [] for name in configs}
        facts: dict[str, tuple[dict, set[str]]] = {}
        for rep in range(args.repeats):
            names = list(configs) if rep % 2 == 0 else list(configs)[::-1]
            for name in names:
                seconds, stats, kept = extract_once(sample["warc_files"], configs[name], root / "out")
                runs[name].append(seconds)
                facts[name] = (stats, kept)
    (on_stats, on_kept), (_, off_kept) = facts["url rules before trafilatura"], facts["trafilatura on every page"]
    on, off = (statistics.median(runs[n]) for n in configs)
    deferred = sum(v for k, v in on_stats.items() if k.startswith("deferred."))
    report = {
        "pages": args.pages, "blocked_hosts": len(hosts), "records": on_stats["docs_in"], "not_extracted": deferred,
        "seconds": {n: round(statistics.median(t), 2) for n, t in runs.items()}, "repeats": runs,
        "saved_fraction": round(1 - on / off, 3),
        # With the rules, extract keeps the same documents minus the blocked pages it used to extract.
        "kept_documents_subset": on_kept <= off_kept,
        "kept_documents": {"with": len(on_kept), "without": len(off_kept), "blocked_only": len(off_kept - on_kept)},
    }  # fmt: skip
    rows = [[n, report["seconds"][n], deferred if n.startswith("url") else 0] for n in configs]
    rows.append(["saved", round(off - on, 2), f"{report['saved_fraction']:.1%}"])
    title = f"Extract on {args.pages:,} pages, {deferred} of {on_stats['docs_in']} records on blocklisted hosts"
    print(write_results(args.out, "url-prefilter", report, title, ["run", "seconds (median)", "pages not extracted"],
                        rows))  # fmt: skip


if __name__ == "__main__":
    main()
