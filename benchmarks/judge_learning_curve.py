"""How many annotations does the judge route need? The classifier learns a judge whose rule it is not
shown, from 600 annotations of the sample's pages, with each learner; F1 against the judge with its 95%
interval at 1/4, 1/2, 3/4 and all of the training annotations (the product's learning curve, on its
stratified held-out fifth), and F1 on the 1,700 pages nobody annotated.

    python benchmarks/judge_learning_curve.py [--annotations 600] [--out benchmarks/results]

The judge (a fake OpenAI-compatible server on 127.0.0.1) scores `tests.fake_judge.additive_rubric`, as
FineWeb-Edu's prompt does: a point each for at least 120 words, an example, an explanation, error
handling and code; 3 points or more is good, 26% of the pages.
Results: benchmarks/results/<date>-<host>-judge-learning-curve.json/.md.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.output import RESULTS, write_results  # noqa: E402
from tests.fake_judge import additive_rubric, sample_pages  # noqa: E402


def measure(learner: str, annotated: list[str], unseen: list[str], judge_url: str, tmp: Path) -> dict:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from tasks.filter.annotated import train_on_annotations
    from tasks.filter.config import QualityClassifierConfig
    from tasks.filter.quality import score_text

    shard = tmp / "docs.parquet"
    pq.write_table(pa.table({"doc_id": [f"d{i:05d}" for i in range(len(annotated))], "text": annotated,
                             "lang": ["en"] * len(annotated)}), shard)  # fmt: skip
    cfg = QualityClassifierConfig.model_validate({"annotate": {
        "endpoint": judge_url, "model": "fake-judge", "sample": len(annotated), "learner": learner}})  # fmt: skip
    info = train_on_annotations([str(shard)], cfg, tmp / f"{learner}.bin", tmp / "cache")
    tp = fp = fn = 0
    for text in unseen:
        kept, good = score_text(str(tmp / f"{learner}.bin"), text, cfg) >= 0.5, additive_rubric(text) >= 3
        tp, fp, fn = tp + (kept and good), fp + (kept and not good), fn + (good and not kept)
    return {"curve": info["quality_judge_curve"], "heldout": info["quality_judge_heldout"],
            "unseen_pages": len(unseen), "unseen_f1": round(2 * tp / max(2 * tp + fp + fn, 1), 4)}  # fmt: skip


def main() -> None:
    from tests.fake_judge import FakeJudge

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--annotations", type=int, default=600)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    texts = sample_pages()
    annotated, unseen = texts[: args.annotations], texts[args.annotations :]
    judge = FakeJudge(rule=additive_rubric)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            results = {learner: measure(learner, annotated, unseen, judge.url, Path(tmp))
                       for learner in ("stumps", "linear", "fasttext")}  # fmt: skip
    finally:
        judge.close()
    rows = [[learner, c["annotations"], f"{c['f1']:.3f} [{c['ci'][0]:.3f}, {c['ci'][1]:.3f}]",
             r["unseen_f1"] if c is r["curve"][-1] else ""]
            for learner, r in results.items() for c in r["curve"]]  # fmt: skip
    good = round(sum(additive_rubric(t) >= 3 for t in texts) / len(texts), 4)
    report = {"annotations": args.annotations, "good_share": good, "results": results}
    headers = ["learner", "training annotations", "F1 on held-out annotations [95%]", "F1 on unseen pages"]
    title = "Learning a judge's hidden rubric: F1 against the number of annotations"
    print(write_results(args.out, "judge-learning-curve", report, title, headers, rows))


if __name__ == "__main__":
    main()
