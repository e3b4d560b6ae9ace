"""The whole pipeline on a reduced sample, through the CLI and Prefect (ephemeral server)."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from flows.cli import app
from storage.catalog import Catalog
from tasks.registry import STAGES

pytestmark = pytest.mark.slow

REDUCED = [
    "acquire.sample_pages=400",
    "acquire.planted_per_case=8",
    "acquire.seed=5",
    "dedup.quality_check_docs=2000",
    "tokenize.vocab_size=1000",
    "tokenize.seq_len=64",
    "train.n_layer=2",
    "train.n_head=2",
    "train.n_embd=64",
    "train.max_steps=300",
    "train.batch_size=32",
    "train.warmup_steps=10",
    "train.checkpoint_every=50",
    "train.log_every=25",
    "evaluate.max_new_tokens=12",
    "sft.max_steps=40",
    "sft.log_every=20",
    "evaluate.chat_prompts=12",
    "evaluate.chat_max_new_tokens=12",
]
runner = CliRunner()
# Set in the environment of the first run: none may reach the workdir, the catalog or Prefect's files.
FAKE_SECRETS = {
    "AWS_ACCESS_KEY_ID": "AKIAFAKE7Q2W3E4R5T6Y",
    "AWS_SECRET_ACCESS_KEY": "fake-secret-9f8e7d6c5b4a39281706",
    "AWS_SESSION_TOKEN": "fake-session-token-0a1b2c3d4e5f",
    "HF_TOKEN": "hf_fakeTokenXyZ1234567890",
}
# Set by the first_run fixture: the benchmark file every run of this module evaluates.
RUN_SETTINGS: list[str] = []


def crawl2model(work: Path, *args: str) -> str:
    sets = [a for s in [*REDUCED, *RUN_SETTINGS] for a in ("--set", s)]
    result = runner.invoke(app, ["run", "--workdir", str(work), *sets, *args])
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result.output


def latest_stage_runs(catalog: Catalog) -> dict[str, dict]:
    cols, rows = catalog.query(
        "select stage, cache_hit, docs_in, docs_out, docs_removed, fingerprint from stage_runs "
        "where run_id = (select run_id from runs order by started_at desc limit 1)"
    )
    return {r[0]: dict(zip(cols, r, strict=True)) for r in rows}


def shard_digests(directory: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.glob("*.parquet"))}


@pytest.fixture(scope="module")
def first_run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("e2e")
    bench = root / "easy.jsonl"
    bench.write_text("".join(
        json.dumps({"context": f"Question {i}: is this a test?", "choices": ["yes", "no"], "label": i % 2}) + "\n"
        for i in range(6)))  # fmt: skip
    work = root / "work"
    RUN_SETTINGS[:] = [f'evaluate.benchmarks=[{{"name": "easy", "format": "generic", "path": "{bench}"}}]']
    with pytest.MonkeyPatch.context() as env:
        for name, value in FAKE_SECRETS.items():
            env.setenv(name, value)
        crawl2model(work)
    return work


def test_planted_cases_are_removed_where_meant(first_run):
    evaluation = json.loads(next(first_run.glob("artifacts/evaluate/*/eval.json")).read_text())
    planted = evaluation["planted"]
    for case in ("non_html", "non_200", "boilerplate_only", "non_english", "blocklisted", "spam", "truncated"):
        assert planted[case]["rate"] == 1.0, (case, planted[case])
    for case in ("exact_duplicate", "near_duplicate"):
        assert planted[case]["rate"] >= 0.75, (case, planted[case])
    pii = evaluation["pii"]
    assert pii["pii_pages_kept"] >= 4  # redaction was exercised, not just avoided
    assert pii["pii_strings_leaked"] == 0
    assert pii["pii_filter_recall"] >= 0.99 and pii["pii_unplanted_docs_rate"] < 0.05
    evals = evaluation["evals"]
    assert evals["val_bits_per_byte"] < 0.9 * evals["unigram_bits_per_byte"]
    report = next(first_run.glob("artifacts/evaluate/*/report.md")).read_text()
    assert "Planted cases" in report and "unigram_bits_per_byte" in report
    assert f"PII pages planted: 8, of which {pii['pii_pages_kept']} reached" in report
    assert next(first_run.glob("artifacts/evaluate/*/loss_curve.png")).stat().st_size > 1000
    # Dedup measured against exact Jaccard on the run's documents plus 2,000 generated ones.
    dedup = evaluation["dedup_quality"]
    # Measured on the generated near-duplicates alone (cached by the dedup settings, not by the input).
    assert dedup["synthetic_docs"] == 2000 == dedup["docs"] and dedup["pairs_ge_0.8"] > 100
    assert dedup["recall_ge_0.8"] >= 0.95 and dedup["precision"] >= 0.98
    assert "## Dedup quality" in report


def test_extraction_keeps_the_main_text_and_drops_the_boilerplate(first_run):
    _, rows = Catalog(first_run).query(
        "select name, value from metrics where stage = 'extract' and name like 'extract_word_%' order by name"
    )
    quality = dict(rows)
    assert quality["extract_word_precision"] >= 0.9 and quality["extract_word_recall"] >= 0.9, quality


def test_evaluation_tasks_report_and_exported_items(first_run):
    out = next(first_run.glob("artifacts/evaluate/*/"))
    evaluation = json.loads((out / "eval.json").read_text())
    assert evaluation["tasks"]["easy"]["n"] == 6 and evaluation["tasks"]["easy"]["chance"] == 0.5
    assert evaluation["tasks"]["cloze"]["n"] > 10 and evaluation["tasks"]["cloze"]["chance"] == 0.25
    assert "last_word" in evaluation["tasks"]
    # Every domain among the held-out documents is scored (which ones the small split holds varies).
    from tasks.config import load_config
    from tasks.evaluate.scoring import held_out_docs
    from tasks.plan import plan
    from tasks.stage import StageInput, load_manifest

    dirs = {p.stage: p.output_dir for p in plan(load_config(None, [*REDUCED, *RUN_SETTINGS]), first_run)}
    tok, mix = (StageInput.from_manifest(load_manifest(dirs[s])) for s in ("tokenize", "mix"))
    assert set(evaluation["domains"]) == {d["domain"] for d in held_out_docs(tok, mix)}
    assert "docs" in evaluation["domains"] and len(evaluation["domains"]) >= 3
    assert all(d["bits_per_byte"] > 0 for d in evaluation["domains"].values())
    tasks = {json.loads(line)["task"] for line in (out / "eval_items.jsonl").open()}
    assert tasks == {"easy", "cloze", "last_word"}
    html = (out / "report.html").read_text()
    assert "<table>" in html and "Per domain" in html and "data:image/png;base64," in html  # one self-contained file


def test_counts_reconcile_at_every_stage(first_run):
    catalog = Catalog(first_run)
    runs = latest_stage_runs(catalog)
    assert set(runs) == set(STAGES)
    text_stages = ["extract", "filter", "dedup", "mix", "tokenize"]
    for stage in text_stages:
        r = runs[stage]
        assert r["docs_in"] == r["docs_out"] + r["docs_removed"], stage
    for upstream, downstream in zip(text_stages, text_stages[1:], strict=False):
        assert runs[upstream]["docs_out"] == runs[downstream]["docs_in"], (upstream, downstream)
    # The removed table and the document shards hold exactly the counted rows.
    _, removed = catalog.query("select stage, count(*) from removed group by stage")
    for stage, n in removed:
        assert n == runs[stage]["docs_removed"], stage
    for stage in ["extract", "filter", "dedup", "mix"]:
        _, [(n,)] = catalog.query(f"select count(*) from {stage}_docs")
        if stage == "extract":  # pages the URL rules remove are handed on unextracted, for filter to record
            _, [(deferred,)] = catalog.query("select count(*) from extract_deferred where stage = 'filter'")
            _, [(recorded,)] = catalog.query("select count(*) from removed where stage = 'filter' and rule in "
                                             "(select rule from extract_deferred)")  # fmt: skip
            assert deferred > 0 and recorded >= deferred
            n += deferred
        assert n == runs[stage]["docs_out"], stage
    # Every WARC response record is accounted for at extract.
    truth = [json.loads(line) for line in next(first_run.glob("artifacts/acquire/*/ground_truth.jsonl")).open()]
    assert runs["extract"]["docs_in"] == len(truth)


def test_second_run_is_all_cache_hits(first_run):
    output = crawl2model(first_run)
    assert output.count("cached") == len(STAGES)
    runs = latest_stage_runs(Catalog(first_run))
    assert all(r["cache_hit"] for r in runs.values())
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName
    from prefect.client.schemas.sorting import FlowRunSort

    with get_client(sync_client=True) as client:
        flow_run = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=None)), sort=FlowRunSort.START_TIME_DESC, limit=1
        )[0]
        from prefect.client.schemas.filters import FlowRunFilterId

        tasks = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run.id])))
    assert sorted(t.state.name for t in tasks) == ["Cached"] * len(STAGES)


def test_changed_threshold_reruns_filter_and_later_only(first_run):
    output = crawl2model(first_run, "--set", "filter.gopher_quality.min_words=60")
    runs = latest_stage_runs(Catalog(first_run))
    # The yardstick reads extract's output only: a filter change leaves the evaluation text as it was.
    assert runs["acquire"]["cache_hit"] and runs["extract"]["cache_hit"] and runs["yardstick"]["cache_hit"], output
    for stage in STAGES[STAGES.index("filter") :]:
        assert not runs[stage]["cache_hit"], (stage, runs, output)
    # dedup reran on the new input, but its quality check depends on the dedup settings alone.
    dedup = json.loads((first_run / "artifacts" / "dedup" / runs["dedup"]["fingerprint"] / "manifest.json").read_text())
    assert dedup["info"]["quality"]["cache"] == "hit" and dedup["info"]["quality"]["docs"] == 2000
    # --only reuses the cached upstream and runs just that stage.
    output = crawl2model(first_run, "--set", "filter.gopher_quality.min_words=60", "--only", "dedup")
    runs = latest_stage_runs(Catalog(first_run))
    assert list(runs) == ["dedup"] and runs["dedup"]["cache_hit"], (runs, output)


def test_compare_shows_what_the_threshold_changed(first_run):
    from storage.compare import config_diff, eval_diff, funnel_diff

    catalog = Catalog(first_run)
    _, rows = catalog.query("select run_id from runs where status = 'completed' order by started_at")
    runs = [r[0] for r in rows]
    first, changed = runs[0], runs[2]  # the first run and the min_words=60 run
    assert [k for k, _, _ in config_diff(catalog, first, changed)] == ["filter.gopher_quality.min_words"]
    funnel = {row[0]: row for row in funnel_diff(catalog, first, changed)}
    assert funnel["extract"][4] == 0 and funnel["filter"][4] <= 0
    assert any(key.startswith("filter removed: gopher_min_words") for key in funnel)
    evals = {row[0]: row for row in eval_diff(catalog, first, changed)}
    assert evals["val_bits_per_byte"][1] is not None and evals["val_bits_per_byte"][2] is not None
    result = runner.invoke(app, ["compare", first[:15], "latest", "--workdir", str(first_run)])
    assert result.exit_code == 0 and "config differences" in result.output


def test_interrupted_stage_resumes_to_identical_shards(first_run):
    out = next(first_run.glob("artifacts/extract/*/"))
    before = shard_digests(out / "docs")
    # Simulate a crash after the first shard: later shards, their done-markers and the manifest are gone.
    (out / "manifest.json").unlink()
    for p in sorted((out / "docs").glob("*.parquet"))[1:]:
        p.unlink()
    for p in sorted((out / "_state").glob("shard-*.json"))[1:]:
        p.unlink()
    crawl2model(first_run, "--until", "extract")
    assert shard_digests(out / "docs") == before
    # A forced rerun from scratch writes the same bytes too.
    shutil.rmtree(out)
    crawl2model(first_run, "--until", "extract")
    assert shard_digests(out / "docs") == before


def test_no_secret_from_the_environment_is_written_anywhere(first_run):
    import os

    roots = [first_run, Path(os.environ.get("PREFECT_HOME", Path.home() / ".prefect"))]
    files = [p for root in roots if root.exists() for p in root.rglob("*") if p.is_file()]
    assert len(files) > 20
    for path in files:
        data = path.read_bytes()
        for name, value in FAKE_SECRETS.items():
            assert value.encode() not in data, f"{name} found in {path}"


def test_explain_tells_the_whole_history_of_a_document(first_run):
    from warcio.archiveiterator import ArchiveIterator

    truth = [json.loads(line) for line in next(first_run.glob("artifacts/acquire/*/ground_truth.jsonl")).open()]
    spam = next(r for r in truth if r["case"] == "spam")
    result = runner.invoke(app, ["explain", spam["url"], "--json", "--workdir", str(first_run)])
    assert result.exit_code == 0, result.output
    [history] = json.loads(result.output)
    extract, filtered = history["stages"][:2]
    assert history["doc_id"] == spam["doc_id"] and "kept" in extract
    assert filtered["removed"]["rule"] in {r["rule"] for r in filtered["rules"] if not r["passed"]}
    assert len(filtered["rules"]) > 20 and history["token_rows"] == 0
    # Every measured rule shows its threshold beside its value, the failing one included.
    failing = next(r for r in filtered["rules"] if r["rule"] == filtered["removed"]["rule"])
    assert failing["threshold"].split()[0] in ("min", "max") and failing["value"] is not None
    text = runner.invoke(app, ["explain", spam["url"], "--workdir", str(first_run)]).output
    assert f"FAIL {failing['rule']} {failing['value']:.4g} ({failing['threshold']})" in text
    # The WARC offset points at the record itself.
    warc = next(first_run.glob(f"artifacts/acquire/*/warc/{extract['kept']['warc_path']}"))
    with open(warc, "rb") as f:
        f.seek(extract["kept"]["warc_offset"])
        record = next(iter(ArchiveIterator(f)))
        assert record.rec_headers.get_header("WARC-Target-URI") == spam["url"]

    _, [(kept_id,)] = Catalog(first_run).query("select doc_id from mix_docs order by doc_id limit 1")
    [history] = json.loads(runner.invoke(app, ["explain", kept_id, "--json", "--workdir", str(first_run)]).output)
    stages = {e["stage"]: e for e in history["stages"]}
    assert all("kept" in stages[s] for s in ("extract", "filter", "dedup", "mix"))
    assert all(r["passed"] for r in stages["filter"]["rules"])
    assert stages["mix"]["kept"]["domain"] and stages["dedup"]["kept"]["dup_cluster"]
    assert history["token_rows"] > 0


def test_explain_names_the_kept_copy_and_the_record_of_an_extract_removal(first_run):
    from warcio.archiveiterator import ArchiveIterator

    truth = [json.loads(line) for line in next(first_run.glob("artifacts/acquire/*/ground_truth.jsonl")).open()]
    _, rows = Catalog(first_run).query("select doc_id from dedup_removed where rule = 'near_duplicate'")
    removed = {r[0] for r in rows}
    near = next(r for r in truth if r["case"] == "near_duplicate" and r["doc_id"] in removed)
    [history] = json.loads(
        runner.invoke(app, ["explain", near["doc_id"], "--json", "--workdir", str(first_run)]).output
    )
    dedup = next(e for e in history["stages"] if e["stage"] == "dedup")
    assert dedup["removed"]["kept_copy_url"] == near["group"]  # the original it copies survived

    non_html = next(r for r in truth if r["case"] == "non_html")
    [history] = json.loads(
        runner.invoke(app, ["explain", non_html["url"], "--json", "--workdir", str(first_run)]).output
    )
    [extract] = history["stages"]
    assert history["url"] == non_html["url"] and extract["removed"]["rule"] == "non_html"
    warc = next(first_run.glob(f"artifacts/acquire/*/warc/{extract['removed']['warc_path']}"))
    with open(warc, "rb") as f:
        f.seek(extract["removed"]["warc_offset"])
        assert next(iter(ArchiveIterator(f))).rec_headers.get_header("WARC-Target-URI") == non_html["url"]


def test_explain_a_page_the_url_rules_removed_before_extraction(first_run):
    truth = [json.loads(line) for line in next(first_run.glob("artifacts/acquire/*/ground_truth.jsonl")).open()]
    blocked = next(r for r in truth if r["case"] == "blocklisted")
    args = ["explain", blocked["url"], "--json", "--workdir", str(first_run)]
    [history] = json.loads(runner.invoke(app, args).output)
    extract, filtered = history["stages"][:2]
    assert history["url"] == blocked["url"] and extract["not_extracted"]["rule"] == "url_blocklist"
    assert filtered["removed"]["rule"] == "url_blocklist" and filtered["removed"]["detail"] in blocked["url"]
    text = runner.invoke(app, ["explain", blocked["url"], "--workdir", str(first_run)]).output
    assert "not extracted: the URL fails filter's url_blocklist" in text and "removed by url_blocklist" in text
