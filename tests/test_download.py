"""Acquisition against a real HTTP server on 127.0.0.1 that fails on purpose (tests/crawl_server.py)."""

from __future__ import annotations

import gzip
import json
import time
from pathlib import Path

import pytest

from tasks.acquire.commoncrawl import UnsafePath, safe_relative_path, select_files
from tasks.acquire.config import AcquireConfig
from tasks.acquire.stage import run as acquire
from tasks.download import DownloadConfig, DownloadError, Fetcher
from tasks.http import parse_retry_after
from tests.conftest import prose, write_warc
from tests.crawl_server import FakeCrawlHost

CRAWL = "CC-MAIN-2099-01"
SEGMENT = f"crawl-data/{CRAWL}/segments/1700000000000.00/warc"
FAST = {"backoff_s": 0.05, "backoff_max_s": 5.0, "timeout_s": 0.5, "retries": 4}


def _members(tmp_path: Path, n: int = 4) -> list[bytes]:
    """n gzip members, each one WARC response record, as separate byte strings."""
    out = []
    for i in range(n):
        page = f"<html><body><p>{prose(3, offset=i * 3)}</p></body></html>".encode()
        path = write_warc(tmp_path / f"m{i}.warc.gz", [(f"https://m.example/{i}", "200 OK", "text/html", page)])
        out.append(path.read_bytes())
    return out


def _crawl_config(host: FakeCrawlHost, count: int, **download) -> AcquireConfig:
    return AcquireConfig(
        source="commoncrawl", crawl=CRAWL, host=host.url, count=count, download=DownloadConfig(**{**FAST, **download})
    )


def _run_crawl(host: FakeCrawlHost, work: Path, count: int, *settings: str):
    """`crawl2model run --until extract` on the served crawl, through the CLI and Prefect."""
    from typer.testing import CliRunner

    from flows.cli import app

    sets = ["acquire.source=commoncrawl", f"acquire.crawl={CRAWL}", f"acquire.host={host.url}",
            f"acquire.count={count}", *settings]  # fmt: skip
    args = ["run", "--workdir", str(work), "--until", "extract", *[a for s in sets for a in ("--set", s)]]
    return CliRunner().invoke(app, args)


def _serve_index(host: FakeCrawlHost, names: list[str]) -> None:
    listing = "".join(f"{SEGMENT}/{n}\n" for n in names).encode()
    host.add(f"crawl-data/{CRAWL}/warc.paths.gz", gzip.compress(listing))


