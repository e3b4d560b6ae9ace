"""Real pages offline (benchmarks/real_pages.py) and their scoring (benchmarks/extract_real_pages.py),
on releases built here in the two projects' layouts and served from 127.0.0.1: nothing is downloaded."""

import hashlib
import io
import json
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from benchmarks.extract_real_pages import (
    SNIPPET_METRICS,
    WORD_METRICS,
    reference_scores,
    scored,
    snippet_scores,
    word_counts,
)
from benchmarks.real_pages import RealPage, Source, SourceError, real_pages, write_warc
from tests.conftest import html_page, native_text, prose
from tests.crawl_server import FakeCrawlHost

ROOT = Path(__file__).resolve().parents[1]
GERMAN = "Grüße aus Köln. Die Straßenbahn fährt über die Brücke, und das Café öffnet früh."
REALWORLD_TESTS = """
MOCK_PAGES = {
'https://a.example/post': 'a.example.html',
'https://b.example/page': 'b.example.html',
'https://c.example/': 'c.example.html',
}

def test_extract(xmloutput):
    result = load_mock_page('https://a.example/post', xmloutput)
    assert 'Grüße aus Köln' in result and 'Impressum' not in result # and 'commented out' in result

    result = load_mock_page('https://b.example/page', xmloutput)
    if xmloutput is False:
        assert 'Plain only' in result
    if xmloutput is True:
        assert 'XML only' in result
    else:
        assert 'Also plain' in result and len(result) > 10

    result = load_mock_page('https://c.example/', xmloutput)
    assert result is not None
"""


