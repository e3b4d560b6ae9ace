import gzip
import time
import zlib

import pyarrow.parquet as pq

from tasks.extract.config import ExtractConfig
from tasks.extract.http_payload import decode_html
from tasks.extract.stage import ExtractShard, extract_text, process_shard
from tests.conftest import html_page, prose, write_warc


def test_decode_html_prefers_declared_charsets():
    text = "Caf\u00e9 na\u00efve r\u00e9sum\u00e9"
    assert decode_html(text.encode("cp1252"), "text/html; charset=windows-1252") == text
    assert decode_html(b'<meta charset="latin-1">' + text.encode("latin-1"), "text/html").endswith(text)
    assert decode_html(text.encode("utf-8"), "text/html") == text
    # Invalid UTF-8 without a declaration falls back instead of raising.
    assert "Caf" in decode_html(b"Caf\xe9 \xff\xfe", "text/html")


def test_extract_shard_counts_every_record(tmp_path):
    body = prose(5)
    warc = write_warc(
        tmp_path / "in.warc.gz",
        [
            ("https://a.example/1", "200 OK", "text/html; charset=utf-8", html_page(body)),
            ("https://a.example/2", "404 Not Found", "text/html", b"<html>gone</html>"),
            ("https://a.example/3", "200 OK", "image/png", b"\x89PNG...."),
            ("https://a.example/4", "200 OK", "text/html", b"<html><body><nav>Home</nav></body></html>"),
            ("https://a.example/5", "200 OK", "text/html; charset=windows-1252", html_page(body, "windows-1252")),
            ("https://a.example/6", "200 OK", "text/html", b"<html><body>" + b"x" * 5000 + b"</body></html>"),
        ],
    )
    out = tmp_path / "out"
    stats = process_shard(str(warc), out, ExtractShard(ExtractConfig(max_html_bytes=4096), "TEST"), 0)
    docs = pq.read_table(out / "docs" / "part-00000.parquet").to_pylist()
    removed = {r["url"]: r["rule"] for r in pq.read_table(out / "removed" / "part-00000.parquet").to_pylist()}
    assert [d["url"] for d in docs] == ["https://a.example/1", "https://a.example/5"]
    assert docs[0]["lang"] == "en" and docs[0]["crawl"] == "TEST"
    assert "Title" in docs[0]["text"] and "Home" not in docs[0]["text"]  # boilerplate stripped
    assert removed == {
        "https://a.example/2": "non_200",
        "https://a.example/3": "non_html",
        "https://a.example/4": "too_short",
        "https://a.example/6": "too_large",
    }
    assert stats["docs_in"] == 6 == stats["docs_out"] + stats["docs_removed"]


def test_truncated_and_garbage_records_are_counted_not_fatal(tmp_path):
    pages = [(f"https://b.example/{i}", "200 OK", "text/html", html_page(prose(4, offset=i * 4))) for i in range(3)]
    warc = write_warc(tmp_path / "t.warc.gz", pages)
    data = warc.read_bytes()
    warc.write_bytes(data[: len(data) - 300])  # cut inside the last record
    out = tmp_path / "out"
    stats = process_shard(str(warc), out, ExtractShard(ExtractConfig(), ""), 0)
    assert stats["docs_out"] == 2
    assert stats["removed.truncated_record"] == 1
    assert stats["docs_in"] == 3

    # A whole record, then bytes that are no WARC at all: the record is kept, the rest counted.
    one = write_warc(tmp_path / "one.warc.gz", pages[:1]).read_bytes()
    garbage = tmp_path / "garbage.warc.gz"
    garbage.write_bytes(one + b"\x00garbage" * 100)
    for reader in ("warcio", "fastwarc"):
        cfg = ExtractConfig(reader=reader)
        stats = process_shard(str(garbage), tmp_path / f"out-{reader}", ExtractShard(cfg, ""), 0)
        assert (stats["docs_in"], stats["docs_out"], stats["records_corrupt"]) == (2, 1, 1), reader


def _read_shard(out):
    docs = pq.read_table(out / "docs" / "part-00000.parquet").to_pylist()
    removed = pq.read_table(out / "removed" / "part-00000.parquet").to_pylist()
    return docs, removed


