"""The README's first command, measured: the whole pipeline on the embedded sample from an empty
workdir, then the same command again (every stage from cache).

    python benchmarks/sample_run.py [--out benchmarks/results] [--set key=value ...]

Runs `crawl2model run` as a user does (its own process, the temporary Prefect server included) and
records each stage's seconds and documents in, kept and removed from the catalog, the yardstick's bits
per byte with its interval (overall and per domain), the built-in tasks, the planted cases caught at
their stage, and both commands' wall seconds. Results: benchmarks/results/<date>-<host>-sample-run.json/.md.
The manual's results pages are generated from that file; the findings page reads it.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.output import RESULTS, write_results  # noqa: E402


def timed_run(work: Path, sets: list[str]) -> float:
    """Wall seconds of one `crawl2model run` in a process of its own."""
    started = time.perf_counter()
    args = [sys.executable, "-m", "flows.cli", "run", "--workdir", str(work), *[a for s in sets for a in ("--set", s)]]
    done = subprocess.run(args, cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(done.stdout[-2000:] + done.stderr[-3000:])
    return round(time.perf_counter() - started, 1)


def stage_rows(work: Path) -> list[dict[str, Any]]:
    """The first run's stages from the catalog: seconds, documents in / kept / removed."""
    from storage.catalog import Catalog

    columns, rows = Catalog(work).query(
        'select stage, round(seconds, 1) as "seconds", docs_in, docs_out, docs_removed from stage_runs '
        "where run_id = (select run_id from runs order by started_at limit 1) order by started_at"
    )
    return [dict(zip(columns, row, strict=True)) for row in rows]


def model_scores(work: Path) -> dict[str, Any]:
    """The yardstick (overall and per domain, with intervals), the tasks and the planted cases."""
    [evaluation] = work.glob("artifacts/evaluate/*/eval.json")
    ev = json.loads(evaluation.read_text())
    yardstick = ev["yardstick"]
    return {
        "yardstick_bits_per_byte": yardstick["bits_per_byte"],  # value, ci, docs
        "yardstick_by_domain": yardstick["domains"],
        "yardstick_fingerprint": yardstick["fingerprint"],
        "tasks": ev["tasks"],
        "planted": {case: {k: v[k] for k in ("n", "at_expected_stage", "kept")} for case, v in ev["planted"].items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--set", dest="sets", action="append", default=[], help="dotted.key=value (tests: smaller)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp) / "work"
        first, again = timed_run(work, args.sets), timed_run(work, args.sets)
        stages, scores = stage_rows(work), model_scores(work)
    report = {"command": "crawl2model run", "sets": args.sets, "first_run_s": first, "cached_run_s": again,
              "stages": stages, **scores}  # fmt: skip
    rows = [[s["stage"], s["seconds"], s["docs_in"], s["docs_out"], s["docs_removed"]] for s in stages]
    rows.append(["whole command (wall)", first, None, None, None])
    rows.append(["again, all cached (wall)", again, None, None, None])
    name = "sample-run" if not args.sets else "sample-run-custom"
    print(write_results(args.out, name, report, "The sample pipeline from an empty workdir",
                        ["stage", "seconds", "docs in", "kept", "removed"], rows))  # fmt: skip


if __name__ == "__main__":
    main()