def release(top: str, files: dict[str, bytes]) -> bytes:
    """A source release as PyPI serves it: a gzipped tarball under one top folder."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for path, data in files.items():
            info = tarfile.TarInfo(f"{top}/{path}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def german_page() -> bytes:
    """A German page in its legacy encoding, declared only in a meta tag (as many saved pages are)."""
    return html_page(f"{GERMAN}\n\nImpressum und Datenschutz", charset="cp1252")


def releases() -> dict[str, bytes]:
    japanese = native_text("ja", 600)
    newspaper = release("newspaper4k-0.9.6", {
        "tests/data/html/ja_page.html": html_page(japanese),
        "tests/data/txt/ja_page.txt": japanese.encode(),
        "tests/data/html/en_page.html": html_page(prose(2)),
        "tests/data/txt/en_page.txt": prose(2).encode(),
        "tests/data/metadata/en_page.json": json.dumps({"url": "https://news.example/en"}).encode(),
        "tests/data/html/no_text.html": html_page(prose(1)),  # no expected text: not scored, left out
    })  # fmt: skip
    trafilatura = release("trafilatura-1.1.0", {
        "tests/realworld_tests.py": REALWORLD_TESTS.encode(),
        "tests/cache/a.example.html": german_page(),
        "tests/cache/b.example.html": html_page("Plain only. Also plain."),
        "tests/cache/c.example.html": html_page("Nothing asserted about its text."),
    })  # fmt: skip
    return {"newspaper4k-0.9.6.tar.gz": newspaper, "trafilatura-1.1.0.tar.gz": trafilatura}


def sources(base: str, data: dict[str, bytes]) -> tuple[Source, Source]:
    return tuple(
        Source(name.removesuffix(".tar.gz"), base + name, hashlib.sha256(content).hexdigest(), "test")
        for name, content in data.items()
    )  # type: ignore[return-value]


def test_pages_come_with_their_references_and_the_second_load_is_from_the_cache(tmp_path):
    data = releases()
    with FakeCrawlHost() as host:
        for name, content in data.items():
            host.add(name, content)
        pages = real_pages(tmp_path, sources(host.url, data))
        assert [len(host.files[n].requests) for n in data] == [1, 1]
    by_name = {p.name: p for p in pages}
    assert sorted(by_name) == ["a.example.html", "b.example.html", "en_page", "ja_page"]
    assert by_name["en_page"].url == "https://news.example/en"  # from its metadata file
    assert by_name["ja_page"].url.endswith("/ja_page.html") and by_name["ja_page"].reference_text.strip()
    # Snippets: both kinds, the plain-text branches only, commented-out ones and non-snippet asserts ignored.
    assert by_name["a.example.html"].with_snippets == ("Grüße aus Köln",)
    assert by_name["a.example.html"].without_snippets == ("Impressum",)
    assert by_name["b.example.html"].with_snippets == ("Plain only", "Also plain")
    assert by_name["a.example.html"].html == german_page()  # the bytes as saved, legacy encoding and all
    # The server is gone: the cache answers.
    assert [p.name for p in real_pages(tmp_path, sources(host.url, data))] == [p.name for p in pages]


def test_a_release_that_is_not_the_pinned_one_is_refused_and_not_cached(tmp_path):
    data = releases()
    pinned = sources("", data)
    with FakeCrawlHost() as host:
        host.add("newspaper4k-0.9.6.tar.gz", data["newspaper4k-0.9.6.tar.gz"] + b"tampered")
        wrong = Source(pinned[0].name, host.url + "newspaper4k-0.9.6.tar.gz", pinned[0].sha256, "test")
        with pytest.raises(SourceError, match="expected " + pinned[0].sha256):
            real_pages(tmp_path, (wrong, pinned[1]))
        missing = Source(pinned[0].name, host.url + "gone.tar.gz", pinned[0].sha256, "test")
        with pytest.raises(SourceError, match="cannot download"):
            real_pages(tmp_path / "other", (missing, pinned[1]))
    assert list(tmp_path.glob("*.tar.gz")) == []


def test_words_are_counted_by_the_pages_language():
    japanese = native_text("ja", 300)
    # Japanese has no spaces: the registry's segmenter gives many words, not a few space-separated runs.
    assert sum(word_counts(japanese, "ja").values()) > 3 * len(japanese.split())
    leaked = japanese + "\nログイン 会員登録 お問い合わせ 利用規約 プライバシーポリシー"
    scores = reference_scores(leaked, japanese, "ja")
    assert scores["matched"] == scores["expected"] < scores["extracted"]  # boilerplate lowers precision only
    first_half = "。".join(japanese.split("。")[: japanese.count("。") // 2]) + "。"  # whole sentences
    half = reference_scores(first_half, japanese, "ja")
    assert half["matched"] == half["extracted"] < half["expected"]  # a dropped half lowers recall only


def test_snippets_match_across_line_breaks_and_count_leaks():
    page = RealPage("s", "p", "https://p.example/", b"", with_snippets=("Grüße aus Köln", "nicht da"),
                    without_snippets=("Impressum", "Kommentare"))  # fmt: skip
    assert snippet_scores("Grüße aus\n  Köln.\nImpressum", page) == {"tp": 1, "fn": 1, "fp": 1, "without": 2}


def test_a_worse_extractor_on_every_page_is_called_worse_with_an_interval():
    good = [{"matched": 90, "extracted": 100, "expected": 100} for _ in range(20)]
    bad = [{"matched": 60 + i % 3, "extracted": 100, "expected": 100} for i in range(20)]
    result = scored({"trafilatura": good, "resiliparse": bad}, WORD_METRICS)
    assert result["trafilatura"]["f1"]["value"] == pytest.approx(0.9)
    delta = result["resiliparse_minus_trafilatura"]["f1"]
    assert delta["verdict"] == "worse" and delta["ci"][1] < 0
    same = scored({"trafilatura": good, "resiliparse": good}, WORD_METRICS)
    assert same["resiliparse_minus_trafilatura"]["precision"]["verdict"] == "not distinguishable"
    snippets = [{"tp": 1, "fn": 1, "fp": 0, "without": 1}] * 4
    assert scored({"trafilatura": snippets, "resiliparse": snippets}, SNIPPET_METRICS)["resiliparse"]["recall"][
        "value"
    ] == pytest.approx(0.5)


def test_the_warc_of_real_pages_reads_back_through_the_extract_stage(tmp_path):
    from tasks.extract.config import ExtractConfig
    from tasks.extract.stage import record_text
    from tasks.extract.warc_records import iter_records

    pages = [RealPage("s", "de", "https://de.example/a?x=1", german_page()),
             RealPage("s", "en", "https://en.example/b", html_page(prose(2)))]  # fmt: skip
    assert write_warc(pages, tmp_path / "real.warc.gz", copies=3) == 6
    records = list(iter_records(str(tmp_path / "real.warc.gz")))
    urls = [r.url for r in records]
    assert len(set(urls)) == 6 and urls[:2] == [p.url for p in pages] and urls[2] == "https://de.example/a?x=1&copy=1"
    text = record_text(records[0], ExtractConfig(), {}, None, "de.example")
    assert "Grüße aus Köln" in text  # the cp1252 bytes decoded from the page's own meta charset


@pytest.fixture
def cache_with_releases(tmp_path):
    """A cache folder holding the built releases under the pinned file names: the scripts find them there."""
    for name, content in releases().items():
        (tmp_path / "cache").mkdir(exist_ok=True)
        (tmp_path / "cache" / name).write_bytes(content)
    return tmp_path / "cache"


@pytest.mark.slow
def test_extract_real_pages_benchmark_scores_both_extractors(tmp_path, cache_with_releases):
    cmd = [sys.executable, "benchmarks/extract_real_pages.py", "--cache", str(cache_with_releases), "--repeats", "1",
           "--out", str(tmp_path / "out")]  # fmt: skip
    subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True)
    [result] = (tmp_path / "out").glob("*-extract-real-pages.json")
    report = json.loads(result.read_text())
    assert report["pages"] == 4 and report["reference_text"]["pages"] == 2 and report["snippets"]["pages"] == 2
    assert {"ja", "en"} <= set(report["reference_text"]["by_language"])
    for extractor in ("trafilatura", "resiliparse"):
        assert report["speed"][extractor]["pages_per_s"] > 0
        assert report["reference_text"][extractor]["recall"]["value"] > 0.5
    assert "verdict" in report["snippets"]["resiliparse_minus_trafilatura"]["f1"]


@pytest.mark.slow
def test_crawl_cost_runs_on_real_pages(tmp_path, cache_with_releases):
    cmd = [sys.executable, "benchmarks/crawl_cost.py", "--real-pages", "2", "--cache", str(cache_with_releases),
           "--out", str(tmp_path / "out")]  # fmt: skip
    subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True)
    [result] = (tmp_path / "out").glob("*-crawl-cost-real-pages.json")
    report = json.loads(result.read_text())
    assert report["warc"] == "real pages x2" and report["records"] == 8
    # Every language kept: the Japanese article's copies reach filter with the English one's (English
    # only, as the sample config, would pass 2; the short German and snippet pages are too short to keep).
    assert report["stages"]["extract"]["docs_in"] == 8 and report["stages"]["filter"]["docs_in"] == 4
    assert report["removed"]["extract_kept_by_language"].get("ja") == 2
    assert report["removed"]["extract"]["too_short"] == 4  # why the other pages went, counted by rule


def test_crawl_cost_marginal_needs_an_input_it_can_grow(tmp_path):
    cmd = [sys.executable, "benchmarks/crawl_cost.py", "--warc", str(tmp_path / "any.warc.gz"), "--marginal"]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 1 and done.stderr.startswith("error: --marginal needs") and "Traceback" not in done.stderr


def test_a_missing_release_is_one_error_line(tmp_path):
    cmd = [sys.executable, "-c", "from benchmarks.real_pages import *; real_pages_or_exit(__import__('pathlib')"
           f".Path({str(tmp_path)!r}))"]  # fmt: skip
    env = {"PATH": "", "https_proxy": "http://127.0.0.1:9"}
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env)
    assert done.returncode == 1 and done.stderr.startswith("error: cannot download") and "Traceback" not in done.stderr