def test_content_encodings_are_decoded_and_bombs_are_capped(tmp_path):
    import brotli

    html = html_page(prose(4))
    deflate = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    raw_deflate = deflate.compress(html) + deflate.flush()
    bomb = gzip.compress(b"<p>" + b"a" * 20_000_000)  # 20 MB from about 20 kB
    pages = [
        ("https://e.example/gzip", "200 OK", "text/html", gzip.compress(html), [("Content-Encoding", "gzip")]),
        ("https://e.example/zlib", "200 OK", "text/html", zlib.compress(html), [("Content-Encoding", "deflate")]),
        ("https://e.example/raw", "200 OK", "text/html", raw_deflate, [("Content-Encoding", "deflate")]),
        ("https://e.example/br", "200 OK", "text/html", brotli.compress(html), [("Content-Encoding", "br")]),
        ("https://e.example/bomb", "200 OK", "text/html", bomb, [("Content-Encoding", "gzip")]),
        ("https://e.example/bad", "200 OK", "text/html", b"\x1f\x8bnot gzip at all", [("Content-Encoding", "gzip")]),
        ("https://e.example/zstd", "200 OK", "text/html", b"....", [("Content-Encoding", "zstd")]),
    ]
    warc = write_warc(tmp_path / "enc.warc.gz", pages)
    stats = process_shard(str(warc), tmp_path / "out", ExtractShard(ExtractConfig(max_html_bytes=1_000_000), ""), 0)
    docs, removed = _read_shard(tmp_path / "out")
    assert sorted(d["url"].rsplit("/", 1)[1] for d in docs) == ["br", "gzip", "raw", "zlib"]
    assert len({d["text"] for d in docs}) == 1
    rules = {r["url"].rsplit("/", 1)[1]: r["rule"] for r in removed}
    assert rules == {"bomb": "too_large", "bad": "decode_error", "zstd": "decode_error"}
    assert stats["removed.decode_error"] == 2


def test_undeclared_legacy_charset_is_detected():
    russian = (
        "Москва является столицей России и крупнейшим городом страны. В городе много музеев, театров "
        "и парков, а также старинных улиц и площадей, которые привлекают туристов со всего мира."
    )
    assert decode_html(russian.encode("cp1251"), "text/html") == russian


def test_wet_records_skip_html_extraction(tmp_path):
    text = prose(3)
    warc = write_warc(
        tmp_path / "in.warc.wet.gz", [], wet=[("https://w.example/a", text), ("https://w.example/b", "tiny")]
    )
    process_shard(str(warc), tmp_path / "out", ExtractShard(ExtractConfig(), "CC-MAIN-2024-10"), 0)
    docs, removed = _read_shard(tmp_path / "out")
    assert [d["url"] for d in docs] == ["https://w.example/a"]
    assert docs[0]["text"] == text and docs[0]["lang"] == "en"
    assert [(r["url"], r["rule"]) for r in removed] == [("https://w.example/b", "too_short")]


def test_a_page_over_the_time_cap_is_recorded_not_waited_for(tmp_path, monkeypatch):
    import trafilatura

    def slow_extract(*args, **kwargs):
        time.sleep(5)

    monkeypatch.setattr(trafilatura, "extract", slow_extract)
    warc = write_warc(tmp_path / "in.warc.gz", [("https://s.example/", "200 OK", "text/html", html_page(prose(2)))])
    started = time.monotonic()
    process_shard(str(warc), tmp_path / "out", ExtractShard(ExtractConfig(timeout_s=0.2), ""), 0)
    assert time.monotonic() - started < 3
    _, removed = _read_shard(tmp_path / "out")
    assert [r["rule"] for r in removed] == ["extract_timeout"]


