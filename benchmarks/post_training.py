"""What post-training does on the embedded sample: the base model, sft, and dpo with and without its
NLL term (RPO), measured with intervals.

    python benchmarks/post_training.py [--out benchmarks/results] [--set key=value ...]

Runs `crawl2model run` with dpo on (the sample's sft settings; dpo.nll_weight its default), then again
with dpo.nll_weight=0 (plain DPO; only dpo and evaluate rerun). Records, per model, the instruction
following on held-out prompts (IFEval-style, strict: prompt- and constraint-level, 95% bootstrap
intervals, paired against the base model) and the held-out SFT loss; DPO's held-out preference
accuracy before and after (Wilson intervals) and reward margin; the stages' seconds; and the win rate
against the base model (raw and length-controlled, bootstrap intervals) as judged by the tests' rule
judge on 127.0.0.1 (the response following more of the prompt's constraints wins, ties to the longer
one): it exercises the whole win-rate path, and measures constraint following, not quality, since no
LLM judge is reachable offline. Results: benchmarks/results/<date>-<host>-post-training.json/.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.output import RESULTS, write_results  # noqa: E402
from benchmarks.sample_run import timed_run  # noqa: E402
from tests.fake_judge import FakeJudge, pairwise_by_constraints  # noqa: E402


def _latest(work: Path, stage: str, name: str) -> dict[str, Any]:
    path = max(work.glob(f"artifacts/{stage}/*/{name}"), key=lambda p: p.stat().st_mtime)
    return json.loads(path.read_text())


def preference(work: Path) -> dict[str, Any]:
    """Held-out preference accuracy before and after DPO, with Wilson intervals, and the reward margin."""
    from model.intervals import wilson

    dpo = _latest(work, "dpo", "manifest.json")["info"]
    n = dpo["pairs"]["val"]
    out = {"heldout_pairs": n, "train_pairs": dpo["pairs"]["train"]}
    for when in ("before", "after"):
        accuracy = dpo[f"heldout_{when}"]["pref_accuracy"]
        out[when] = {"pref_accuracy": accuracy, "ci": list(wilson(round(accuracy * n), n)),
                     "reward_margin": dpo[f"heldout_{when}"]["reward_margin"]}  # fmt: skip
    return out


def chat(work: Path) -> dict[str, Any]:
    models = _latest(work, "evaluate", "eval.json")["chat"]["models"]
    keys = ("following", "heldout_loss", "vs_base", "win_rate")
    return {name: {k: ({kk: vv for kk, vv in m[k].items() if kk != "per_prompt"} if isinstance(m.get(k), dict)
                       else m.get(k)) for k in keys} for name, m in models.items()}  # fmt: skip


def seconds(work: Path) -> dict[str, float]:
    from storage.catalog import Catalog

    _, rows = Catalog(work).query("select stage, round(seconds, 1) from stage_runs where not cache_hit and stage in "
                                  "('train', 'sft', 'dpo', 'evaluate') and run_id = (select run_id from runs order "
                                  "by started_at desc limit 1) order by started_at")  # fmt: skip
    return {stage: s for stage, s in rows}


def _rows(variants: dict[str, Any]) -> list[list[Any]]:
    from model.intervals import fmt_ci

    rows = []
    for variant, v in variants.items():
        for name in ("base", "sft", "dpo"):
            if variant != "rpo" and name != "dpo":
                continue
            m = v["chat"][name]
            f = m["following"]
            rows.append([f"{name} ({variant})" if name == "dpo" else name,
                         fmt_ci(f["prompt_level"]["value"], f["prompt_level"]["ci"], 3),
                         f"{f['constraint_level']['value']:.3f}", m["vs_base"]["verdict"] if m.get("vs_base") else "",
                         f"{m['heldout_loss']['value']:.3f}" if m.get("heldout_loss") else "",
                         f"{v['preference']['after']['pref_accuracy']:.3f}" if name == "dpo" else "",
                         *[fmt_ci(m["win_rate"][k]["value"], m["win_rate"][k]["ci"], 3) if m.get("win_rate") else ""
                           for k in ("win_rate", "lc_win_rate")]])  # fmt: skip
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--set", dest="sets", action="append", default=[], help="dotted.key=value (tests: smaller)")
    args = parser.parse_args()
    variants: dict[str, Any] = {}
    judge = FakeJudge(reply=pairwise_by_constraints)
    judged = f"evaluate.judge={json.dumps({'endpoint': judge.url, 'model': 'rule-judge', 'concurrency': 4})}"
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp) / "work"
        for variant, extra in (("rpo", []), ("plain", ["dpo.nll_weight=0"])):
            wall = timed_run(work, [*args.sets, "dpo.enabled=true", judged, *extra])
            variants[variant] = {"wall_s": wall, "seconds": seconds(work), "preference": preference(work),
                                 "chat": chat(work)}  # fmt: skip
    judge.close()
    report = {"command": "crawl2model run --set dpo.enabled=true [--set dpo.nll_weight=0]", "sets": args.sets,
              "judge": "tests.fake_judge.pairwise_by_constraints (a rule)", "variants": variants}  # fmt: skip
    name = "post-training" if not args.sets else "post-training-custom"
    print(write_results(args.out, name, report, "Post-training on the sample: instruction following on held-out "
                        "prompts (95% intervals), held-out SFT loss, DPO's held-out preference accuracy",
                        ["model", "prompts followed [95%]", "constraints followed", "vs base", "held-out SFT loss",
                         "held-out preference accuracy", "win rate vs base (rule judge)", "LC win rate"],
                        _rows(variants)))  # fmt: skip


if __name__ == "__main__":
    main()
