"""The LLM judge (filter.quality.annotate) against a local fake OpenAI-compatible server: the
classifier trained on its scores recovers its rule; kills, faults, a missing key and an unreachable
endpoint behave as documented; the key is never written anywhere."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tasks.filter.annotate import AnnotateError, AnswerCache, annotate, text_hash
from tasks.filter.annotated import train_on_annotations
from tasks.filter.config import AnnotateConfig, QualityClassifierConfig
from tasks.filter.judge import DEFAULT_TEMPLATE, MalformedAnswer, parse_score
from tests.fake_judge import EDU_WORDS, FILLER, FakeJudge, additive_rubric, rule_score, sample_pages

ROOT = Path(__file__).resolve().parents[1]


def web_documents(n: int, seed: int = 0) -> dict[str, str]:
    """Shop-like filler with 0-1 or 4-6 teaching words: half of them good by the judge's rule."""
    rng = random.Random(seed)
    docs = {}
    for i in range(n):
        words = [rng.choice(FILLER) for _ in range(rng.randint(60, 160))]
        k = rng.choice([0, 1]) if i % 2 else rng.randint(4, 6)
        for w in rng.sample(EDU_WORDS, k):
            for _ in range(rng.randint(1, 3)):
                words.insert(rng.randrange(len(words)), w)
        docs[f"doc-{i:05d}"] = " ".join(words)
    return docs


def judge_cfg(server: FakeJudge, **overrides) -> AnnotateConfig:
    values = {"endpoint": server.url, "model": "fake-judge", "concurrency": 4, "sample": 400, "timeout_s": 5,
              "backoff_s": 0.01, "backoff_max_s": 2.0} | overrides  # fmt: skip
    return AnnotateConfig.model_validate(values)


@pytest.fixture
def judge():
    server = FakeJudge()
    yield server
    server.close()


def test_score_parser_is_strict():
    assert parse_score("Good intro to cells.\nScore: 4") == 4
    assert parse_score("reasoning...\n**Educational score: 2**\n") == 2
    for bad in ["Score: 7", "I think 3", "Score: 3/5 maybe", "Score: 2\nThanks!", "", "Score: -1"]:
        with pytest.raises(MalformedAnswer):
            parse_score(bad)
    assert "{text}" in DEFAULT_TEMPLATE


@pytest.mark.parametrize("learner", ["stumps", "linear"])
def test_classifier_trained_on_the_judge_recovers_its_rule(judge, tmp_path, learner):
    docs = web_documents(600)
    shard = tmp_path / "docs.parquet"
    pq.write_table(pa.table({"doc_id": list(docs), "text": list(docs.values())}), shard)
    cfg = QualityClassifierConfig(annotate=judge_cfg(judge, sample=600, heldout_fraction=0.25, learner=learner))
    info = train_on_annotations([str(shard)], cfg, tmp_path / "model.bin", tmp_path / "cache")
    assert info["annotate_scored"] == 600 and info["quality_judge_heldout"] == 150
    assert info["quality_judge_f1"] >= 0.8 and info["quality_learner"] == learner, info
    # The learning curve: F1 on the same held-out annotations at 1/4, 1/2, 3/4 and all of the rest.
    curve = info["quality_judge_curve"]
    assert [c["annotations"] for c in curve] == [112, 225, 338, 450]
    assert all(c["ci"][0] <= c["f1"] <= c["ci"][1] for c in curve) and curve[-1]["f1"] == info["quality_judge_f1"]
    assert info["quality_judge_f1_lo"] <= info["quality_judge_f1"] <= info["quality_judge_f1_hi"] <= 1.0
    matrix = info["quality_judge_confusion"]
    assert sum(map(sum, matrix)) == 150 and sum(matrix[5]) + sum(matrix[4]) > 0
    # Rerun: every answer from the cache, no request sent.
    before = sum(judge.attempts.values())
    again = train_on_annotations([str(shard)], cfg, tmp_path / "model2.bin", tmp_path / "cache")
    assert sum(judge.attempts.values()) == before and again["annotate_cache_hits"] == 600
    assert again["quality_judge_f1"] == info["quality_judge_f1"]