def test_warcio_and_fastwarc_yield_the_same_documents(tmp_path, small_sample):
    warcs = sorted(small_sample.glob("*.warc.gz"))
    extra = write_warc(
        tmp_path / "extra.warc.gz",
        [
            (
                "https://x.example/z",
                "200 OK",
                "text/html",
                gzip.compress(html_page(prose(3))),
                [("Content-Encoding", "gzip")],
            ),
            ("https://x.example/big", "200 OK", "text/html", b"<p>" + b"b" * 9000),
        ],
        wet=[("https://x.example/wet", prose(2, offset=5))],
    )
    cut = tmp_path / "cut.warc.gz"
    cut.write_bytes(extra.read_bytes()[:-200])
    for i, warc in enumerate([*warcs, extra, cut]):
        tables = []
        for reader in ("warcio", "fastwarc"):
            out = tmp_path / f"{reader}-{i}"
            process_shard(str(warc), out, ExtractShard(ExtractConfig(reader=reader, max_html_bytes=8192), "C"), 0)
            tables.append(_read_shard(out))
        assert tables[0] == tables[1], warc.name
        assert tables[0][0], warc.name  # every file yields documents


def test_extraction_quality_penalizes_leaked_boilerplate_and_lost_text(tmp_path):
    import pyarrow as pa

    from tasks.sample.ground_truth import extraction_quality

    truth = [{"doc_id": "a", "main_text": "one two three four"}, {"doc_id": "b", "main_text": "five six"}]
    shard = str(tmp_path / "docs.parquet")
    rows = [{"doc_id": "a", "text": "Home one two three four Login"}, {"doc_id": "b", "text": "five"}]
    pq.write_table(pa.Table.from_pylist(rows), shard)
    quality = extraction_quality(truth, [shard])
    assert quality == {"extract_pages_scored": 2, "extract_word_precision": 5 / 7, "extract_word_recall": 5 / 6}


def test_bodies_stored_decoded_under_their_content_encoding_are_read_as_identity(tmp_path):
    """Archived crawls keep `Content-Encoding: gzip` (br, deflate) over a body already decoded."""
    import brotli

    html = html_page(prose(4, offset=8))
    latin = html_page(prose(4, offset=12), "windows-1252")
    pages = [
        (f"https://m.example/{label}-{i}", "200 OK", "text/html", body, [("Content-Encoding", label)])
        for label in ("gzip", "deflate", "br")
        for i, body in enumerate([html, latin])
    ]
    corrupt = [
        ("https://m.example/gzip-corrupt", gzip.compress(html)[:40] + bytes(range(256)) * 4, "gzip"),
        ("https://m.example/deflate-corrupt", bytes(range(256)) * 8, "deflate"),
        ("https://m.example/br-corrupt", brotli.compress(html)[:-30] + bytes(range(200)), "br"),
    ]
    pages += [(url, "200 OK", "text/html", body, [("Content-Encoding", enc)]) for url, body, enc in corrupt]
    pages.append(
        ("https://m.example/real-gzip", "200 OK", "text/html", gzip.compress(html), [("Content-Encoding", "gzip")])
    )
    warc = write_warc(tmp_path / "mislabeled.warc.gz", pages)
    stats = process_shard(str(warc), tmp_path / "out", ExtractShard(ExtractConfig(), ""), 0)
    docs, removed = _read_shard(tmp_path / "out")
    kept = sorted(d["url"].rsplit("/", 1)[1] for d in docs)
    assert kept == ["br-0", "br-1", "deflate-0", "deflate-1", "gzip-0", "gzip-1", "real-gzip"]
    assert stats["encoding_mislabeled"] == 6  # the real gzip body is not counted
    assert {r["url"].rsplit("/", 1)[1]: r["rule"] for r in removed} == {
        "gzip-corrupt": "decode_error", "deflate-corrupt": "decode_error", "br-corrupt": "decode_error"}  # fmt: skip
    assert stats["docs_in"] == stats["docs_out"] + stats["docs_removed"] == 10


