"""Hostile input: hundreds of mutated WARC files and pathological HTML through the extract stage.

Guarantees checked on every input, for both WARC readers: no exception escapes, every record is
either a document or a `removed` row with a known rule (in = kept + removed), each file finishes
in bounded time, and the process's peak memory stays under MEMORY_CAP_MB.
"""

from __future__ import annotations

import gzip
import io
import random
import resource
import time

import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from tasks.extract.config import ExtractConfig
from tasks.extract.stage import ExtractShard, process_shard
from tests.conftest import prose, write_warc

RULES = {
    "non_200", "non_html", "too_large", "decode_error", "extract_timeout", "extract_error", "extract_empty",
    "too_short", "lang", "lang_score", "truncated_record", "corrupt_record",
}  # fmt: skip
MEMORY_CAP_MB = 3000  # peak RSS of the whole test process, torch and friends included
SECONDS_PER_FILE = 20


def _records(gzip_members: bool) -> bytes:
    page = f"<html><head><title>t</title></head><body><p>{prose(3)}</p></body></html>".encode()
    buf = io.BytesIO()
    writer = WARCWriter(buf, gzip=gzip_members)
    for url, status, ctype, body, extra in [
        ("https://f.example/a", "200 OK", "text/html; charset=utf-8", page, []),
        ("https://f.example/b", "200 OK", "text/html", gzip.compress(page), [("Content-Encoding", "gzip")]),
        ("https://f.example/c", "404 Not Found", "text/html", b"<p>gone</p>", []),
        ("https://f.example/d", "200 OK", "image/png", b"\x89PNG\r\n" + bytes(range(256)), []),
    ]:
        fields = [("Content-Type", ctype), ("Content-Length", str(len(body))), *extra]
        http = StatusAndHeaders(status, fields, protocol="HTTP/1.1")
        writer.write_record(writer.create_warc_record(url, "response", payload=io.BytesIO(body), http_headers=http))
    return buf.getvalue()


GZIPPED, PLAIN = _records(True), _records(False)


def _check(path, tmp_path, tag: str) -> None:
    for reader in ("warcio", "fastwarc"):
        out = tmp_path / f"{tag}-{reader}"
        started = time.monotonic()
        stats = process_shard(str(path), out, ExtractShard(ExtractConfig(reader=reader, timeout_s=5.0), "F"), 0)
        assert time.monotonic() - started < SECONDS_PER_FILE
        removed = pq.read_table(out / "removed" / "part-00000.parquet").to_pylist()
        docs = pq.read_table(out / "docs" / "part-00000.parquet").to_pylist()
        assert stats["docs_in"] == len(docs) + len(removed) == stats["docs_out"] + stats["docs_removed"]
        assert {r["rule"] for r in removed} <= RULES
        assert all(d["text"] for d in docs)


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


mutation = st.one_of(
    st.tuples(st.just("flip"), st.lists(st.tuples(st.floats(0, 1), st.integers(0, 7)), min_size=1, max_size=8)),
    st.tuples(st.just("truncate"), st.floats(0, 1)),
    st.tuples(st.just("garbage"), st.floats(0, 1), st.binary(min_size=1, max_size=300)),
    st.tuples(st.just("length"), st.integers(0, 3), st.integers(-200, 1_000_000)),
    st.tuples(st.just("cut_member"), st.integers(0, 3), st.floats(0, 1)),
)


def mutate(kind: tuple) -> bytes:
    """Apply one mutation: bit flips, truncation, garbage, a wrong Content-Length, a cut gzip member."""
    if kind[0] == "flip":
        data = bytearray(GZIPPED)
        for where, bit in kind[1]:
            data[int(where * (len(data) - 1))] ^= 1 << bit
        return bytes(data)
    if kind[0] == "truncate":
        return GZIPPED[: int(kind[1] * len(GZIPPED))]
    if kind[0] == "garbage":
        at = int(kind[1] * len(PLAIN))
        return PLAIN[:at] + kind[2] + PLAIN[at + len(kind[2]) :]
    if kind[0] == "length":
        # The n-th WARC Content-Length (uncompressed file) replaced by a wrong value.
        parts = PLAIN.split(b"Content-Length: ")
        n = 1 + 2 * kind[1]  # WARC header, then HTTP header, per record
        if n < len(parts):
            value_end = parts[n].index(b"\r\n")
            parts[n] = str(max(0, int(parts[n][:value_end]) + kind[2])).encode() + parts[n][value_end:]
        return b"Content-Length: ".join(parts)
    members = [gzip.compress(m) for m in _split_records(PLAIN)]
    i = kind[1] % len(members)
    members[i] = members[i][: int(kind[2] * len(members[i]))]
    return b"".join(members)