@pytest.mark.slow
def test_600_annotations_learn_a_hidden_additive_rubric(tmp_path):
    """The issue's bar: a judge whose rule the learner is not shown (FineWeb-Edu-style points for length,
    examples, explanations, errors, code), 600 annotations, F1 >= 0.8 on the pages nobody annotated."""
    from tasks.filter.quality import score_text

    texts = sample_pages()
    annotated, unseen = texts[:600], texts[600:]
    shard = tmp_path / "docs.parquet"
    pq.write_table(pa.table({"doc_id": [f"d{i:04d}" for i in range(600)], "text": annotated}), shard)
    server = FakeJudge(rule=additive_rubric)
    try:
        cfg = QualityClassifierConfig(annotate=judge_cfg(server, sample=600, learning_curve=False))
        info = train_on_annotations([str(shard)], cfg, tmp_path / "model.npz", tmp_path / "cache")
    finally:
        server.close()
    assert info["quality_learner"] == "stumps" and info["quality_judge_heldout"] == 120
    kept = [score_text(str(tmp_path / "model.npz"), t, cfg) >= 0.5 for t in unseen]
    good = [additive_rubric(t) >= 3 for t in unseen]
    tp = sum(k and g for k, g in zip(kept, good, strict=True))
    f1 = 2 * tp / (sum(kept) + sum(good))
    assert len(unseen) > 1500 and f1 >= 0.8 and info["quality_judge_f1"] >= 0.8, (f1, info)


def test_per_score_classes_predict_the_expected_score(judge, tmp_path):
    from tasks.filter.quality import score_text

    docs = web_documents(500, seed=1)
    shard = tmp_path / "docs.parquet"
    pq.write_table(pa.table({"doc_id": list(docs), "text": list(docs.values())}), shard)
    cfg = QualityClassifierConfig(annotate=judge_cfg(judge, sample=500, classes="scores"))
    info = train_on_annotations([str(shard)], cfg, tmp_path / "m.bin", tmp_path / "cache")
    assert info["quality_judge_f1"] >= 0.8
    good = [t for t in docs.values() if rule_score(t) >= 4]
    bad = [t for t in docs.values() if rule_score(t) <= 1]
    mean = lambda xs: sum(xs) / len(xs)  # noqa: E731
    assert mean([score_text(str(tmp_path / "m.bin"), t, cfg) for t in good[:50]]) > 3
    assert mean([score_text(str(tmp_path / "m.bin"), t, cfg) for t in bad[:50]]) < 2


def test_retries_429_500_timeout_and_counts_malformed(tmp_path):
    docs = web_documents(40, seed=2)
    hashes = [text_hash(t) for t in docs.values()]
    plan = {hashes[0]: "429", hashes[1]: "500", hashes[2]: "stall", hashes[3]: "malformed", hashes[4]: "malformed"}

    def faults(h: str, attempt: int) -> str | None:
        if plan.get(h) == "malformed":
            return "malformed"
        return plan.get(h) if attempt == 1 else None

    server = FakeJudge(faults=faults)
    try:
        scores, counts = annotate(docs, judge_cfg(server, timeout_s=0.5), tmp_path / "cache")
    finally:
        server.close()
    assert counts["annotate_malformed"] == 2 and counts["annotate_failed"] == 0
    assert len(scores) == 38 and all(scores[d] == rule_score(t) for d, t in docs.items() if d in scores)
    assert server.attempts[hashes[0]] == 2 and server.attempts[hashes[1]] == 2 and server.attempts[hashes[2]] == 2
    retry_gap = server.times[hashes[0]][1] - server.times[hashes[0]][0]
    assert retry_gap >= 0.95  # the server's Retry-After: 1 was honoured, not the 0.01 s backoff
    assert counts["annotate_retries"] == 3
    # Malformed answers are cached: a rerun asks nothing again.
    server2 = FakeJudge()
    try:
        _, again = annotate(docs, judge_cfg(server2), tmp_path / "cache")
    finally:
        server2.close()
    assert sum(server2.attempts.values()) == 0 and again["annotate_malformed"] == 2