def test_every_record_type_is_counted_and_resource_records_holding_html_are_extracted(tmp_path):
    import io

    import pyarrow.parquet as pq
    from warcio.statusandheaders import StatusAndHeaders
    from warcio.warcwriter import WARCWriter

    html = html_page(prose(4, offset=20))
    path = tmp_path / "types.warc.gz"
    with open(path, "wb") as f:
        w = WARCWriter(f, gzip=True)
        w.write_record(w.create_warcinfo_record("types.warc.gz", {"software": "test"}))
        request = StatusAndHeaders("GET / HTTP/1.1", [("Host", "r.example")], is_http_request=True)
        w.write_record(w.create_warc_record("https://r.example/", "request", http_headers=request))
        headers = StatusAndHeaders("200 OK", [("Content-Type", "text/html")], protocol="HTTP/1.1")
        w.write_record(w.create_warc_record("https://r.example/", "response", payload=io.BytesIO(html),
                                            http_headers=headers))  # fmt: skip
        w.write_record(w.create_revisit_record("https://r.example/", "sha1:AAAA", "https://r.example/",
                                               "2026-10-01T00:00:00Z"))  # fmt: skip
        w.write_record(w.create_warc_record("https://r.example/", "metadata", payload=io.BytesIO(b"fetchTimeMs: 5"),
                                            warc_content_type="application/warc-fields"))  # fmt: skip
        page = html_page(prose(4, offset=40))
        w.write_record(w.create_warc_record("https://r.example/stored.html", "resource", payload=io.BytesIO(page),
                                            warc_content_type="text/html"))  # fmt: skip
        png = io.BytesIO(b"\x89PNG" + bytes(50))
        w.write_record(w.create_warc_record("https://r.example/logo.png", "resource", payload=png,
                                            warc_content_type="image/png"))  # fmt: skip
    for reader in ("warcio", "fastwarc"):
        out = tmp_path / reader
        stats = process_shard(str(path), out, ExtractShard(ExtractConfig(reader=reader), ""), 0)
        docs, removed = _read_shard(out)
        assert sorted(d["url"] for d in docs) == ["https://r.example/", "https://r.example/stored.html"], reader
        assert [r["rule"] for r in removed] == ["non_html"]
        [verdict] = pq.read_table(out / "files").to_pylist()
        counts = {k.removeprefix("records_"): v for k, v in verdict.items() if k.startswith("records_")}
        assert counts == {"warcinfo": 1, "request": 1, "response": 1, "revisit": 1, "metadata": 1, "resource": 2,
                          "conversion": 0, "continuation": 0}, reader  # fmt: skip
        assert verdict["format"] == "warc.gz" and verdict["records"] == 7 and verdict["first_error"] == ""
        assert verdict["bytes_read"] == verdict["bytes"] == path.stat().st_size and verdict["documents"] == 2
        assert stats["docs_in"] == 3 and stats["records.revisit"] == 1  # revisits counted, not errors


def _url_rule_warc(tmp_path):
    body = prose(5)
    return write_warc(
        tmp_path / "in.warc.gz",
        [
            ("https://a.example/1", "200 OK", "text/html", html_page(body)),
            ("https://www.casino-bonus.example/win", "200 OK", "text/html", html_page(body)),
            ("https://b.example/free-porn/clip", "200 OK", "text/html", html_page(prose(5, offset=3))),
            ("https://free-pills.example/gone", "404 Not Found", "text/html", b"<html>gone</html>"),
            ("https://free-pills.example/short", "200 OK", "text/html", b"<html><body>tiny</body></html>"),
        ],
    )


def _filter_removals(tmp_path, extract_out):
    from tasks.filter.config import FilterConfig
    from tasks.filter.stage import run as run_filter
    from tasks.stage import StageInput

    parts = [p for p in sorted(extract_out.glob("*/part-*.parquet")) if p.parent.name in ("docs", "deferred")]
    files = [{"path": str(p.relative_to(extract_out)), "kind": p.parent.name} for p in parts]
    extract = StageInput("extract", "fp", extract_out, {"files": files, "counts": {}})
    out = tmp_path / "filter"
    outcome = run_filter({"extract": extract}, FilterConfig(quality={"enabled": False}), out)
    removed = pq.read_table(out / "removed").to_pylist()
    return outcome, {r["url"]: (r["stage"], r["rule"], r["detail"]) for r in removed}


