"""Real web pages, offline: the pages two extraction libraries' own test suites carry in their PyPI
source releases, with what each project's tests say the page's main text is.

- newspaper4k 0.9.6 (MIT): news pages in a dozen languages and scripts (Arabic, Chinese, Japanese,
  Korean, Thai, Burmese, Latvian, Spanish, English) with the article text its tests expect
  (`tests/data/html/*.html` beside `tests/data/txt/*.txt`): scored by word precision and recall.
- trafilatura 1.1.0 (GPL-3.0-or-later): 111 cached pages (`tests/cache/`), mostly German, English and
  French blogs, shops, news and institutions, with the snippets its real-world tests assert are in or
  not in the main text (`tests/realworld_tests.py`, read with `ast`, never imported): scored by
  snippet precision and recall, as trafilatura's own evaluation does.

Both references come from one of the two extractors' projects, so each set leans towards a style of
extraction (newspaper keeps an article's body only; trafilatura's snippets were written against
trafilatura). Neither file is copied into this repository: each is downloaded from PyPI once, checked
against its pinned SHA-256 and kept in a cache folder. The pages are the raw bytes the projects
saved, in their own encodings.
"""

from __future__ import annotations

import ast
import hashlib
import io
import json
import tarfile
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

CACHE = Path.home() / ".cache" / "crawl2model" / "real-pages"


@dataclass(frozen=True)
class Source:
    name: str
    url: str
    sha256: str
    licence: str


NEWSPAPER = Source(
    "newspaper4k-0.9.6",
    "https://files.pythonhosted.org/packages/b6/20/733d9dd3adfb6295454e6ba81f6407d96bf66bfda36c75c99b1f99accbf0/"
    "newspaper4k-0.9.6.tar.gz",
    "a3f2f0e017dddb6f1019ee77aaa8980e13e6ecea0b949abc7167aae4770d2d0e",
    "MIT",
)
TRAFILATURA = Source(
    "trafilatura-1.1.0",
    "https://files.pythonhosted.org/packages/c4/b2/b41dcef8c062b102cc7c2381375ff1e44867d238e297eabd1fa8c9464d6c/"
    "trafilatura-1.1.0.tar.gz",
    "650678fe3b3219795ccc72d8d37d2a9dc8c3070529598fddc2809ccd27c55bc4",
    "GPL-3.0-or-later",
)


@dataclass(frozen=True)
class RealPage:
    """One saved page and its reference: a main text, or snippets that must and must not be in it."""

    source: str
    name: str
    url: str
    html: bytes
    reference_text: str | None = None
    with_snippets: tuple[str, ...] = field(default=())
    without_snippets: tuple[str, ...] = field(default=())


class SourceError(Exception):
    """A source that cannot be downloaded or is not the pinned file."""


def fetch(source: Source, cache: Path = CACHE, timeout: float = 60.0) -> Path:
    """The source's tarball in the cache, downloaded once and checked against its pinned digest."""
    path = cache / Path(source.url).name
    if not path.is_file():
        cache.mkdir(parents=True, exist_ok=True)
        try:
            with urllib.request.urlopen(source.url, timeout=timeout) as response:
                data = response.read()
        except OSError as e:
            raise SourceError(f"cannot download {source.url}: {e}") from e
        digest = hashlib.sha256(data).hexdigest()
        if digest != source.sha256:
            raise SourceError(f"{source.url} has SHA-256 {digest}, expected {source.sha256}")
        partial = path.with_suffix(".partial")
        partial.write_bytes(data)
        partial.replace(path)  # visible only when complete
    return path


def _members(tarball: Path) -> dict[str, bytes]:
    """{path inside the release, without its top folder: bytes} for the files under tests/."""
    out = {}
    with tarfile.open(tarball) as tar:
        for member in tar.getmembers():
            inner = member.name.split("/", 1)[-1]
            if member.isfile() and inner.startswith("tests/"):
                out[inner] = tar.extractfile(member).read()
    return out


def newspaper_pages(tarball: Path) -> list[RealPage]:
    """Every saved page with an expected article text; its URL from its metadata file where there is one."""
    files = _members(tarball)
    pages = []
    for path in sorted(files):
        if not (path.startswith("tests/data/html/") and path.endswith(".html")):
            continue
        name = Path(path).stem
        text = files.get(f"tests/data/txt/{name}.txt")
        if text is None:
            continue
        meta = files.get(f"tests/data/metadata/{name}.json")
        url = json.loads(meta).get("url") if meta else None
        pages.append(RealPage(NEWSPAPER.name, name, url or f"https://newspaper4k.invalid/{name}.html", files[path],
                              reference_text=text.decode("utf-8")))  # fmt: skip
    return pages