def test_a_judge_that_never_answers_is_counted_not_cached(tmp_path):
    docs = web_documents(6, seed=3)
    server = FakeJudge(faults=lambda h, n: "500")
    try:
        scores, counts = annotate(docs, judge_cfg(server, retries=2), tmp_path / "cache")
    finally:
        server.close()
    assert scores == {} and counts["annotate_failed"] == 6 and counts["annotate_calls"] == 18
    assert AnswerCache(tmp_path / "cache", DEFAULT_TEMPLATE, "fake-judge").answers == {}


KILLED_RUN = """
import json, sys
from pathlib import Path
from tasks.filter.annotate import annotate
from tasks.filter.config import AnnotateConfig
docs = json.loads(Path(sys.argv[1]).read_text())
annotate(docs, AnnotateConfig.model_validate(json.loads(sys.argv[2])), Path(sys.argv[3]))
"""


def test_sigkill_during_annotation_then_rerun_sends_no_answered_document_again(tmp_path):
    docs = web_documents(200, seed=4)
    (tmp_path / "docs.json").write_text(json.dumps(docs))
    server = FakeJudge(delay_s=0.03)
    cfg = judge_cfg(server)
    try:
        child = subprocess.Popen([sys.executable, "-c", KILLED_RUN, str(tmp_path / "docs.json"),
                                  cfg.model_dump_json(), str(tmp_path / "cache")], cwd=ROOT)  # fmt: skip
        deadline = time.monotonic() + 60
        while sum(server.answered.values()) < 60 and time.monotonic() < deadline and child.poll() is None:
            time.sleep(0.01)
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        cached = set(AnswerCache(tmp_path / "cache", DEFAULT_TEMPLATE, "fake-judge").answers)
        assert 40 <= len(cached) < 200
        sent_before = dict(server.attempts)
        scores, counts = annotate(docs, cfg, tmp_path / "cache")
    finally:
        server.close()
    sent_again = {h for h, n in server.attempts.items() if n > sent_before.get(h, 0)}
    assert not sent_again & cached  # nothing answered and cached before the kill is sent again
    assert len(scores) == 200 and counts["annotate_cache_hits"] == len(cached)
    # At most the requests in flight at the kill were sent twice.
    assert sum(n > 1 for n in server.attempts.values()) <= cfg.concurrency


def test_missing_key_and_unreachable_endpoint_are_clear_errors_before_any_request(tmp_path, monkeypatch):
    server = FakeJudge(api_key="sk-test-secret")
    try:
        monkeypatch.delenv("JUDGE_KEY_FOR_TEST", raising=False)
        with pytest.raises(AnnotateError, match="JUDGE_KEY_FOR_TEST, which is not set"):
            annotate({"a": "text"}, judge_cfg(server, api_key_env="JUDGE_KEY_FOR_TEST"), tmp_path / "c")
        monkeypatch.setenv("JUDGE_KEY_FOR_TEST", "wrong")
        with pytest.raises(AnnotateError, match="rejected the API key"):
            annotate({"a": "text"}, judge_cfg(server, api_key_env="JUDGE_KEY_FOR_TEST"), tmp_path / "c")
        assert sum(server.attempts.values()) == 0
    finally:
        server.close()
    with pytest.raises(AnnotateError, match="unreachable"):
        annotate({"a": "text"}, judge_cfg(server), tmp_path / "c")  # closed: nothing listens there


JUDGE_KEY = "sk-test-4f1c9e-never-written"


def _code_rule(text: str) -> int:
    """On the sample: pages about Python are good (about a third of them)."""
    return 4 if "Python" in text else 1


