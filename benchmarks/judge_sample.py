"""The LLM-judge route on the embedded sample, against the fake OpenAI-compatible judge of the tests
(it scores 4 when a page mentions Python, else 1: a rule we know, so agreement means something).
Measures annotations made, calls/s, the classifier's F1 against the judge on held-out annotations,
documents kept; then a forced rerun of filter, whose annotations must all come from the cache.

    python benchmarks/judge_sample.py [--sample 500] [--pages 0]

Results: benchmarks/results/<date>-<host>-judge.json/.md.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from output import RESULTS, write_results

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.fake_judge import FakeJudge  # noqa: E402


def python_rule(text: str) -> int:
    return 4 if "Python" in text else 1


def filter_run(work: Path, annotate: dict, pages: int, force: bool) -> dict:
    sets = ["--set", f"filter.quality.annotate={json.dumps(annotate)}"]
    if pages:
        sets += ["--set", f"acquire.sample_pages={pages}", "--set", "acquire.planted_per_case=4"]
    cmd = [str(Path(sys.executable).with_name("crawl2model")), "run", "--workdir", str(work), "--until", "filter",
           *sets, *(["--force", "filter"] if force else [])]  # fmt: skip
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"crawl2model run failed:\n{(done.stdout + done.stderr)[-3000:]}")
    manifest = sorted(work.glob("artifacts/filter/*/manifest.json"), key=lambda p: p.stat().st_mtime)[-1]
    return json.loads(manifest.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sample", type=int, default=500, help="documents the judge annotates")
    parser.add_argument("--pages", type=int, default=0, help="sample pages (0 = the default sample)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    judge = FakeJudge(rule=python_rule)
    annotate = {"endpoint": judge.url, "model": "fake-judge", "sample": args.sample, "concurrency": 8}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            first = filter_run(Path(tmp), annotate, args.pages, force=False)
            again = filter_run(Path(tmp), annotate, args.pages, force=True)
    finally:
        judge.close()
    info, rerun = first["info"], again["info"]
    report = {
        "annotations": info["annotate_scored"], "malformed": info["annotate_malformed"],
        "calls": info["annotate_calls"], "seconds": info["annotate_seconds"],
        "calls_per_s": info["annotate_calls"] / max(info["annotate_seconds"], 1e-9),
        "judge_f1": info["quality_judge_f1"],
        "judge_f1_ci": [info["quality_judge_f1_lo"], info["quality_judge_f1_hi"]],
        "judge_precision": info["quality_judge_precision"],
        "judge_recall": info["quality_judge_recall"], "heldout": info["quality_judge_heldout"],
        "confusion": info["quality_judge_confusion"], "docs_in": first["counts"]["docs_in"],
        "docs_kept": first["counts"]["docs_out"], "rerun_calls": rerun["annotate_calls"],
        "rerun_cache_hits": rerun["annotate_cache_hits"],
    }  # fmt: skip
    rows = [[k, round(v, 4) if isinstance(v, float) else v] for k, v in report.items() if k != "confusion"]
    print(write_results(args.out, "judge", report, "LLM-judge route on the sample (fake judge)", ["measure", "value"],
                        rows))  # fmt: skip


if __name__ == "__main__":
    main()