def test_misbehaving_server_files_arrive_byte_identical(tmp_path):
    m = _members(tmp_path)
    original, rotated = b"".join(m), b"".join(m[1:] + m[:1])  # same length, both valid gzip
    assert len(original) == len(rotated) and original != rotated
    with FakeCrawlHost() as host:
        files = {
            "busy.warc.gz": host.add(f"{SEGMENT}/busy.warc.gz", original, faults=("503", "429")),
            "dropped.warc.gz": host.add(f"{SEGMENT}/dropped.warc.gz", original, faults=("drop", "drop")),
            "slow.warc.gz": host.add(f"{SEGMENT}/slow.warc.gz", original, faults=("stall",)),
            "changed.warc.gz": host.add(f"{SEGMENT}/changed.warc.gz", original, rotated, faults=("drop_change",)),
            # No ETag: only the gzip check can tell that the resumed bytes belong to another file.
            "spliced.warc.gz": host.add(
                f"{SEGMENT}/spliced.warc.gz", original, rotated, faults=("drop_change",), etag=False
            ),
        }
        _serve_index(host, sorted(files))
        out = tmp_path / "acquire"
        started = time.monotonic()
        outcome = acquire({}, _crawl_config(host, count=5), out)
        elapsed = time.monotonic() - started

    for name, served in files.items():
        assert (out / "warc" / name).read_bytes() == served.content, name
    reports = {Path(d["url"]).name: d for d in outcome.info["downloads"]}
    assert reports["busy.warc.gz"]["attempts"] == 3
    assert elapsed >= 2.0  # two Retry-After: 1 answers were honored despite a 0.05 s backoff
    dropped = files["dropped.warc.gz"].requests
    assert [r["Range"] for r in dropped] == [None, f"bytes={len(original) // 2}-", f"bytes={len(original) * 3 // 4}-"]
    assert reports["dropped.warc.gz"]["resumed_from"] == [len(original) // 2, len(original) * 3 // 4]
    assert reports["slow.warc.gz"]["attempts"] == 2
    assert "changed on the server" in reports["changed.warc.gz"]["restarts"][0]
    assert "gzip verification failed" in reports["spliced.warc.gz"]["restarts"][0]
    assert all("crawl2model" in r["User-Agent"] for s in files.values() for r in s.requests)
    assert not list((out / "_state" / "downloads").glob("*.part"))
    assert outcome.info["selected"] == [f"{SEGMENT}/{n}" for n in sorted(files)]


def test_a_failed_file_is_never_registered_and_the_rerun_fetches_only_it(tmp_path):
    m = _members(tmp_path, 2)
    with FakeCrawlHost() as host:
        good = host.add(f"{SEGMENT}/a.warc.gz", b"".join(m))
        bad = host.add(f"{SEGMENT}/b.warc.gz", b"".join(m), faults=("drop", "503", "503"))
        _serve_index(host, ["a.warc.gz", "b.warc.gz"])
        out = tmp_path / "acquire"
        with pytest.raises(DownloadError, match="1 of 2 files failed"):
            acquire({}, _crawl_config(host, count=2, retries=2), out)
        assert sorted(p.name for p in (out / "warc").iterdir()) == ["a.warc.gz"]
        assert (out / "_state" / "downloads" / "b.warc.gz.part").stat().st_size == len(bad.content) // 2

        outcome = acquire({}, _crawl_config(host, count=2, retries=2), out)
    reports = {Path(d["url"]).name: d for d in outcome.info["downloads"]}
    assert reports["a.warc.gz"]["already_present"] and len(good.requests) == 1
    assert reports["b.warc.gz"]["resumed_from"] == [len(bad.content) // 2]
    assert (out / "warc" / "b.warc.gz").read_bytes() == bad.content


def test_allowed_failures_let_the_stage_finish_and_are_recorded(tmp_path):
    m = _members(tmp_path, 1)
    with FakeCrawlHost() as host:
        host.add(f"{SEGMENT}/a.warc.gz", m[0])
        host.add(f"{SEGMENT}/gone.warc.gz", m[0], faults=("404",))
        _serve_index(host, ["a.warc.gz", "gone.warc.gz"])
        outcome = acquire({}, _crawl_config(host, count=2, max_failed_files=1), tmp_path / "acquire")
    assert len(outcome.info["files_failed"]) == 1 and "HTTP 404" in outcome.info["files_failed"][0]
    assert [p.name for p in (tmp_path / "acquire" / "warc").iterdir()] == ["a.warc.gz"]


@pytest.mark.parametrize(
    "path",
    ["../evil.warc.gz", "/etc/passwd", "s3://bucket/x.warc.gz", "a/../../b.warc.gz", "a\\b", "", "a/\x00"],
)
def test_index_paths_cannot_escape_the_data_directory(path):
    with pytest.raises(UnsafePath):
        safe_relative_path(path)


def test_an_index_with_an_escaping_path_is_refused(tmp_path):
    with FakeCrawlHost() as host:
        host.add(f"crawl-data/{CRAWL}/warc.paths.gz", gzip.compress(b"ok/a.warc.gz\n../../../home/x.warc.gz\n"))
        with pytest.raises(UnsafePath, match=r"\.\./\.\./\.\./home"):
            acquire({}, _crawl_config(host, count=1), tmp_path / "acquire")
    assert not (tmp_path / "acquire" / "warc").exists()


def test_file_selection_first_random_and_list():
    index = [f"s/{i:03d}.warc.gz" for i in range(100)]
    base = {"source": "commoncrawl", "crawl": CRAWL}
    assert select_files(index, AcquireConfig(**base, count=3)) == index[:3]
    picked = select_files(index, AcquireConfig(**base, select="random", count=5, seed=7))
    assert picked == select_files(index, AcquireConfig(**base, select="random", count=5, seed=7))
    assert picked != index[:5] and picked == sorted(picked) and len(set(picked)) == 5
    assert select_files(index, AcquireConfig(**base, select="list", files=["s/042.warc.gz"])) == ["s/042.warc.gz"]
    with pytest.raises(ValueError, match="not in"):
        select_files(index, AcquireConfig(**base, select="list", files=["s/999.warc.gz"]))


def test_fsspec_urls_are_fetched_resumed_and_verified(tmp_path):
    data = b"".join(_members(tmp_path, 3))
    src = tmp_path / "remote" / "x.warc.gz"
    src.parent.mkdir()
    src.write_bytes(data)
    partial = tmp_path / "acquire" / "_state" / "downloads"
    # A first attempt that got half the file, as an interrupted run leaves it.
    partial.mkdir(parents=True)
    (partial / "x.warc.gz.part").write_bytes(data[: len(data) // 2])
    info_mtime = src.stat().st_mtime
    (partial / "x.warc.gz.part.json").write_text(
        json.dumps({"url": src.as_uri(), "validators": {"mtime": str(info_mtime)}, "total": len(data)})
    )
    outcome = acquire({}, AcquireConfig(source="urls", urls=[src.as_uri()], download=FAST), tmp_path / "acquire")
    assert (tmp_path / "acquire" / "warc" / "x.warc.gz").read_bytes() == data
    assert outcome.info["downloads"][0]["resumed_from"] == [len(data) // 2]


def test_retry_after_accepts_seconds_and_http_dates():
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after("Thu, 01 Jan 2099 00:00:10 GMT", now=4070908800.0) == 10.0
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None
    fetcher = Fetcher(DownloadConfig(backoff_s=1.0, backoff_max_s=30.0))
    delays = [fetcher.delay(a, None) for a in range(8)]
    assert all(0.5 * min(30, 2**a) <= d <= min(30, 2**a) for a, d in enumerate(delays))
    assert fetcher.delay(0, 20.0) == 20.0 and fetcher.delay(0, 999.0) == 30.0


def test_credentials_in_the_config_are_refused():
    with pytest.raises(ValueError, match="from the environment"):
        DownloadConfig(storage_options={"secret": "x"})


@pytest.mark.slow
def test_a_crawl_runs_through_the_cli_into_the_catalog(tmp_path, small_sample):
    """crawl2model run --until extract on a served crawl: documents come out, no partial file is an artifact."""
    from storage.catalog import Catalog

    warcs = sorted(small_sample.glob("*.warc.gz"))
    with FakeCrawlHost() as host:
        for i, warc in enumerate(warcs):
            host.add(f"{SEGMENT}/{warc.name}", warc.read_bytes(), faults=("drop",) if i == 0 else ())
        host.add(f"crawl-data/{CRAWL}/wet.paths.gz", b"")  # present, but not the one asked for
        _serve_index(host, [w.name for w in warcs])
        result = _run_crawl(host, tmp_path / "work", len(warcs), "acquire.download.backoff_s=0.05")
    assert result.exit_code == 0, result.output + repr(result.exception)
    catalog = Catalog(tmp_path / "work")
    _, rows = catalog.query("select path from artifacts where stage = 'acquire' order by path")
    paths = [Path(r[0]).name for r in rows]
    assert paths == sorted([f"{CRAWL}.warc.paths.gz", *(w.name for w in warcs)])
    _, [(docs, crawl)] = catalog.query("select count(*), any_value(crawl) from documents")
    assert docs > 300 and crawl == CRAWL
    # The sample's last file ends in a cut record on purpose: the same bytes failed twice, so the
    # file is kept as served and flagged, and extract counts the cut record.
    _, metrics = catalog.query(
        "select name, value from metrics where name in ('files_corrupt_at_source', 'download_resumes', "
        "'removed.truncated_record') order by name"
    )
    assert metrics == [("download_resumes", 1.0), ("files_corrupt_at_source", 1.0), ("removed.truncated_record", 1.0)]


@pytest.mark.slow
def test_streaming_extract_starts_before_the_last_file_arrives(tmp_path, small_sample):
    """acquire.stream: shard 0 is extracted while a later file is still stalled on the server; the
    documents are byte-identical to a run that extracts after downloading everything."""
    warcs = sorted(small_sample.glob("*.warc.gz"))
    outputs = {}
    for stream in (True, False):
        # The last file stalls for longer than extracting the first one takes, even on a slow machine.
        with FakeCrawlHost(stall_s=15.0 if stream else 0.0) as host:
            for i, warc in enumerate(warcs):
                host.add(f"{SEGMENT}/{warc.name}", warc.read_bytes(), faults=("stall",) if i == len(warcs) - 1 else ())
            _serve_index(host, [w.name for w in warcs])
            work = tmp_path / f"stream-{stream}"
            settings = (f"acquire.stream={str(stream).lower()}", "acquire.download.timeout_s=60")
            result = _run_crawl(host, work, len(warcs), *settings)
        assert result.exit_code == 0, result.output + repr(result.exception)
        extract_out = next(work.glob("artifacts/extract/*/"))
        acquire_out = next(work.glob("artifacts/acquire/*/"))
        outputs[stream] = {str(p.relative_to(extract_out)): p.read_bytes() for p in extract_out.glob("*/*.parquet")}
        first_shard_done = (extract_out / "_state" / "shard-00000.json").stat().st_mtime
        acquire_done = (acquire_out / "manifest.json").stat().st_mtime
        if stream:
            assert first_shard_done < acquire_done - 2, "extract waited for the whole download"
        else:
            assert first_shard_done > acquire_done
    assert outputs[True] == outputs[False] and len(outputs[True]) == 4 * len(warcs)  # docs, removed, deferred, files


@pytest.mark.slow
def test_streaming_extract_stops_when_acquire_fails(tmp_path, small_sample):
    warc = sorted(small_sample.glob("*.warc.gz"))[0]
    with FakeCrawlHost() as host:
        host.add(f"{SEGMENT}/{warc.name}", warc.read_bytes())
        host.add(f"{SEGMENT}/gone.warc.gz", b"", faults=("404",))
        _serve_index(host, [warc.name, "gone.warc.gz"])
        work = tmp_path / "work"
        started = time.monotonic()
        result = _run_crawl(host, work, 2, "acquire.stream=true")
    assert result.exit_code == 1 and "download failed" in result.output, result.output
    assert time.monotonic() - started < 60
    assert not list(work.glob("artifacts/*/*/manifest.json"))


def test_a_transient_failure_is_retried_by_prefect_and_the_retry_resumes(tmp_path):
    """The downloader gives up on a file (503 twice, download.retries=1): the acquire task fails, Prefect
    retries it after its backoff, and the retry fetches only that file."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    from flows.pipeline import pipeline
    from tasks.config import load_config

    good, flaky = _members(tmp_path, 2)  # two whole one-record WARC files
    with FakeCrawlHost() as host:
        served_good = host.add(f"{SEGMENT}/good.warc.gz", good)
        served_flaky = host.add(f"{SEGMENT}/flaky.warc.gz", flaky, faults=("503", "503"))
        _serve_index(host, ["good.warc.gz", "flaky.warc.gz"])
        cfg = load_config(None, [
            "acquire.source=commoncrawl", f"acquire.crawl={CRAWL}", f"acquire.host={host.url}", "acquire.count=2",
            "acquire.download.retries=1", "acquire.download.backoff_s=0.05", "acquire.download.backoff_max_s=0.2",
            "runner.network_retries=2", "runner.network_retry_delay_s=0.2",
        ])  # fmt: skip
        state = pipeline(config=cfg.model_dump(mode="json"), workdir=str(tmp_path / "work"), until="acquire",
                         return_state=True)  # fmt: skip
    assert state.is_completed(), state.message
    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[state.state_details.flow_run_id]))
        )
    [acquire_run] = [r for r in runs if r.name.startswith("acquire-")]
    assert acquire_run.run_count == 2  # failed once, retried once by Prefect
    assert len(served_good.requests) == 1  # the retry kept the verified file
    assert len(served_flaky.requests) == 3  # 2 x 503 in the first attempt, then whole in the retry
