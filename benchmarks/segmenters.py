"""Word segmenters' throughput per language: documents/s and characters/s on one core.

    python benchmarks/segmenters.py [--docs 200] [--chars 2000] [--out benchmarks/results]

Each language's documents are made of text written in it that installed packages ship (gettext
catalogs; the standard library's CJK encoding tests for Chinese and Japanese), cut into documents of
about `--chars` characters. The first call (loading the segmenter: a dictionary, a model) is timed
apart from the steady state. English and the other space-separated languages split on whitespace.
Results: benchmarks/results/<date>-<host>-segmenters.json/.md.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.output import RESULTS, write_results  # noqa: E402

LANGUAGES = ("en", "ru", "ar", "hi", "zh", "ja", "ko", "th")


def documents(lang: str, n: int, chars: int) -> list[str]:
    """`n` documents of about `chars` characters in `lang` (rotating through what is available)."""
    from tasks.sample.sources import paragraphs_of, translation_texts

    if lang == "en":
        from pydoc_data.topics import topics

        text = " ".join(p for name in sorted(topics) for p in paragraphs_of(topics[name]))
    else:
        text = " ".join(translation_texts()[lang])
    return [(text[i * chars % len(text) :] + text)[:chars] for i in range(n)]


def measure(lang: str, docs: list[str]) -> dict[str, float]:
    from tasks.languages import language

    segment = language(lang).words
    started = time.perf_counter()
    segment(docs[0])  # loads the segmenter
    first = time.perf_counter() - started
    started = time.perf_counter()
    counted = sum(len(segment(d)) for d in docs)
    seconds = time.perf_counter() - started
    return {"segmenter": language(lang).segmenter, "first_call_s": round(first, 3), "docs": len(docs),
            "docs_per_s": round(len(docs) / seconds, 1), "chars_per_s": round(sum(map(len, docs)) / seconds),
            "words_per_doc": round(counted / len(docs), 1)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=200)
    parser.add_argument("--chars", type=int, default=2000)
    parser.add_argument("--languages", default=",".join(LANGUAGES))
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    results = {lang: measure(lang, documents(lang, args.docs, args.chars)) for lang in args.languages.split(",")}
    rows = [[lang, r["segmenter"], r["first_call_s"], r["docs_per_s"], r["chars_per_s"], r["words_per_doc"]]
            for lang, r in results.items()]  # fmt: skip
    report = {"docs": args.docs, "chars_per_doc": args.chars, "results": results}
    print(write_results(args.out, "segmenters", report, f"Word segmenters on {args.chars}-character documents",
                        ["language", "segmenter", "first call s", "docs/s", "chars/s", "words/doc"], rows))  # fmt: skip


if __name__ == "__main__":
    main()
