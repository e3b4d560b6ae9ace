import pytest

from model.packing import EOS_ID, pack
from tasks.mix.config import MixConfig
from tasks.mix.stage import copies, label_domain, mixture_warnings, sampling_rates


def test_domain_rules_match_hosts_and_url_parts():
    cfg = MixConfig()
    assert label_domain("https://docs.pylib.example/x", "docs.pylib.example", cfg) == "docs"
    assert label_domain("https://a.pyindex.example/p", "a.pyindex.example", cfg) == "code"
    assert label_domain("https://forum.site.example/t/1", "forum.site.example", cfg) == "forum"
    assert label_domain("https://elsewhere.example/", "elsewhere.example", cfg) == "web"


def test_rates_hit_the_target_mixture():
    tokens = {"a": 800.0, "b": 200.0}
    rates = sampling_rates(tokens, MixConfig(mode="weights", weights={"a": 0.5, "b": 0.5}))
    after = {d: tokens[d] * rates[d] for d in tokens}
    assert after["a"] == pytest.approx(after["b"])
    assert sum(after.values()) == pytest.approx(1000.0)
    natural = sampling_rates(tokens, MixConfig(mode="natural"))
    assert natural == {"a": 1.0, "b": 1.0}
    # T > 1 flattens the distribution: the small domain is upsampled.
    flat = sampling_rates(tokens, MixConfig(mode="temperature", temperature=4.0))
    assert flat["b"] > 1.0 > flat["a"]
    capped = sampling_rates({"a": 990.0, "b": 10.0}, MixConfig(mode="weights", weights={"a": 1, "b": 1}, max_repeats=3))
    assert capped["b"] == 3.0


def test_copies_are_deterministic_and_unbiased():
    ids = [f"doc{i}" for i in range(4000)]
    first = [copies(1.3, 7, d) for d in ids]
    assert first == [copies(1.3, 7, d) for d in ids]
    assert set(first) == {1, 2}
    assert sum(first) / len(ids) == pytest.approx(1.3, abs=0.03)


def test_pack_makes_fixed_rows_with_eos_and_doc_trace():
    docs = [("a", [5] * 5), ("b", [6] * 3), ("c", [7] * 9)]
    rows = pack(docs, seq_len=4)
    flat = [t for r in rows for t in r["tokens"]]
    assert all(len(r["tokens"]) == 5 for r in rows)
    assert flat == ([5] * 5 + [EOS_ID] + [6] * 3 + [EOS_ID] + [7] * 9 + [EOS_ID])[: len(flat)]
    assert rows[0]["doc_ids"] == ["a"] and rows[1]["doc_ids"] == ["a", "b"]
    assert rows[1]["first_doc_offset"] == 5


def _readme_paragraphs() -> list[str]:
    import importlib.metadata

    paras = []
    for dist in sorted(importlib.metadata.distributions(), key=lambda d: d.metadata["Name"] or ""):
        text = dist.metadata.get_payload() or ""
        paras += [p for p in text.split("\n\n") if len(p.split()) > 25 and "::" not in p]
    return paras


def test_topic_model_relabels_unmatched_documents(tmp_path):
    import json

    import pyarrow.parquet as pq

    from tasks.documents import DEDUP_COLUMNS, write_docs
    from tasks.mix.stage import run
    from tasks.stage import StageInput
    from tests.conftest import prose

    reference = prose(160).split("\n\n")
    readmes = _readme_paragraphs()
    assert len(reference) >= 120 and len(readmes) >= 120
    examples = tmp_path / "examples.jsonl"
    examples.write_text("".join(json.dumps({"text": t, "domain": d}) + "\n"
                                for d, texts in (("docs", reference[:100]), ("code", readmes[:100]))
                                for t in texts))  # fmt: skip
    held_out = [("docs", t) for t in reference[100:120]] + [("code", t) for t in readmes[100:120]]
    docs = [{"doc_id": f"{i:03d}", "url": f"https://unknown-{i}.example/", "host": f"unknown-{i}.example",
             "crawl": "c", "warc_path": "w", "fetch_time": "t", "lang": "en", "lang_score": 1.0, "text": text,
             "n_chars": len(text), "n_words": len(text.split()), "quality_score": 0.5, "dup_cluster": f"{i:03d}",
             "dup_cluster_size": 1} for i, (_, text) in enumerate(held_out)]  # fmt: skip
    write_docs(docs, tmp_path / "dedup" / "docs" / "part-00000.parquet", DEDUP_COLUMNS)
    dedup = StageInput(
        "dedup", "fp", tmp_path / "dedup", {"files": [{"path": "docs/part-00000.parquet", "kind": "docs"}]}
    )
    cfg = MixConfig(mode="natural", topic_examples=str(examples), topic_min_confidence=0.5)
    outcome = run({"dedup": dedup}, cfg, tmp_path / "out")
    labels = {r["doc_id"]: r["domain"] for r in pq.read_table(tmp_path / "out" / "docs").to_pylist()}
    correct = sum(labels[f"{i:03d}"] == truth for i, (truth, _) in enumerate(held_out))
    assert correct / len(held_out) >= 0.8, correct
    assert outcome.info["topic_examples"] == {"docs": 100, "code": 100}
    assert (tmp_path / "out" / "topic_model.bin").exists()


def test_topic_examples_need_text_and_domain(tmp_path):
    from tasks.mix.topics import train_topic_model

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "some words here", "domain": "docs"}\n{"text": "no label"}\n')
    with pytest.raises(ValueError, match="bad lines: \\[1\\]"):
        train_topic_model(str(bad), tmp_path / "m.bin")


def test_the_sample_domain_rules_on_another_crawl_are_a_warning():
    """The sample's rules on a real crawl: every weighted domain empty, everything in `web`."""
    warnings = mixture_warnings({"web": 970, "news": 30}, MixConfig())
    assert any("gives a share to code, docs, forum, but no document" in w for w in warnings), warnings
    assert any("97% of documents fell to the default domain 'web'" in w for w in warnings)
    assert mixture_warnings({"docs": 400, "code": 100, "forum": 100, "news": 100, "web": 300}, MixConfig()) == []
    assert mixture_warnings({"web": 1000}, MixConfig(mode="natural")) == []
