"""Bootstrap intervals and paired verdicts on simulated data whose truth is known."""

from __future__ import annotations

import numpy as np

from model.intervals import Units, interval, paired_delta, verdict


def test_accuracy_intervals_cover_the_truth_about_95_percent() -> None:
    rng = np.random.default_rng(1)
    truth, hits, trials = 0.3, 0, 300
    for t in range(trials):
        correct = rng.random(200) < truth
        ci = interval(Units.of(correct), replicates=500, seed=t)["ci"]
        hits += ci[0] <= truth <= ci[1]
    assert 0.91 <= hits / trials <= 0.985, hits / trials


def test_ratio_intervals_cover_the_truth_for_unequal_documents() -> None:
    # Documents of varied length; the per-byte cost is the ratio of expectations.
    rng = np.random.default_rng(2)
    hits, trials = 0, 200
    for t in range(trials):
        nbytes = rng.integers(200, 5000, size=150).astype(float)
        rate = rng.gamma(20.0, 0.1 / 20.0 * 10, size=150)  # mean 1.0 bit per byte, doc to doc spread
        ci = interval(Units.of(rate * nbytes, nbytes), replicates=500, seed=t)["ci"]
        hits += ci[0] <= 1.0 <= ci[1]
    assert 0.90 <= hits / trials <= 0.99, hits / trials


def test_a_a_comparison_is_not_distinguishable() -> None:
    rng = np.random.default_rng(3)
    difficulty = rng.random(400)  # shared by both runs: the same items
    a = (rng.random(400) * 0.3 + difficulty) > 0.6
    b = (rng.random(400) * 0.3 + difficulty) > 0.6
    result = paired_delta(Units.of(a), Units.of(b), lower_is_better=False)
    assert result["verdict"] == "not distinguishable", result
    assert paired_delta(Units.of(a), Units.of(a), lower_is_better=False)["ci"] == [0.0, 0.0]


def test_a_planted_difference_is_found_in_the_right_direction() -> None:
    rng = np.random.default_rng(4)
    nbytes = rng.integers(500, 3000, size=120).astype(float)
    base = rng.gamma(10.0, 0.2, size=120)
    a = Units.of(base * nbytes, nbytes)
    b = Units.of((base - 0.05) * nbytes, nbytes)  # B costs 0.05 fewer bits per byte on every document
    found = paired_delta(a, b, lower_is_better=True)
    assert found["verdict"] == "better" and found["ci"][1] < 0
    assert paired_delta(b, a, lower_is_better=True)["verdict"] == "worse"


def test_seeds_widen_the_interval_and_reruns_print_the_same_numbers() -> None:
    rng = np.random.default_rng(5)
    nbytes = np.full((3, 100), 1000.0)
    same = np.tile(rng.gamma(10.0, 0.1, size=100), (3, 1))
    spread = same + rng.normal(0.0, 0.05, size=(3, 1))  # seed-to-seed offsets
    narrow = interval(Units.of(same * nbytes, nbytes))["ci"]
    wide = interval(Units.of(spread * nbytes, nbytes))["ci"]
    assert wide[1] - wide[0] > narrow[1] - narrow[0]
    assert interval(Units.of(spread * nbytes, nbytes)) == interval(Units.of(spread * nbytes, nbytes))


def test_verdict_reads_direction() -> None:
    assert verdict((-0.2, -0.1), lower_is_better=True) == "better"
    assert verdict((-0.2, -0.1), lower_is_better=False) == "worse"
    assert verdict((-0.1, 0.1), lower_is_better=True) == "not distinguishable"


def test_paired_comparison_of_saved_scores_and_its_warnings(tmp_path):
    """Two evaluation outputs on disk: B better on every document is found; a different item set warns."""
    import json

    import pyarrow as pa
    import pyarrow.parquet as pq

    from tasks.comparison import Scores, compare, warnings

    rng = np.random.default_rng(6)
    nbytes = rng.integers(500, 3000, size=60)

    def write(name: str, offset: float, items: list[str], fingerprint: str = "y1") -> Scores:
        out = tmp_path / name
        out.mkdir()
        docs = [{"doc_id": f"d{i}", "domain": "docs" if i % 2 else "web", "tokens": 1,
                 "nll_bits": float((1.5 - offset) * b), "n_bytes": int(b)} for i, b in enumerate(nbytes)]  # fmt: skip
        pq.write_table(pa.Table.from_pylist(docs), out / "yardstick_scores.parquet")
        rows = [{"task": "cloze", "item_id": i, "acc": float(rng.random() < 0.3), "acc_norm": 0.0} for i in items]
        pq.write_table(pa.Table.from_pylist(rows), out / "item_scores.parquet")
        tasks = {"cloze": {"chance": 0.25, "items_fingerprint": ",".join(items)}}
        (out / "eval.json").write_text(json.dumps({"yardstick": {"fingerprint": fingerprint}, "tasks": tasks}))
        return Scores.load(out)

    a = write("a", 0.0, [f"i{k}" for k in range(100)])
    b = write("b", 0.05, [f"i{k}" for k in range(100)])
    rows = {r["metric"]: r for r in compare([a], [b])}
    assert rows["yardstick_bits_per_byte"]["verdict"] == "better" and rows["yardstick_bits_per_byte"]["units"] == 60
    assert rows["yardstick.web.bits_per_byte"]["units"] == 30
    assert rows["task.cloze.acc"]["chance"] == 0.25
    assert warnings([a], [b]) == []
    c = write("c", 0.0, [f"i{k}" for k in range(50, 150)], fingerprint="y2")
    found = warnings([a], [c])
    assert any("different yardsticks" in w for w in found) and any("different items" in w for w in found)
    assert {r["metric"]: r for r in compare([a], [c])}["task.cloze.acc"]["units"] == 50  # shared items only
    # A domain of a handful of documents gets no verdict, however clear its interval looks.
    d = write("d", 0.0, [f"i{k}" for k in range(5)])
    e = write("e", 0.05, [f"i{k}" for k in range(5)])
    few = {r["metric"]: r for r in compare([d], [e])}
    assert few["task.cloze.acc"]["verdict"] == "too few to tell (5 items)"
    assert few["yardstick_bits_per_byte"]["verdict"] == "better"  # 60 documents


def test_reference_files_become_documents(tmp_path):
    from tasks.evaluate.scoring import reference_docs

    (tmp_path / "ref.txt").write_text("First paragraph.\nStill first.\n\nSecond one.\n\n\n")
    (tmp_path / "ref.jsonl").write_text('{"text": "a"}\n{"text": "b"}\n')
    assert [d["text"] for d in reference_docs(str(tmp_path / "ref.txt"))] == ["First paragraph.\nStill first.",
                                                                               "Second one."]  # fmt: skip
    assert [d["doc_id"] for d in reference_docs(str(tmp_path / "ref.jsonl"))] == ["ref.jsonl:0", "ref.jsonl:1"]
