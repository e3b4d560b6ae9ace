import pytest

from tasks.config import MixConfig
from tasks.mix_stage import copies, label_domain, sampling_rates
from tasks.tokenize_stage import EOS_ID, pack


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
