"""The multilingual sample per language: survival at each stage, planted cases caught, and what
extract + filter cost per page against English.

    python benchmarks/multilingual_sample.py [--config configs/sample-multilingual.yaml] [--out benchmarks/results]

1. Runs `crawl2model run --config ... --until dedup` in a temporary workdir, then scores each language's
   articles (made the same way in every language, tasks/sample/languages.py) against the ground truth:
   the share kept after extract, filter and dedup with Wilson 95% intervals, and the planted
   near-duplicates, spam and boilerplate-only pages caught at their stage.
2. Times, on one core, each language's article pages through what extract does to a page (trafilatura,
   lid.176, word count) and the filter's rules (Gopher quality and repetition, PII; no classifier), after
   a warm-up that loads each segmenter: seconds per page and per 1,000 characters, relative to English.

Results: benchmarks/results/<date>-<host>-multilingual-sample.json/.md.
"""

from __future__ import annotations

import argparse
import glob
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.output import RESULTS, write_results  # noqa: E402


def run_pipeline(config: Path, workdir: Path) -> float:
    started = time.perf_counter()
    cmd = [sys.executable, "-m", "flows.cli", "run", "--config", str(config), "--workdir", str(workdir), "--until",
           "dedup"]  # fmt: skip
    subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True)
    return time.perf_counter() - started


def survival(workdir: Path) -> dict:
    from tasks.sample.ground_truth import load_ground_truth, removals
    from tasks.sample.language_scores import survival_by_language

    truth = load_ground_truth(glob.glob(f"{workdir}/artifacts/acquire/*/ground_truth.jsonl")[0])
    return survival_by_language(truth, removals(glob.glob(f"{workdir}/artifacts/*/*/removed/*.parquet")))


def page_cost(languages: list[str], pages_per_language: int) -> dict[str, dict]:
    """Seconds per page (and per 1,000 extracted characters) of extract's and filter's work, per language."""
    from tasks.documents import count_words
    from tasks.extract.config import ExtractConfig
    from tasks.extract.langid import detect_language
    from tasks.extract.stage import main_text
    from tasks.filter.config import FilterConfig
    from tasks.filter.rules import measure_all
    from tasks.filter.stage import build_rules
    from tasks.sample.languages import language_pages
    from tasks.sample.render import render

    extract_cfg, rules = ExtractConfig(), build_rules(FilterConfig())
    out = {}
    for lang in languages:
        pages = [p for p in language_pages([lang], pages_per_language, 1, 0) if p.case == "original"]
        html = [(p.url, render(p, random.Random(i))) for i, p in enumerate(pages)]
        docs = _timed_extract(html[:2], extract_cfg, main_text, detect_language, count_words)[1]  # warm-up
        _timed_filter(docs, rules, measure_all)
        extract_s, docs = _timed_extract(html, extract_cfg, main_text, detect_language, count_words)
        filter_s = _timed_filter(docs, rules, measure_all)
        chars = sum(len(d["text"]) for d in docs)
        out[lang] = {"pages": len(docs), "chars_per_page": round(chars / len(docs)),
                     "extract_ms_per_page": round(1000 * extract_s / len(docs), 2),
                     "filter_ms_per_page": round(1000 * filter_s / len(docs), 2),
                     "ms_per_1000_chars": round(1000 * (extract_s + filter_s) / chars * 1000, 2)}  # fmt: skip
    english = out.get("en")
    for row in out.values():
        if english:
            row["per_page_vs_en"] = round(
                (row["extract_ms_per_page"] + row["filter_ms_per_page"])
                / (english["extract_ms_per_page"] + english["filter_ms_per_page"]), 2)  # fmt: skip
            row["per_char_vs_en"] = round(row["ms_per_1000_chars"] / english["ms_per_1000_chars"], 2)
    return out


def _timed_extract(html, cfg, main_text, detect_language, count_words) -> tuple[float, list[dict]]:
    started, docs = time.perf_counter(), []
    for url, page in html:
        text = main_text(page, url, cfg)
        lang, score = detect_language(" ".join(text.split()))
        docs.append({"doc_id": url, "url": url, "host": url.split("/")[2], "text": text, "lang": lang,
                     "lang_score": score, "n_words": count_words(text, lang), "quality_score": None})  # fmt: skip
    return time.perf_counter() - started, docs


def _timed_filter(docs: list[dict], rules, measure_all) -> float:
    from collections import Counter

    started, stats = time.perf_counter(), Counter()
    for doc in docs:
        measure_all(dict(doc), rules, stats)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, default=ROOT / "configs" / "sample-multilingual.yaml")
    parser.add_argument("--pages", type=int, default=60, help="pages per language for the cost measurement")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        seconds = run_pipeline(args.config, Path(tmp))
        by_language = survival(Path(tmp))
    cost = page_cost(list(by_language), args.pages)
    rows = []
    for lang, s in by_language.items():
        kept = [f"{s['survival'][st]['share']:.2f} [{s['survival'][st]['ci'][0]:.2f}, {s['survival'][st]['ci'][1]:.2f}]"
                for st in ("extract", "filter", "dedup")]  # fmt: skip
        caught = " ".join(f"{case} {c['caught']}/{c['planted']}" for case, c in s["planted"].items())
        rows.append([lang, s["articles"], *kept, caught, cost[lang]["per_page_vs_en"], cost[lang]["per_char_vs_en"]])
    report = {"config": str(args.config.relative_to(ROOT)), "pipeline_s": round(seconds, 1),
              "survival": by_language, "cost": cost}  # fmt: skip
    headers = ["language", "articles", "kept after extract", "after filter", "after dedup", "planted caught",
               "extract+filter per page vs en", "per character vs en"]  # fmt: skip
    print(
        write_results(
            args.out,
            "multilingual-sample",
            report,
            "The multilingual sample per language (articles kept with 95% intervals)",
            headers,
            rows,
        )
    )


if __name__ == "__main__":
    main()
