import pyarrow.parquet as pq

from tasks.config import ExtractConfig
from tasks.extract_stage import decode_html, process_shard
from tests.conftest import prose, write_warc


def _page(text: str, charset: str = "utf-8") -> bytes:
    paras = "".join(f"<p>{p}</p>" for p in text.split("\n\n"))
    html = (
        f'<html><head><meta charset="{charset}"><title>t</title></head><body><nav><a href="/">Home</a></nav>'
        f"<main><article><h1>Title</h1>{paras}</article></main><footer>(c) site</footer></body></html>"
    )
    return html.encode(charset, "replace")


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
            ("https://a.example/1", "200 OK", "text/html; charset=utf-8", _page(body)),
            ("https://a.example/2", "404 Not Found", "text/html", b"<html>gone</html>"),
            ("https://a.example/3", "200 OK", "image/png", b"\x89PNG...."),
            ("https://a.example/4", "200 OK", "text/html", b"<html><body><nav>Home</nav></body></html>"),
            ("https://a.example/5", "200 OK", "text/html; charset=windows-1252", _page(body, "windows-1252")),
            ("https://a.example/6", "200 OK", "text/html", b"<html><body>" + b"x" * 5000 + b"</body></html>"),
        ],
    )
    out = tmp_path / "out"
    stats = process_shard(str(warc), out, (ExtractConfig(max_html_bytes=4096), "TEST"), 0)
    docs = pq.read_table(out / "docs" / "part-00000.parquet").to_pylist()
    removed = {r["url"]: r["rule"] for r in pq.read_table(out / "removed" / "part-00000.parquet").to_pylist()}
    assert [d["url"] for d in docs] == ["https://a.example/1", "https://a.example/5"]
    assert docs[0]["lang"] == "en" and docs[0]["crawl"] == "TEST"
    assert "Title" in docs[0]["text"] and "Home" not in docs[0]["text"]  # boilerplate stripped
    assert removed == {
        "https://a.example/2": "http_status",
        "https://a.example/3": "non_html",
        "https://a.example/4": "too_short",
        "https://a.example/6": "too_large",
    }
    assert stats["docs_in"] == 6 == stats["docs_out"] + stats["docs_removed"]


def test_truncated_and_garbage_records_are_counted_not_fatal(tmp_path):
    pages = [(f"https://b.example/{i}", "200 OK", "text/html", _page(prose(4, offset=i * 4))) for i in range(3)]
    warc = write_warc(tmp_path / "t.warc.gz", pages)
    data = warc.read_bytes()
    warc.write_bytes(data[: len(data) - 300])  # cut inside the last record
    out = tmp_path / "out"
    stats = process_shard(str(warc), out, (ExtractConfig(), ""), 0)
    assert stats["docs_out"] == 2
    assert stats["records_corrupt"] == 1
    assert stats["docs_in"] == 3

    garbage = tmp_path / "garbage.warc.gz"
    garbage.write_bytes(data[:500] + b"\x00garbage" * 100)
    stats = process_shard(str(garbage), tmp_path / "out2", (ExtractConfig(), ""), 0)
    assert stats["records_corrupt"] >= 1
    assert stats["docs_in"] == stats["docs_out"] + stats["docs_removed"]
