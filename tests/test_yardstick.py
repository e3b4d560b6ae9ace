"""The fixed yardstick: pinned by hash at the extract boundary, its copies kept out of training, the
same text under any curation; and the recipes experiment that compares curations on it."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from flows.cli import app
from storage.catalog import Catalog
from tasks.stage import StageInput
from tasks.yardstick.config import YardstickConfig
from tasks.yardstick.stage import run as yardstick_run
from tests.conftest import TINY_RUN_SETS, invoke

WORDS = (
    "river stone garden window letter market summer engine basket candle forest harbor lantern meadow "
    "pocket ribbon saddle thunder violet whistle anchor bridge castle desert falcon glacier island jungle"
).split()


def _text(rng: random.Random, n: int = 120) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n)) + "."


def _extract_output(tmp_path: Path, docs: list[dict]) -> StageInput:
    out = tmp_path / "extract"
    rows = [{"doc_id": d["doc_id"], "url": f"https://site.example/{d['doc_id']}", "host": "site.example",
             "text": d["text"], "lang": d.get("lang", "en"), "lang_score": 0.9} for d in docs]  # fmt: skip
    (out / "docs").mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(rows), out / "docs" / "part-00000.parquet")
    manifest = {
        "stage": "extract",
        "fingerprint": "x",
        "output_dir": str(out),
        "files": [{"path": "docs/part-00000.parquet", "kind": "docs"}],
        "counts": {"docs_in": len(rows), "docs_out": len(rows), "docs_removed": 0},
        "metrics": [],
        "info": {},
    }
    return StageInput.from_manifest(manifest)  # fmt: skip


def test_pinned_documents_and_their_exact_and_near_copies_are_excluded(tmp_path):
    rng = random.Random(0)
    docs = [{"doc_id": f"d{i:04d}", "text": _text(rng)} for i in range(400)]
    cfg = YardstickConfig(fraction=0.1)
    first = yardstick_run({"extract": _extract_output(tmp_path / "a", docs)}, cfg, tmp_path / "out-a")
    pinned = pq.read_table(tmp_path / "out-a" / "pinned" / "part-00000.parquet").to_pylist()
    assert 20 <= len(pinned) <= 60 and first.info["docs"] == len(pinned)
    target = pinned[0]
    words = target["text"].split()
    near = " ".join(words[:-6] + ["zebra"] * 6)  # the same page with its ending changed
    docs += [{"doc_id": "exact-copy", "text": target["text"].upper()}, {"doc_id": "near-copy", "text": near},
             {"doc_id": "unrelated", "text": _text(random.Random(99))},
             {"doc_id": "other-language", "text": _text(rng), "lang": "de"}]  # fmt: skip
    second = yardstick_run({"extract": _extract_output(tmp_path / "b", docs)}, cfg, tmp_path / "out-b")
    excluded = {r["doc_id"]: r for r in pq.read_table(tmp_path / "out-b" / "excluded").to_pylist()}
    assert (
        excluded["exact-copy"]["reason"] == "exact_copy" and excluded["exact-copy"]["pinned_doc_id"] == target["doc_id"]
    )
    assert excluded["near-copy"]["reason"] == "near_copy" and excluded["near-copy"]["similarity"] >= 0.5
    assert "unrelated" not in excluded
    # A pin depends on the document alone: added pages do not unpin any; other languages are never pinned.
    pinned_after = {r["doc_id"] for r in pq.read_table(tmp_path / "out-b" / "pinned").to_pylist()}
    assert {p["doc_id"] for p in pinned} <= pinned_after and "other-language" not in pinned_after
    assert second.info["excluded"]["near_copy"] >= 1


def test_fixed_rules_keep_junk_out_of_the_yardstick(tmp_path):
    rng = random.Random(1)
    docs = [{"doc_id": f"d{i:04d}", "text": _text(rng)} for i in range(200)]
    docs += [{"doc_id": f"short{i}", "text": "too short"} for i in range(200)]
    docs += [{"doc_id": f"sym{i}", "text": " ".join(["###", "123", "$$"] * 40)} for i in range(200)]
    yardstick_run({"extract": _extract_output(tmp_path, docs)}, YardstickConfig(fraction=0.3), tmp_path / "out")
    pinned = {r["doc_id"] for r in pq.read_table(tmp_path / "out" / "pinned").to_pylist()}
    assert pinned and all(d.startswith("d") for d in pinned)


SETS = TINY_RUN_SETS


@pytest.fixture(scope="module")
def recipes(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("recipes") / "work"
    invoke("experiment", "recipes", "--recipes", "raw,full", "--seeds", "2", "--workdir", str(work), *SETS)
    return work


def _result(work: Path) -> dict:
    [path] = list((work / "experiments").glob("recipes-*/result.json"))
    return json.loads(path.read_text())


def _runs(catalog: Catalog) -> dict[str, str]:
    _, rows = catalog.query("select label, run_id from experiment_runs group by all")
    return dict(rows)


@pytest.mark.slow
def test_recipes_compare_on_one_yardstick_at_equal_compute(recipes):
    result = _result(recipes)
    assert set(result["recipes"]) == {"raw", "full"} and result["seeds"] == 2
    raw, full = result["recipes"]["raw"], result["recipes"]["full"]
    headline = raw["yardstick_bits_per_byte"]
    assert headline["ci"][0] < headline["value"] < headline["ci"][1] and len(headline["seeds"]) == 2
    assert raw["tokens_seen"] == full["tokens_seen"] and not any("unequal" in w for w in result["warnings"])
    assert raw["train_docs"]["value"] > full["train_docs"]["value"]  # raw curates nothing
    verdicts = {c["metric"]: c for c in result["comparisons"]}
    assert verdicts["yardstick_bits_per_byte"]["verdict"] in ("better", "worse", "not distinguishable")
    assert all(c["recipe"] == "full" and c["baseline"] == "raw" for c in result["comparisons"])
    assert "task.cloze.acc" in verdicts and "task.cloze.p_correct" in verdicts and "task.cloze.logprob_norm" in verdicts
    stability = result["rank_stability"]  # two recipes, two seeds: each metric's seeds agree (1) or not (0)
    assert set(stability) >= {"yardstick_bits_per_byte", "task.cloze.p_correct"}
    assert all(v in (0.0, 1.0) for v in stability.values())
    report = (recipes / "experiments").glob("*/report.md")
    assert any("rank stability" in p.read_text() for p in report)
    catalog = Catalog(recipes)
    # One yardstick: the pinned text's stage output is shared by every variant (one fingerprint).
    _, rows = catalog.query("select count(distinct fingerprint), count(distinct run_id) from stage_runs "
                            "where stage = 'yardstick'")  # fmt: skip
    assert rows[0] == (1, 4)
    _, rows = catalog.query("select count(distinct fingerprint) from stage_runs where stage = 'evaluate'")
    assert rows[0][0] == 4
    out = invoke("compare", "--experiment", "latest", "--workdir", str(recipes))
    assert "paired comparisons" in out and "yardstick_bits_per_byte" in out


@pytest.mark.slow
def test_raw_recipe_switches_curation_off(recipes):
    catalog = Catalog(recipes)
    raw_run = _runs(catalog)[next(label for label in _runs(catalog) if label.endswith("raw-seed0"))]
    _, rows = catalog.query("select stage, docs_in, docs_out from stage_runs where run_id = ? and stage in "
                            "('filter', 'dedup')", [raw_run])  # fmt: skip
    counts = {stage: (docs_in, docs_out) for stage, docs_in, docs_out in rows}
    assert counts["dedup"][0] == counts["dedup"][1]
    # Filter removes only the pages extract left unextracted for its URL rules (they have no text).
    _, [(url_removed,)] = catalog.query("select sum(value) from metrics where run_id = ? and stage = 'filter' "
                                        "and name like 'removed.url_%'", [raw_run])  # fmt: skip
    assert url_removed > 0 and counts["filter"][0] - counts["filter"][1] == url_removed


@pytest.mark.slow
def test_yardstick_documents_never_reach_training(recipes):
    catalog = Catalog(recipes)
    _, [(pinned,)] = catalog.query("select count(*) from yardstick_pinned")
    _, [(leaked,)] = catalog.query("select count(*) from (select unnest(doc_ids) d from tokens) "
                                   "where d in (select doc_id from yardstick_excluded)")  # fmt: skip
    assert pinned > 5 and leaked == 0
    _, [(removed,)] = catalog.query("select count(*) from tokenize_removed where rule = 'yardstick'")
    assert removed > 0


@pytest.mark.slow
def test_catalog_counts_what_reached_the_token_shards(recipes):
    catalog = Catalog(recipes)
    _, [(docs,)] = catalog.query("select count(*) from documents")
    _, [(tokenized,)] = catalog.query("select count(distinct doc_id) from token_counts")
    assert docs == tokenized
    _, [(inside,)] = catalog.query("select count(*) from documents where doc_id in (select doc_id from "
                                   "tokenize_removed)")  # fmt: skip
    assert inside == 0
    _, rows = catalog.query("select split, sum(tokens) from token_counts group by 1 order by 1")
    assert [r[0] for r in rows] == ["train", "val"] and all(n > 0 for _, n in rows)
    _, rows = catalog.query("select split, count(*) from tokens group by 1 order by 1")
    assert [r[0] for r in rows] == ["train", "val"]


@pytest.mark.slow
def test_report_says_what_it_is(recipes):
    catalog = Catalog(recipes)
    _, [(out,)] = catalog.query("select output_dir from stage_runs where stage = 'evaluate' and run_id = "
                                "(select max(run_id) from runs)")  # fmt: skip
    report = (Path(out) / "report.md").read_text()
    for text in (
        "## About this run",
        "run |",
        "git revision",
        "train.seed",
        "Yardstick",
        "[95% interval]",
        "Tokens seen:",
        "epochs",
        "Removals of planted bad pages",
        "Kept (reached the mix)",
    ):
        assert text in report, text
    assert "*at chance*" in report or "chance" in report
    html = (Path(out) / "report.html").read_text()
    assert "data:image/png;base64," in html and 'src="loss_curve.png"' not in html
    _, rows = catalog.query("select count(*) from metrics where stage = 'train' and name = 'val_loss' "
                            "and step is not null")  # fmt: skip
    assert rows[0][0] >= 4  # two points per training (step 100 and the last), four trainings


@pytest.mark.slow
def test_compare_reads_b_relative_to_a_and_warns_on_a_different_yardstick(recipes):
    runs = _runs(Catalog(recipes))
    raw = runs[next(k for k in runs if k.endswith("raw-seed0"))]
    full = runs[next(k for k in runs if k.endswith("full-seed0"))]
    out = invoke("compare", raw, full, "--workdir", str(recipes))
    assert f"A = {raw}, B = {full}" in out and "paired: B relative to A" in out and "different yardsticks" not in out
    invoke("run", "--workdir", str(recipes), *SETS, "--set", "yardstick.seed=7")
    out = invoke("compare", raw, "latest", "--workdir", str(recipes))
    assert "different yardsticks" in out


@pytest.mark.slow
def test_any_checkpoint_is_scored_with_the_same_report(recipes):
    sets = [*SETS, "--set", "train.seed=0"]  # the `full` recipe's first seed: the configured pipeline
    catalog = Catalog(recipes)
    run = _runs(catalog)[next(k for k in _runs(catalog) if k.endswith("full-seed0"))]
    _, [(train_dir,)] = catalog.query(
        "select any_value(output_dir) from stage_runs where stage = 'train' and run_id = ?", [run]
    )
    final = invoke("evaluate", str(Path(train_dir) / "model.pt"), "--workdir", str(recipes), *sets)
    early = invoke("evaluate", str(Path(train_dir) / "checkpoints" / "step-0000060.pt"), "--workdir", str(recipes),
                    *sets)  # fmt: skip
    bpb = [float(out.split("yardstick bits per byte: ")[1].split()[0]) for out in (final, early)]
    assert bpb[1] > bpb[0]  # half-way through training models the yardstick worse
    report = Path(early.split("report: ")[1].split()[0])
    assert report.exists() and "## Yardstick" in report.read_text()
    first = Path(final.split("report: ")[1].split()[0])
    before = first.read_bytes()
    # A benchmark the run never saw (it would change tokenize's fingerprint): scored, not refused; its
    # items taken from training documents are reported as contamination; a new folder, the first kept.
    _, [(mix_dir,)] = catalog.query("select any_value(output_dir) from stage_runs where stage = 'mix' and run_id = ?",
                                    [run])  # fmt: skip
    texts = [t for p in sorted(Path(mix_dir).glob("docs/*.parquet")) for t in pq.read_table(p)["text"].to_pylist()]
    rows = [{"context": " ".join(t.split()[:40]), "choices": [" yes", " no"], "label": 0} for t in texts[:12]]
    rows += [{"context": f"Is {w} a colour?", "choices": [" yes", " no"], "label": 0} for w in ("red", "blue", "tea")]
    bench = recipes / "new-benchmark.jsonl"
    bench.write_text("".join(json.dumps(r) + "\n" for r in rows))
    arc = recipes / "arc.jsonl"
    arc.write_text(
        "".join(
            json.dumps(
                {
                    "id": f"q{i}",
                    "question": f"What does the {w} module do?",
                    "choices": {"text": ["reads files", "bakes bread"], "label": ["A", "B"]},
                    "answerKey": "A",
                }
            )
            + "\n"
            for i, w in enumerate(("os", "io", "json", "csv"))
        )
    )
    olmes_arc = {"name": "arc_challenge", "path": str(arc), "formulation": "both", "normalization": "olmes"}
    spec = json.dumps([{"name": "fresh", "path": str(bench)}, olmes_arc])
    again = invoke("evaluate", str(Path(train_dir) / "model.pt"), "--workdir", str(recipes), *sets, "--set",
                   f"evaluate.benchmarks={spec}")  # fmt: skip
    assert "| fresh | 15 |" in again and "in training data" in again
    assert "| arc_challenge:cloze | 4 |" in again and "| arc_challenge:mc | 4 |" in again
    assert "the better formulation" in again and "(pmi) |" in again and "(none) |" in again  # OLMES's, per formulation
    second = Path(again.split("report: ")[1].split()[0])
    assert second.parent != first.parent and first.read_bytes() == before
    fresh = json.loads((second.parent / "checkpoint.json").read_text())["metrics"]["tasks"]["fresh"]
    assert fresh["majority"] == 1.0 and fresh["baseline"] == 1.0 and fresh["acc_at_chance"]
    assert fresh["contamination"]["contaminated"] >= 6, fresh["contamination"]
    arc_scores = json.loads((second.parent / "checkpoint.json").read_text())["metrics"]["tasks"]["arc_challenge:cloze"]
    assert arc_scores["stated"] == "acc_pmi" and 0 <= arc_scores["acc_pmi"] <= 1
    result = CliRunner().invoke(app, ["evaluate", "/nonexistent.pt", "--workdir", str(recipes), *sets])
    assert result.exit_code == 1 and "no checkpoint" in result.output


@pytest.mark.slow
def test_harness_runs_lm_eval_tasks_on_a_checkpoint(recipes, tmp_path):
    sets = [*SETS, "--set", "train.seed=0"]
    catalog = Catalog(recipes)
    run = _runs(catalog)[next(k for k in _runs(catalog) if k.endswith("full-seed0"))]
    _, [(train_dir,)] = catalog.query(
        "select any_value(output_dir) from stage_runs where stage = 'train' and run_id = ?", [run]
    )
    piqa = tmp_path / "piqa.jsonl"
    rows = [{"goal": f"To open the {w} file", "sol1": "run python on it", "sol2": "bake it", "label": 0}
            for w in ("config", "data", "log", "notes", "yaml", "json")]  # fmt: skip
    piqa.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = invoke("harness", str(Path(train_dir) / "model.pt"), "--local", f"piqa={piqa}", "--workdir", str(recipes),
                 *sets)  # fmt: skip
    assert "piqa_local: acc" in out
    results = json.loads(Path(out.split("results: ")[1].split()[0]).read_text())
    assert 0.0 <= results["results"]["piqa_local"]["acc,none"] <= 1.0 and results["tasks"] == ["piqa_local"]
    bad = CliRunner().invoke(app, ["harness", str(Path(train_dir) / "model.pt"), "--local", "piqa=/nope.jsonl",
                                   "--workdir", str(recipes), *sets])  # fmt: skip
    assert bad.exit_code == 2 and "TASK=FILE" in bad.output


@pytest.mark.slow
def test_curve_scores_every_milestone_against_tokens_seen(recipes):
    sets = [*SETS, "--set", "train.milestone_every=40"]
    result = CliRunner().invoke(app, ["curve", "--workdir", str(recipes), *SETS, "--set", "train.seed=0"])
    assert result.exit_code == 1 and "milestone_every" in result.output  # trained without milestones
    invoke("run", "--workdir", str(recipes), *sets)
    out = invoke("curve", "--workdir", str(recipes), *sets)
    [path] = (recipes / "curves").glob("*/curve.json")
    points = json.loads(path.read_text())["points"]
    assert [p["checkpoint"] for p in points] == ["step-0000040.pt", "step-0000080.pt", "step-0000120.pt", "model.pt"]
    tokens = [p["tokens"] for p in points]
    assert tokens[0] > 0 and tokens == sorted(tokens) and tokens[2] == tokens[3]  # the last milestone is the end
    bpb = [p["yardstick_bits_per_byte"] for p in points]
    assert bpb[0] > bpb[-1] and bpb[2] == pytest.approx(bpb[3])  # better with more tokens; same weights at the end
    assert all(p["yardstick_ci"][0] < p["yardstick_bits_per_byte"] < p["yardstick_ci"][1] for p in points)
    assert "cloze" in points[0]["tasks"] and (path.parent / "curve.png").stat().st_size > 1000
    cloze = points[-1]["tasks"]["cloze"]  # accuracy beside the continuous metrics, each with its interval
    for key in ("acc", "p_correct", "logprob_norm"):
        assert cloze[f"{key}_ci"][0] <= cloze[key] <= cloze[f"{key}_ci"][1], key
    assert "step-0000040.pt: " in out and "curve: " in out and "  cloze: acc " in out and "p_correct" in out
