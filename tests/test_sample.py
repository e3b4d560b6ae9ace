import hashlib
import json
from collections import Counter
from pathlib import Path

from tasks.sample.planted import CASES
from tasks.sample.warc import write_sample


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


def test_sample_does_not_depend_on_what_the_process_imported(tmp_path, small_sample, monkeypatch):
    """A library that wraps a stdlib function (its __module__ changes) used to drop that docstring
    from the sample, so the same seed gave other pages under pytest, Prefect or the CLI."""
    import functools
    import inspect

    original = inspect.getframeinfo

    @functools.wraps(original)
    def wrapped(*args, **kwargs):
        return original(*args, **kwargs)

    wrapped.__module__ = "some_library.patches"
    monkeypatch.setattr(inspect, "getframeinfo", wrapped)
    patched = tmp_path / "patched"
    write_sample(patched, n_pages=400, planted=8, seed=3, n_files=2)
    assert _digests(patched) == _digests(small_sample)


def test_sample_ignores_vendored_distributions_a_later_import_puts_on_sys_path(tmp_path, monkeypatch):
    """Importing megatron-core (through torch's setuptools helpers) appends setuptools/_vendor to
    sys.path; its bundled tomli then joined the sample's package descriptions: other pages in CI."""
    import sys

    import setuptools

    from tasks.sample.sources import distribution_readmes

    vendor = str(Path(setuptools.__file__).parent / "_vendor")
    assert any(Path(vendor).glob("tomli-*.dist-info"))  # what the import exposes
    clean = [p for p in sys.path if "_vendor" not in Path(p).parts]
    monkeypatch.setattr(sys, "path", clean)
    before = distribution_readmes()
    monkeypatch.setattr(sys, "path", [*clean, vendor])
    assert distribution_readmes() == before


def test_sample_without_the_truncated_record(tmp_path):
    import gzip

    summary = write_sample(tmp_path, n_pages=40, planted=1, seed=3, n_files=2, truncate_last=False)
    for path in summary["warc_files"]:
        gzip.open(path).read()  # every gzip member complete
    assert "truncated" not in summary["cases"]
