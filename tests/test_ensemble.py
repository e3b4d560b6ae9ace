"""Several classifiers and quality buckets (Nemotron-CC): every score kept, the bucket the best of
the per-classifier percentile buckets, and mix weighting by bucket inside each domain."""

from __future__ import annotations

import json
import random

import pyarrow.parquet as pq
import pytest

from tasks.filter.ensemble import PreparedClassifier
from tasks.filter.quality import bucket_edges
from tasks.mix.buckets import document_rate, domain_norms
from tasks.mix.config import MixConfig
from tests.conftest import TINY_RUN_SETS, invoke
from tests.test_quality_sources import published_model


def test_percentile_buckets_split_the_sample_into_equal_shares():
    rng = random.Random(0)
    scores = sorted((rng.random() for _ in range(5000)), reverse=True)
    edges = bucket_edges(scores, 20)
    assert len(edges) == 19 and edges == sorted(edges)
    classifier = PreparedClassifier(None, "", 0.0, tuple(edges))  # type: ignore[arg-type]
    counts = [0] * 20
    for s in scores:
        counts[classifier.bucket(s)] += 1
    assert all(abs(c - 250) <= 2 for c in counts), counts
    assert classifier.bucket(-1.0) == 0 and classifier.bucket(2.0) == 19


def test_bucket_weights_move_copies_to_the_top_and_keep_each_domains_tokens():
    docs = [{"domain": d, "n_chars": 100 + i, "quality_bucket": i % 20} for d in ("a", "b") for i in range(200)]
    cfg = MixConfig(bucket_weights={"0-4": 0, "15-19": 2})
    norms = domain_norms(docs, cfg)
    rates = [document_rate(doc, 1.0, norms, cfg) for doc in docs]
    assert all(r == 0 for r, doc in zip(rates, docs, strict=True) if doc["quality_bucket"] < 5)
    top = [r for r, doc in zip(rates, docs, strict=True) if doc["quality_bucket"] >= 15]
    middle = [r for r, doc in zip(rates, docs, strict=True) if 5 <= doc["quality_bucket"] < 15]
    assert top[0] == pytest.approx(2 * middle[0])
    for domain in ("a", "b"):
        kept = sum(r * d["n_chars"] for r, d in zip(rates, docs, strict=True) if d["domain"] == domain)
        assert kept == pytest.approx(sum(d["n_chars"] for d in docs if d["domain"] == domain))
    with pytest.raises(ValueError, match="bucket_weights key"):
        MixConfig(bucket_weights={"top": 2})


@pytest.mark.slow
def test_two_classifiers_give_every_score_a_best_bucket_and_mix_drops_the_bottom(tmp_path):
    model = published_model(tmp_path, ("__label__hq", "__label__cc"))
    second = json.dumps([{"name": "dclm_like", "model_path": str(model), "min_score": 0.0}])
    work = tmp_path / "work"
    invoke("run", "--workdir", str(work), *TINY_RUN_SETS, "--set", f"filter.more_classifiers={second}",
           "--set", 'mix.bucket_weights={"0-4": 0, "15-19": 2}')  # fmt: skip
    out = next(work.glob("artifacts/filter/*/manifest.json")).parent
    facts = {name: json.loads((out / f).read_text()) for name, f in
             (("quality", "quality_model.json"), ("dclm_like", "quality_model-dclm_like.json"))}  # fmt: skip
    edges = {name: f["quality_bucket_edges"] for name, f in facts.items()}
    kept = [r for f in sorted((out / "docs").glob("*.parquet")) for r in pq.read_table(f).to_pylist()]
    assert kept and all({k for k, _ in r["quality_scores"]} == {"quality", "dclm_like"} for r in kept)
    for row in kept:
        scores = dict(row["quality_scores"])
        buckets = [PreparedClassifier(None, "", 0.0, tuple(edges[n])).bucket(s) for n, s in scores.items()]  # type: ignore[arg-type]
        assert row["quality_bucket"] == max(buckets) and scores["quality"] == row["quality_score"]
    assert len({r["quality_bucket"] for r in kept}) > 5
    mix = next(work.glob("artifacts/mix/*/manifest.json")).parent
    mixed = {r["doc_id"]: r for f in (mix / "docs").glob("*.parquet") for r in pq.read_table(f).to_pylist()}
    assert mixed and all(r["quality_bucket"] >= 5 for r in mixed.values())
    dropped = [r for f in (mix / "removed").glob("*.parquet") for r in pq.read_table(f).to_pylist()
               if r["rule"] == "quality_bucket"]  # fmt: skip
    dedup = next(work.glob("artifacts/dedup/*/manifest.json")).parent
    mix_input = [r for f in (dedup / "docs").glob("*.parquet") for r in pq.read_table(f).to_pylist()]
    assert {r["doc_id"] for r in dropped} == {r["doc_id"] for r in mix_input if r["quality_bucket"] < 5} != set()
    # explain shows every classifier's score beside its threshold.
    doc_id = next(iter(mixed))
    [history] = json.loads(invoke("explain", doc_id, "--json", "--workdir", str(work)))
    rules = {r["rule"] for s in history["stages"] for r in s.get("rules", [])}
    assert {"quality_classifier", "quality_classifier.dclm_like"} <= rules


