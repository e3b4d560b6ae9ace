import os
import shutil

import pytest

from tasks.acquire.config import AcquireConfig
from tasks.acquire.stage import input_identity, resolve_paths, run


def test_local_paths_and_globs_are_linked_and_fingerprinted(tmp_path, small_sample):
    data = tmp_path / "data"
    data.mkdir()
    for warc in sorted(small_sample.glob("*.warc.gz")):
        shutil.copy(warc, data / warc.name)
    cfg = AcquireConfig(paths=[str(data / "*.warc.gz")])
    assert cfg.source == "paths"
    outcome = run({}, cfg, tmp_path / "out")
    linked = sorted((tmp_path / "out" / "warc").iterdir())
    assert [p.name for p in linked] == sorted(p.name for p in data.iterdir())
    assert all(a.read_bytes() == b.read_bytes() for a, b in zip(linked, sorted(data.iterdir()), strict=True))
    assert outcome.info["source"] == "paths"
    before = input_identity(cfg)
    first = sorted(data.iterdir())[0]
    first.write_bytes(first.read_bytes() + b"\n")
    os.utime(first, ns=(1, 1))
    assert input_identity(cfg) != before  # a changed input file is not a cache hit


def test_a_pattern_matching_nothing_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="matches no file"):
        resolve_paths([str(tmp_path / "*.warc.gz")])