@pytest.mark.slow
def test_pipeline_with_a_judge_reports_agreement_and_writes_the_key_nowhere(tmp_path, monkeypatch):
    from tests.conftest import TINY_RUN_SETS, invoke

    server = FakeJudge(api_key=JUDGE_KEY, rule=_code_rule)
    monkeypatch.setenv("CRAWL2MODEL_TEST_JUDGE_KEY", JUDGE_KEY)
    # The suite's own Prefect home (not a new one: Prefect keeps its first settings for the process).
    prefect_home = Path(os.environ.get("PREFECT_HOME", Path.home() / ".prefect"))
    annotate_cfg = json.dumps({"endpoint": server.url, "model": "fake-judge", "sample": 150, "concurrency": 4,
                               "api_key_env": "CRAWL2MODEL_TEST_JUDGE_KEY"})  # fmt: skip
    work = tmp_path / "work"
    try:
        invoke("run", "--workdir", str(work), *TINY_RUN_SETS, "--set", f"filter.quality.annotate={annotate_cfg}")
    finally:
        server.close()
    assert sum(server.answered.values()) == 150
    manifest = json.loads(next(work.glob("artifacts/filter/*/manifest.json")).read_text())
    info = manifest["info"]
    assert info["quality_model"] == "judge" and info["annotate_scored"] == 150 and info["quality_judge_heldout"] == 30
    assert 0.0 <= info["quality_judge_f1"] <= 1.0
    report = next(work.glob("artifacts/evaluate/*/report.md")).read_text()
    assert "quality_judge_f1" in report and "against the LLM judge" in report and "How many annotations" in report
    # explain shows the judge's cached score beside the classifier's for an annotated document.
    cached = {json.loads(line)["doc"] for line in next((work / "cache" / "annotations").glob("*.jsonl")).open()}
    docs = pq.read_table(next(work.glob("artifacts/extract/*/docs/part-00000.parquet")), columns=["doc_id", "text"])
    doc_id = next(d for d, t in zip(*docs.to_pydict().values(), strict=True) if text_hash(t) in cached)
    [history] = json.loads(invoke("explain", doc_id, "--json", "--workdir", str(work)))
    filter_rules = next(s for s in history["stages"] if s["stage"] == "filter")["rules"]
    judged = next(r for r in filter_rules if r["rule"] == "judge_score")
    assert judged["value"] in (1, 4) and any(r["rule"] == "quality_classifier" for r in filter_rules)
    files = [p for root in (work, prefect_home) if root.exists() for p in root.rglob("*") if p.is_file()]
    assert len(files) > 20 and any(p.suffix == ".jsonl" and "annotations" in str(p) for p in files)
    leaked = [p for p in files if JUDGE_KEY.encode() in p.read_bytes()]
    assert not leaked


def test_cli_stops_before_any_work_when_the_judge_key_is_missing(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from flows.cli import app

    monkeypatch.delenv("CRAWL2MODEL_TEST_JUDGE_KEY", raising=False)
    annotate_cfg = json.dumps({"endpoint": "http://127.0.0.1:9/v1", "model": "m",
                               "api_key_env": "CRAWL2MODEL_TEST_JUDGE_KEY"})  # fmt: skip
    work = tmp_path / "work"
    args = ["run", "--workdir", str(work), "--set", f"filter.quality.annotate={annotate_cfg}"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1 and "CRAWL2MODEL_TEST_JUDGE_KEY, which is not set" in result.output
    assert not (work / "artifacts").exists()
    monkeypatch.setenv("CRAWL2MODEL_TEST_JUDGE_KEY", "x")
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1 and "unreachable" in result.output and not (work / "artifacts").exists()


def test_the_judge_is_told_each_pages_language(tmp_path):
    from tests.conftest import native_text

    docs = {"ja-1": native_text("ja", 400), "th-1": native_text("th", 400), "en-1": "An English page. " * 20}
    server = FakeJudge()
    try:
        scores, _ = annotate(docs, judge_cfg(server), tmp_path / "cache", {"ja-1": "ja", "th-1": "th", "en-1": "en"})
    finally:
        server.close()
    assert set(scores) == set(docs)
    prompts = {d: server.prompts[text_hash(text)] for d, text in docs.items()}
    assert "written in Japanese" in prompts["ja-1"] and "written in Thai" in prompts["th-1"]
    assert "written in English" in prompts["en-1"] and "{language}" not in prompts["en-1"]