@pytest.mark.slow
def test_an_anneal_mixture_becomes_its_own_split_and_the_last_steps_train_on_it(tmp_path):
    from typer.testing import CliRunner

    from flows.cli import app
    from tasks.experiments import recipe_overrides

    work = tmp_path / "work"
    anneal = [a for item in recipe_overrides("anneal", 0) for a in ("--set", item)]
    invoke("run", "--workdir", str(work), *TINY_RUN_SETS, *anneal)
    tokenize = next(work.glob("artifacts/tokenize/*/manifest.json")).parent
    metrics = {m["name"]: m["value"] for m in json.loads((tokenize / "manifest.json").read_text())["metrics"]}
    assert metrics["anneal_rows"] > 16
    mix = next(work.glob("artifacts/mix/*/manifest.json")).parent
    docs = {r["doc_id"]: r for f in (mix / "docs").glob("*.parquet") for r in pq.read_table(f).to_pylist()}
    anneal_ids = {d for f in (tokenize / "tokens").glob("anneal-*.parquet")
                  for ids in pq.read_table(f, columns=["doc_ids"])[0].to_pylist() for d in ids}  # fmt: skip
    val_ids = {d for f in (tokenize / "tokens").glob("val-*.parquet")
               for ids in pq.read_table(f, columns=["doc_ids"])[0].to_pylist() for d in ids}  # fmt: skip
    assert anneal_ids and not anneal_ids & val_ids  # held-out documents stay held out
    assert all(docs[d]["quality_bucket"] >= 10 and docs[d]["anneal_repeats"] == 1 for d in anneal_ids)
    # Asking for annealing without an anneal mixture is one error line before any stage runs.
    result = CliRunner().invoke(app, ["run", "--workdir", str(work), *TINY_RUN_SETS,
                                      "--set", "train.anneal.fraction=0.2"])  # fmt: skip
    assert result.exit_code == 2 and "set mix.anneal" in result.output, result.output


def test_rehydration_up_samples_kept_documents_by_their_duplicate_cluster_size():
    sizes = [1, 2, 3, 50, 500, 5000]
    docs = [{"domain": "web", "n_chars": 1000, "dup_cluster_size": s} for s in sizes for _ in range(20)]
    cfg = MixConfig(rehydrate="default", max_repeats=100)
    norms = domain_norms(docs, cfg)
    rate = {d["dup_cluster_size"]: document_rate(d, 1.0, norms, cfg) for d in docs}
    # 1: 1, 2: 2, 3-4: 3, 5-100: 5, 101-1000: 8, 1001+: 1, normalised to keep the domain's tokens.
    assert [rate[s] / rate[1] for s in sizes] == pytest.approx([1, 2, 3, 5, 8, 1])
    assert sum(document_rate(d, 1.0, norms, cfg) for d in docs) == pytest.approx(len(docs))
    custom = MixConfig(rehydrate={"1": 1, "2+": 4})
    assert document_rate(docs[20], 1.0, domain_norms(docs, custom), custom) > document_rate(
        docs[0], 1.0, domain_norms(docs, custom), custom)  # fmt: skip
    assert MixConfig().rehydrate_weights == {} and not MixConfig().weighs_documents
    with pytest.raises(ValueError, match="rehydrate key"):
        MixConfig(rehydrate={"many": 2})
