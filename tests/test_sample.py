import hashlib
import json
from collections import Counter

from tasks.sample import CASES, write_sample


def _digests(path):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(path.iterdir())}


def test_sample_is_deterministic_and_plants_every_case(tmp_path, small_sample):
    again = tmp_path / "again"
    write_sample(again, n_pages=400, planted=8, seed=3, n_files=2)
    assert _digests(again) == _digests(small_sample)
    truth = [json.loads(line) for line in (small_sample / "ground_truth.jsonl").open()]
    cases = Counter(row["case"] for row in truth)
    for case in CASES:
        assert cases[case] == 8, case
    assert cases["truncated"] == 1
    assert len(truth) == 401
    pii = [row for row in truth if row["case"] == "pii"]
    assert all(len(row["pii"]) == 3 for row in pii)


def test_other_seed_gives_other_sample(tmp_path, small_sample):
    other = tmp_path / "other"
    write_sample(other, n_pages=400, planted=8, seed=4, n_files=2)
    assert _digests(other) != _digests(small_sample)
