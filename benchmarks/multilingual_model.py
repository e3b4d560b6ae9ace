"""The multilingual sample trained and evaluated per language: what the tokenizer costs each language
with a language-balanced sample (tokenize.sample_alpha 0.3) and without one (hash order), the mixture's
tokens per language (mix.languages, alpha 0.3), the yardstick's bits per byte per language and the
built-in cloze task per language, with 95% intervals. CPU, the configured tiny model.

    python benchmarks/multilingual_model.py [--config configs/sample-multilingual.yaml] [--out benchmarks/results]

Both runs train the tokenizer on 400 documents (--sample-docs), fewer than the sample's ~2,200, as a
real crawl's 5,000 are of its millions; the second differs only from tokenize on (the stages before
it come from the cache).
Results: benchmarks/results/<date>-<host>-multilingual-model.json/.md.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.output import RESULTS, write_results  # noqa: E402


def run(config: Path, workdir: Path, sets: list[str]) -> tuple[dict, float]:
    started = time.perf_counter()
    cmd = [sys.executable, "-m", "flows.cli", "run", "--config", str(config), "--workdir", str(workdir), *sets]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"crawl2model run failed:\n{(done.stdout + done.stderr)[-3000:]}")
    report = Path(done.stdout.split("report: ")[1].split()[0])
    return json.loads((report.parent / "eval.json").read_text()) | {
        "fertility": json.loads(next(workdir.glob(f"artifacts/tokenize/{_fp(report, 'tokenize')}/manifest.json"))
                                .read_text())["info"]["fertility"],
        "languages_mix": json.loads(next(workdir.glob(f"artifacts/mix/{_fp(report, 'mix')}/manifest.json"))
                                    .read_text())["info"].get("languages", {}),
    }, time.perf_counter() - started  # fmt: skip


def _fp(report: Path, stage: str) -> str:
    """The fingerprint of `stage`'s output that the evaluation at `report` read (from its lineage)."""
    from storage.catalog import Catalog

    workdir = report.parents[3]
    _, rows = Catalog(workdir).query("select parent_fingerprint from lineage where child_fingerprint = ? and "
                                     "parent_stage = ?", [report.parent.name, stage])  # fmt: skip
    return rows[0][0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, default=ROOT / "configs" / "sample-multilingual.yaml")
    parser.add_argument("--out", type=Path, default=RESULTS)
    # Fewer than the sample's ~2,200 documents, as a real crawl's 5,000 are of its millions: which ones matters.
    parser.add_argument("--sample-docs", type=int, default=400, help="documents the tokenizer learns from")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        small = ["--set", f"tokenize.sample_docs={args.sample_docs}"]
        balanced, seconds = run(args.config, Path(tmp), small)
        hashed, _ = run(args.config, Path(tmp), [*small, "--set", "tokenize.sample_alpha=null"])
    languages = sorted(balanced["fertility"])
    rows = []
    for lang in languages:
        y = balanced["yardstick"].get("languages", {}).get(lang)
        cloze = balanced["tasks"].get("cloze", {}).get("languages", {}).get(lang)
        mixed = balanced["languages_mix"].get(lang, {})
        rows.append([lang, f"{balanced['fertility'][lang]['tokens_per_word']:.2f}",
                     f"{hashed['fertility'].get(lang, {}).get('tokens_per_word', float('nan')):.2f}",
                     f"{balanced['fertility'][lang]['bytes_per_token']:.2f}",
                     f"{mixed.get('share_before', 0):.3f} -> {mixed.get('share_after', 0):.3f}",
                     f"{mixed.get('epochs', 0):.2f}",
                     f"{y['value']:.3f} [{y['ci'][0]:.3f}, {y['ci'][1]:.3f}] ({y['docs']})" if y else "",
                     f"{cloze['acc']:.3f} [{cloze['acc_ci'][0]:.3f}, {cloze['acc_ci'][1]:.3f}] ({cloze['n']})"
                     if cloze else ""])  # fmt: skip
    kept = {k: balanced[k] for k in ("fertility", "languages_mix")}
    report = {"seconds_first_run": round(seconds, 1), "tokenizer_sample_docs": args.sample_docs, "balanced": kept,
              "hash_order": {"fertility": hashed["fertility"]}, "yardstick": balanced["yardstick"],
              "cloze": balanced["tasks"].get("cloze", {})}  # fmt: skip
    headers = ["language", "tokens/word (balanced sample)", "tokens/word (hash order)", "bytes/token",
               "token share before -> after mix", "epochs", "yardstick bits/byte [95%] (docs)",
               "built-in cloze acc [95%] (items)"]  # fmt: skip
    title = "The multilingual sample, trained and evaluated per language"
    print(write_results(args.out, "multilingual-model", report, title, headers, rows))


if __name__ == "__main__":
    main()