def trafilatura_pages(tarball: Path) -> list[RealPage]:
    """Every cached page its real-world tests assert something about (plain-text output)."""
    files = _members(tarball)
    tree = ast.parse(files["tests/realworld_tests.py"])
    mock_pages = next(
        ast.literal_eval(node.value)
        for node in tree.body
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "MOCK_PAGES"
    )
    snippets = _asserted_snippets(tree)
    pages = []
    for url, (kept, dropped) in snippets.items():
        html = files.get(f"tests/cache/{mock_pages.get(url, '')}")
        if html is None or not (kept or dropped):
            continue
        pages.append(RealPage(TRAFILATURA.name, mock_pages[url], url, html, with_snippets=tuple(kept),
                              without_snippets=tuple(dropped)))  # fmt: skip
    return pages


def _asserted_snippets(tree: ast.Module) -> dict[str, tuple[list[str], list[str]]]:
    """{url: (snippets asserted in the result, snippets asserted not in it)}, following each
    `result = load_mock_page(url, ...)` to the asserts after it; asserts under `if xmloutput ...` are
    taken only where they hold for plain text."""
    out: dict[str, tuple[list[str], list[str]]] = {}
    for function in (n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "test_extract"):
        _walk(function.body, None, out)
    return out


def _walk(body: list[ast.stmt], url: str | None, out: dict) -> str | None:
    """Record the asserts of `body` under the page loaded last; returns the page loaded last after it."""
    for stmt in body:
        if isinstance(stmt, ast.Assign) and isinstance(stmt.value, ast.Call):
            call = stmt.value
            if getattr(call.func, "id", "") == "load_mock_page" and isinstance(call.args[0], ast.Constant):
                url = call.args[0].value
                out.setdefault(url, ([], []))
        elif isinstance(stmt, ast.If) and (plain := _plain_text_branch(stmt.test)) is not None:
            url = _walk(stmt.body if plain else stmt.orelse, url, out)
        elif isinstance(stmt, ast.Assert) and url is not None:
            kept, dropped = out[url]
            for compare in _compares(stmt.test):
                (kept if isinstance(compare.ops[0], ast.In) else dropped).append(compare.left.value)
    return url


def _plain_text_branch(test: ast.expr) -> bool | None:
    """For `if xmloutput is False/True`: whether its body holds for plain text; None for other tests."""
    if (isinstance(test, ast.Compare) and getattr(test.left, "id", "") == "xmloutput"
            and isinstance(test.comparators[0], ast.Constant)):  # fmt: skip
        value = test.comparators[0].value
        return (value is False) == isinstance(test.ops[0], ast.Is | ast.Eq)
    return None


def _compares(test: ast.expr) -> list[ast.Compare]:
    """The `'snippet' in result` / `not in result` comparisons of an assert joined by `and`."""
    parts = test.values if isinstance(test, ast.BoolOp) and isinstance(test.op, ast.And) else [test]
    return [
        p
        for p in parts
        if isinstance(p, ast.Compare)
        and isinstance(p.ops[0], ast.In | ast.NotIn)
        and isinstance(p.left, ast.Constant)
        and isinstance(p.left.value, str)
        and getattr(p.comparators[0], "id", "") == "result"
    ]


def real_pages(cache: Path = CACHE, sources: tuple[Source, Source] = (NEWSPAPER, TRAFILATURA)) -> list[RealPage]:
    """The pages of both sources (downloaded into `cache` the first time)."""
    newspaper, trafilatura = sources
    return newspaper_pages(fetch(newspaper, cache)) + trafilatura_pages(fetch(trafilatura, cache))


def real_pages_or_exit(cache: Path = CACHE) -> list[RealPage]:
    """real_pages for a command: a source that cannot be had is one `error:` line, not a traceback."""
    try:
        return real_pages(cache)
    except SourceError as e:
        raise SystemExit(f"error: {e}") from None


def write_warc(pages: list[RealPage], path: Path, copies: int = 1) -> int:
    """A gzipped WARC of the pages as HTTP 200 responses (bytes as saved; no charset is claimed, so the
    extract stage decodes them as it would a crawl's), each page `copies` times under distinct URLs."""
    from warcio.statusandheaders import StatusAndHeaders
    from warcio.warcwriter import WARCWriter

    n = 0
    with open(path, "wb") as f:
        writer = WARCWriter(f, gzip=True)
        for copy in range(copies):
            for page in pages:
                fields = [("Content-Type", "text/html"), ("Content-Length", str(len(page.html)))]
                headers = StatusAndHeaders("200 OK", fields, protocol="HTTP/1.1")
                url = page.url if copy == 0 else f"{page.url}{'&' if '?' in page.url else '?'}copy={copy}"
                writer.write_record(writer.create_warc_record(url, "response", payload=io.BytesIO(page.html),
                                                              http_headers=headers))  # fmt: skip
                n += 1
    return n