def test_url_rules_run_before_trafilatura_and_filter_records_their_removals(tmp_path, monkeypatch):
    """Pages the filter's URL rules remove are never decoded or extracted; filter still records them,
    under its own rule names and details, exactly as when extract did extract them."""
    import tasks.extract.stage as stage
    from tasks.config import load_config

    warc = _url_rule_warc(tmp_path)
    extracted = []
    real = stage.extract_text
    monkeypatch.setattr(stage, "extract_text", lambda html, url, cfg: extracted.append(url) or real(html, url, cfg))
    cfg = load_config(None, []).stage("extract")
    assert cfg.url_rules is not None  # derived from filter's URL settings
    results = {}
    for skip in (True, False):
        extracted.clear()
        out = tmp_path / f"extract-{skip}"
        run_cfg = cfg if skip else cfg.model_copy(update={"url_rules": None})
        stats = process_shard(str(warc), out, ExtractShard(run_cfg, "TEST"), 0)
        results[skip] = (list(extracted), stats, *_filter_removals(tmp_path / f"f-{skip}", out))
    (calls, stats, outcome, removed), (all_calls, _, _, removed_all) = results[True], results[False]
    assert calls == ["https://a.example/1"] and len(all_calls) == 4  # the 404 is never extracted either way
    assert stats["deferred.url_blocklist"] == 2 and stats["deferred.url_banned_word"] == 1
    assert stats["docs_in"] == 5 == stats["docs_out"] + stats["docs_removed"] and stats["docs_out"] == 4
    assert removed["https://www.casino-bonus.example/win"] == ("filter", "url_blocklist", "casino-bonus.example")
    assert removed["https://b.example/free-porn/clip"] == ("filter", "url_banned_word", "porn")
    # Same rule and detail as the filter gives extracted pages; a page extract would have dropped as too
    # short is now filter's URL removal (it is never extracted, so it cannot be measured).
    for url in ("https://www.casino-bonus.example/win", "https://b.example/free-porn/clip"):
        assert removed[url] == removed_all[url]
    assert removed["https://free-pills.example/short"][1] == "url_blocklist"
    assert outcome.docs_in == 4 and outcome.docs_out == 1
    extract_removed = pq.read_table(tmp_path / "extract-True" / "removed").to_pylist()
    assert {r["url"]: r["rule"] for r in extract_removed} == {"https://free-pills.example/gone": "non_200"}


def test_resiliparse_is_an_extractor_choice_with_its_own_fingerprint(tmp_path, small_sample):
    """extract.extractor=resiliparse (DCLM's main-content mode) keeps the sample's main text as well as
    trafilatura does, boilerplate out; the choice is part of extract's fingerprint (its own output)."""
    from tasks.config import load_config
    from tasks.plan import plan
    from tasks.sample.ground_truth import extraction_quality, load_ground_truth

    truth = load_ground_truth(small_sample / "ground_truth.jsonl")
    for i, warc in enumerate(sorted(small_sample.glob("*.warc.gz"))):
        process_shard(str(warc), tmp_path / "r", ExtractShard(ExtractConfig(extractor="resiliparse"), "C"), i)
    quality = extraction_quality(truth, sorted(map(str, (tmp_path / "r").glob("docs/*.parquet"))))
    assert quality["extract_pages_scored"] > 300
    assert quality["extract_word_precision"] > 0.95 and quality["extract_word_recall"] > 0.95, quality
    page = ("<html><body><nav><a href='/'>Home</a> | <a href='/login'>Login</a></nav><article><h1>Baking bread</h1>"
            f"<p>{prose(2)}</p><p>{prose(2, offset=3)}</p></article><footer>Copyright 2024 Example Ltd. All rights "
            "reserved.</footer></body></html>")  # fmt: skip
    text = extract_text(page, "https://x.example/bread", ExtractConfig(extractor="resiliparse"))
    assert prose(2, offset=3)[:60] in text and "Login" not in text and "Copyright" not in text
    extractors = ("trafilatura", "resiliparse")
    planned = [plan(load_config(None, [f"extract.extractor={e}"]), tmp_path / "work") for e in extractors]
    dirs = [next(p.output_dir for p in stages if p.stage == "extract") for stages in planned]
    assert dirs[0] != dirs[1]
