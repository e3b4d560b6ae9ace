"""Disk full and read-only workdirs: a clear error, nothing half-written registered, the rerun resumes.

The first test injects ENOSPC into the filter stage's Parquet writes (always runs). The others put
the workdir on a real tmpfs that is too small, or remounted read-only; they need mount rights (root
with CAP_SYS_ADMIN, as in CI here) and are skipped where those are missing.
"""

from __future__ import annotations

import errno
import hashlib
import subprocess
import uuid
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from flows.cli import app
from storage.catalog import Catalog

pytestmark = pytest.mark.slow
SMALL = [
    "acquire.sample_pages=300",
    "acquire.planted_per_case=4",
    "tokenize.vocab_size=600",
    "filter.workers=1",
    "dedup.quality_check_docs=0",
]


def crawl2model(work: Path, *args: str):
    sets = [a for s in SMALL for a in ("--set", s)]
    return CliRunner().invoke(app, ["run", "--workdir", str(work), *sets, *args])


def assert_catalog_is_consistent(work: Path) -> None:
    """Every registered artifact exists whole; every stage directory without a manifest registered nothing."""
    catalog = Catalog(work)
    _, rows = catalog.query("select stage, fingerprint, path, sha256 from artifacts")
    for stage, fingerprint, path, sha in rows:
        file = work / "artifacts" / stage / fingerprint / path
        assert hashlib.sha256(file.read_bytes()).hexdigest() == sha, file
    registered = {(r[0], r[1]) for r in rows}
    for out in (work / "artifacts").glob("*/*"):
        if not (out / "manifest.json").exists():
            assert (out.parent.name, out.name) not in registered, out


def test_disk_full_during_a_stage_is_a_clear_error_and_the_rerun_resumes(tmp_path, monkeypatch):
    real_write, real_stream_write = pq.write_table, pq.ParquetWriter.write_table

    def full_disk_in_filter(table, where, *args, **kwargs):
        if "/filter/" in str(where):
            raise OSError(errno.ENOSPC, "No space left on device", str(where))
        return real_write(table, where, *args, **kwargs)

    def full_disk_in_filter_stream(writer, table, *args, **kwargs):  # shards streamed a row group at a time
        if "/filter/" in str(writer.where):
            raise OSError(errno.ENOSPC, "No space left on device", str(writer.where))
        return real_stream_write(writer, table, *args, **kwargs)

    work = tmp_path / "work"
    monkeypatch.setattr(pq, "write_table", full_disk_in_filter)
    monkeypatch.setattr(pq.ParquetWriter, "write_table", full_disk_in_filter_stream)
    result = crawl2model(work, "--until", "dedup")
    assert result.exit_code == 1, result.output
    assert "cannot write to the workdir" in result.output and "No space left on device" in result.output
    _, rows = Catalog(work).query("select distinct stage from artifacts order by stage")
    assert [r[0] for r in rows] == ["acquire", "extract", "yardstick"]  # finished stages kept and registered
    assert_catalog_is_consistent(work)

    monkeypatch.setattr(pq, "write_table", real_write)
    monkeypatch.setattr(pq.ParquetWriter, "write_table", real_stream_write)
    result = crawl2model(work, "--until", "dedup")
    assert result.exit_code == 0, result.output
    _, rows = Catalog(work).query(
        "select stage, cache_hit from stage_runs where run_id = "
        "(select run_id from runs order by started_at desc limit 1) order by stage"
    )
    assert dict(rows) == {"acquire": True, "extract": True, "yardstick": True, "filter": False, "dedup": False}
    assert_catalog_is_consistent(work)


@pytest.fixture
def tmpfs(tmp_path):
    where = tmp_path / f"tmpfs-{uuid.uuid4().hex[:6]}"
    where.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", str(where)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    yield where
    subprocess.run(["umount", "-l", str(where)], check=False)


def _remount(where: Path, options: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{options}", str(where)], check=True)


def test_a_real_full_disk_is_survived(tmpfs):
    work = tmpfs / "work"
    result = crawl2model(work, "--until", "dedup")
    assert result.exit_code == 1, result.output
    assert "cannot write to the workdir" in result.output, result.output
    assert_catalog_is_consistent(work)
    _remount(tmpfs, "size=256m")
    result = crawl2model(work, "--until", "dedup")
    assert result.exit_code == 0, result.output
    assert_catalog_is_consistent(work)


def test_a_read_only_workdir_is_a_clear_error(tmpfs):
    _remount(tmpfs, "size=256m")
    work = tmpfs / "work"
    assert crawl2model(work, "--until", "extract").exit_code == 0
    _remount(tmpfs, "ro")
    result = crawl2model(work, "--until", "filter")
    assert result.exit_code == 1, result.output
    assert "cannot write to the workdir" in result.output and "Read-only file system" in result.output
    _remount(tmpfs, "rw")
    assert_catalog_is_consistent(work)
    assert crawl2model(work, "--until", "filter").exit_code == 0


def test_a_fasttext_model_cut_short_by_a_full_disk_is_an_error_not_an_artifact(tmpfs):
    import fasttext

    from tasks.fasttext_training import save_model, train_with_backoff, zeroed_allocations

    train = tmpfs.parent / "train.txt"
    train.write_text("".join(f"__label__{i % 2} word{i} other{i % 7} text\n" for i in range(200)))
    zeroed_allocations()
    model, _ = train_with_backoff(train, 0.5, bucket=1 << 17, dim=32, minCount=1, wordNgrams=2)
    with pytest.raises(OSError, match="No space left on device"):
        save_model(model, tmpfs / "model.bin")  # 16 MB into a 6 MB filesystem
    assert sorted(p.name for p in tmpfs.iterdir()) == []
    _remount(tmpfs, "size=256m")
    save_model(model, tmpfs / "model.bin")
    assert fasttext.load_model(str(tmpfs / "model.bin")).predict("word3 other3")[0]