def _split_records(plain: bytes) -> list[bytes]:
    chunks = plain.split(b"WARC/1.")
    return [b"WARC/1." + c for c in chunks if c]


@pytest.mark.slow
@settings(max_examples=220, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])  # fmt: skip
@given(kind=mutation)
def test_mutated_warc_files_are_counted_never_fatal(kind, tmp_path):
    path = tmp_path / "m.warc.gz"
    path.write_bytes(mutate(kind))
    _check(path, tmp_path, f"{kind[0]}-{random.random()}")
    assert _peak_rss_mb() < MEMORY_CAP_MB


def test_mutations_produce_every_kind_of_damage(tmp_path):
    """The fuzzer is not vacuous: each mutation kind yields a file the extractor must count as damaged."""
    examples = {
        "flip": ("flip", [(0.5, 3)]),
        "truncate": ("truncate", 0.6),
        "garbage": ("garbage", 0.0, b"\x00\xff" * 50),  # over the first WARC header
        "length": ("length", 1, 40),
        "cut_member": ("cut_member", 2, 0.5),
    }
    for name, kind in examples.items():
        path = tmp_path / f"{name}.warc.gz"
        path.write_bytes(mutate(kind))
        out = tmp_path / name
        stats = process_shard(str(path), out, ExtractShard(ExtractConfig(), "F"), 0)
        rules = {r["rule"] for r in pq.read_table(out / "removed" / "part-00000.parquet").to_pylist()}
        assert rules & {"corrupt_record", "truncated_record", "decode_error"} or stats["docs_out"] < 1, name


def test_hostile_html_is_counted_with_a_reason(tmp_path):
    deep = b"<html><body>" + b"<div>" * 200_000 + b"<p>deep</p>" + b"</div>" * 200_000 + b"</body></html>"
    huge = b"<html><body><p>" + b"word " * 10_000_000 + b"</p></body></html>"  # 50 MB
    bomb = gzip.compress(b"<p>" + b"a" * 200_000_000)  # 200 MB from about 200 kB
    invalid = bytes(random.Random(0).randrange(256) for _ in range(20_000))
    warc = write_warc(
        tmp_path / "hostile.warc.gz",
        [
            ("https://h.example/deep", "200 OK", "text/html", deep),
            ("https://h.example/huge", "200 OK", "text/html", huge),
            ("https://h.example/bomb", "200 OK", "text/html", bomb, [("Content-Encoding", "gzip")]),
            ("https://h.example/invalid", "200 OK", "text/html; charset=utf-8", invalid),
            (
                "https://h.example/ok",
                "200 OK",
                "text/html",
                f"<html><body><article><p>{prose(3)}</p></article></body></html>".encode(),
            ),
        ],
    )
    before = _peak_rss_mb()
    _check(warc, tmp_path, "hostile")
    rules = {
        r["url"].rsplit("/", 1)[1]: r["rule"]
        for r in pq.read_table(tmp_path / "hostile-warcio" / "removed" / "part-00000.parquet").to_pylist()
    }
    assert rules["huge"] == "too_large" and rules["bomb"] == "too_large"
    assert rules["deep"] in {"too_short", "extract_empty", "extract_error"}
    assert rules["invalid"] in {"too_short", "extract_empty", "lang", "lang_score"}
    assert "ok" not in rules
    # The 50 MB page and the 200 MB bomb are never held whole: the cap is 5 MB.
    assert _peak_rss_mb() - before < 400
