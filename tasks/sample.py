"""The embedded sample: a Common-Crawl-like WARC built offline from text every Python install has.

Real prose comes from the Python language reference (pydoc_data.topics), the docstrings of the
standard library, and the README texts in installed distributions' metadata. Non-English pages come
from gettext translation catalogs (.mo) shipped by installed packages, and the CJK texts of the
standard library's test suite when present. Pages get realistic boilerplate and planted cases; a
ground-truth file says which record is which case so tests can score each stage.
"""

from __future__ import annotations

import contextlib
import gettext
import glob
import hashlib
import html
import importlib
import importlib.metadata
import inspect
import io
import json
import os
import random
import re
import subprocess
import sys
import sysconfig
import tempfile
import warnings
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from tasks.documents import doc_id_for

CASES = (
    "exact_duplicate",
    "near_duplicate",
    "spam",
    "boilerplate_only",
    "non_english",
    "pii",
    "blocklisted",
    "non_html",
    "non_200",
)
# The stage meant to remove each planted case (pii pages are kept, with the PII redacted).
EXPECTED_STAGE = {
    "exact_duplicate": "dedup",
    "near_duplicate": "dedup",
    "spam": "filter",
    "boilerplate_only": "extract",
    "non_english": "extract",
    "blocklisted": "filter",
    "non_html": "extract",
    "non_200": "extract",
    "pii": None,
    "original": None,
}
BLOCKED_HOSTS = ("www.casino-bonus.example", "free-pills.example", "m.adult-videos.example")
SKIP_MODULES = {
    "antigravity",
    "this",
    "idlelib",
    "tkinter",
    "turtle",
    "turtledemo",
    "__phello__",
    "msvcrt",
    "winreg",
    "winsound",
    "nt",
    "lib2to3",
    "ensurepip",
    "venv",
    "pydoc",
}
FETCH_START = datetime(2026, 10, 1, tzinfo=UTC)
ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Page:
    title: str
    paragraphs: list[str]
    host: str
    path: str
    case: str = "original"
    group: str = ""
    pii: list[str] = field(default_factory=list)
    charset: str = "utf-8"

    @property
    def url(self) -> str:
        return f"https://{self.host}{self.path}"


# --- text sources ------------------------------------------------------------------------------


def _paragraphs(text: str) -> list[str]:
    paras = [re.sub(r"[ \t]+", " ", p).strip() for p in re.split(r"\n\s*\n", text)]
    return [p for p in paras if len(p) >= 40]


def language_reference() -> list[tuple[str, list[str]]]:
    from pydoc_data.topics import topics

    return [(f"Python reference: {name}", _paragraphs(topics[name])) for name in sorted(topics)]


def stdlib_docstrings() -> list[tuple[str, list[str]]]:
    """The standard library's docstrings, collected in a fresh interpreter.

    Collected here they would depend on what this process imported before: a library that wraps a
    stdlib function (so its `__module__` changes) silently removed that docstring, and the same seed
    gave a different sample under pytest, in a Prefect worker, or in the CLI.
    """
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "docstrings.json"
        code = "import sys; from tasks.sample import write_stdlib_docstrings; write_stdlib_docstrings(sys.argv[1])"
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
        done = subprocess.run([sys.executable, "-c", code, str(out)], cwd=ROOT, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"collecting standard library docstrings failed:\n{done.stderr[-2000:]}")
        return [(name, paras) for name, paras in json.loads(out.read_text())]


def write_stdlib_docstrings(path: str) -> None:
    Path(path).write_text(json.dumps(collect_stdlib_docstrings()))


def collect_stdlib_docstrings() -> list[tuple[str, list[str]]]:
    docs = []
    for name in sorted(sys.stdlib_module_names):
        if name.startswith("_") or name in SKIP_MODULES:
            continue
        try:
            with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
                warnings.simplefilter("ignore")
                module = importlib.import_module(name)
        except Exception:  # noqa: BLE001 - platform-specific modules simply do not contribute
            continue
        members = [module]
        for key, value in sorted(vars(module).items()):
            if key.startswith("_") or getattr(value, "__module__", None) != name:
                continue
            if inspect.isclass(value) or inspect.isfunction(value):
                members.append(value)
                if inspect.isclass(value):
                    members += [
                        m for k, m in sorted(vars(value).items()) if not k.startswith("_") and inspect.isfunction(m)
                    ]
        paras = []
        for obj in members:
            doc = inspect.getdoc(obj) or ""
            paras += _paragraphs(doc)
        if paras:
            docs.append((f"{name} module documentation", paras))
    return docs


def dependency_closure(root: str = "crawl2model") -> list[str]:
    """The distributions `root` needs (transitively, extras left out): on every install of the project.

    Using only these keeps the sample from changing when unrelated packages are installed.
    """
    seen: set[str] = set()
    todo = [root]
    while todo:
        name = todo.pop()
        try:
            requires = importlib.metadata.requires(name) or []
        except importlib.metadata.PackageNotFoundError:
            continue
        for req in requires:
            if "extra ==" in req:
                continue
            dep = re.split(r"[\s;<>=!~\[(]", req, maxsplit=1)[0].lower().replace("_", "-")
            if dep and dep not in seen:
                seen.add(dep)
                todo.append(dep)
    return sorted(seen)


def distribution_readmes() -> list[tuple[str, list[str]]]:
    docs = []
    for name in dependency_closure():
        try:
            dist = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            continue
        text = dist.metadata.get_payload() or dist.metadata.get("Description") or ""
        paras = [p for p in _paragraphs(text) if not p.startswith((".. ", "[![", "|", "<"))]
        if paras:
            docs.append((f"{dist.metadata['Name']}: project description", paras))
    return docs


def translation_texts() -> dict[str, list[str]]:
    """language -> translated messages, from every gettext catalog on sys.path."""
    texts: dict[str, list[str]] = {}
    catalogs = sorted(
        {p for base in sys.path if base for p in glob.glob(f"{base}/**/LC_MESSAGES/*.mo", recursive=True)}
    )
    for path in catalogs:
        lang = Path(path).parts[-3]
        if lang.lower().startswith("en"):
            continue
        try:
            with open(path, "rb") as f:
                catalog = gettext.GNUTranslations(f)
        except Exception:  # noqa: BLE001 - a broken catalog contributes nothing
            continue
        messages = [
            v
            for k, v in sorted(catalog._catalog.items(), key=lambda kv: str(kv[0]))
            if k and isinstance(v, str) and len(v) > 3
        ]
        texts.setdefault(lang, []).extend(m.replace("%d", "3").replace("%s", "") for m in messages)
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    for path in sorted(glob.glob(str(stdlib / "test" / "cjkencodings" / "*-utf8.txt"))):
        texts.setdefault(Path(path).stem.split("-")[0], []).extend(
            _paragraphs(Path(path).read_text(encoding="utf-8", errors="ignore"))
        )
    return {k: v for k, v in texts.items() if len(" ".join(v)) > 300}


# --- page rendering ----------------------------------------------------------------------------


def boilerplate(rng: random.Random, host: str) -> dict[str, str]:
    site = host.split(".")[-2].replace("-", " ").title()
    sections = rng.sample(
        [
            "Home",
            "Docs",
            "Blog",
            "Downloads",
            "Community",
            "About",
            "Pricing",
            "Support",
            "News",
            "Careers",
            "Events",
            "Contact",
        ],
        6,
    )
    nav = "".join(f'<li><a href="/{s.lower()}/">{s}</a></li>' for s in sections)
    related = "".join(
        f'<li><a href="/page/{rng.randrange(10**6)}">{w}</a></li>'
        for w in rng.sample(
            [
                "Getting started",
                "Tutorial",
                "FAQ",
                "Release notes",
                "Changelog",
                "Installation",
                "Reference",
                "Glossary",
                "Examples",
                "Roadmap",
            ],
            5,
        )
    )
    return {
        "header": f'<header><div class="logo">{site}</div><nav><ul>{nav}</ul></nav>'
        f'<form class="search"><input name="q" placeholder="Search {site}"></form></header>',
        "cookie": '<div class="cookie-banner" id="cookies">We use cookies to improve your experience. '
        'By continuing to browse you agree to our <a href="/privacy">cookie policy</a>. '
        "<button>Accept all</button> <button>Reject</button></div>",
        "sidebar": f'<aside class="sidebar"><h3>Related</h3><ul>{related}</ul>'
        '<div class="ad">Sponsored: upgrade to Pro today</div></aside>',
        "footer": f"<footer><p>&copy; {2010 + rng.randrange(16)} {site}. All rights reserved.</p>"
        '<ul><li><a href="/privacy">Privacy</a></li><li><a href="/terms">Terms of use</a></li>'
        '<li><a href="/imprint">Imprint</a></li></ul></footer>',
    }


def _paragraph_html(p: str) -> str:
    text = html.escape(p)
    # Indented or prompt-led blocks are code in docstrings and READMEs.
    if p.startswith((">>>", "$ ", "    ", "pip ", "import ", "from ")):
        return f"<pre><code>{text}</code></pre>"
    return f"<p>{text}</p>"


def render(page: Page, rng: random.Random, with_content: bool = True) -> str:
    bp = boilerplate(rng, page.host)
    body = "".join(_paragraph_html(p) for p in page.paragraphs) if with_content else ""
    article = f"<main><article><h1>{html.escape(page.title)}</h1>{body}</article></main>" if with_content else ""
    lang = "en" if page.case != "non_english" else "und"
    return (
        f'<!DOCTYPE html><html lang="{lang}"><head><meta charset="{page.charset}">'
        f"<title>{html.escape(page.title)}</title>"
        '<link rel="stylesheet" href="/static/site.css"><script>window.dataLayer=[];</script></head>'
        f"<body>{bp['cookie']}{bp['header']}{article}{bp['sidebar']}{bp['footer']}</body></html>"
    )


# --- planting ----------------------------------------------------------------------------------


def chunk_pages(sources: list[tuple[str, list[str]]], min_words: int = 80, max_words: int = 220) -> list[Page]:
    """Split each source into pages of a web-page-like length."""
    pages = []
    for title, paras in sources:
        current: list[str] = []
        words = 0
        part = 1
        for p in paras:
            current.append(p)
            words += len(p.split())
            if words >= min_words and (words >= max_words or len(current) >= 5):
                pages.append(Page(f"{title} (part {part})" if part > 1 else title, current, "", ""))
                current, words, part = [], 0, part + 1
        if words >= min_words // 2 and current:
            pages.append(Page(f"{title} (part {part})" if part > 1 else title, current, "", ""))
    return pages


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:60] or "page"


def assign_host(page: Page, kind: str, rng: random.Random) -> None:
    if kind == "reference":
        page.host = "docs.pylib.example"
    elif kind == "stdlib":
        page.host = rng.choice(["docs.pylib.example", "blog.pythontips.example", "forum.pyhelp.example"])
    else:
        page.host = rng.choice(
            [
                "pyindex.example",
                "github-mirror.example",
                "news.devweekly.example",
                "discuss.opensource.example",
                "www.techjournal.example",
            ]
        )
    page.path = f"/{_slug(page.title)}-{rng.randrange(10**6)}.html"


def _mutate(paragraphs: list[str], rng: random.Random) -> list[str]:
    """A near-duplicate: about one word in eighty replaced, the rest untouched."""
    out = [p.split(" ") for p in paragraphs]
    for _ in range(max(2, sum(len(p) for p in out) // 80)):
        para = rng.randrange(len(out))
        if out[para]:
            out[para][rng.randrange(len(out[para]))] = rng.choice(["updated", "revised", "new", "latest", "edited"])
    return [" ".join(p) for p in out]


def _fake_pii(rng: random.Random, words: list[str]) -> tuple[list[str], list[str]]:
    user = f"{rng.choice(words)}.{rng.choice(words)}{rng.randrange(10, 99)}".lower()
    email = f"{user}@{rng.choice(['mailhost', 'example-corp', 'inbox'])}.example.com"
    phone = f"+1 ({rng.randrange(201, 989)}) 555-{rng.randrange(1000, 9999)}"
    ipv4 = f"{rng.randrange(11, 223)}.{rng.randrange(0, 255)}.{rng.randrange(0, 255)}.{rng.randrange(1, 254)}"
    # Short on purpose: a long template shared by every PII page would be a 13-gram they all share,
    # and decontamination would then remove most of them along with the one the eval items use.
    sentences = [f"Contact: {email}.", f"Phone {phone}.", f"Mirror at {ipv4}."]
    return sentences, [email, phone, ipv4]


def build_pages(n_pages: int, planted: int, seed: int) -> list[Page]:
    rng = random.Random(seed)
    pools = [("reference", language_reference()), ("stdlib", stdlib_docstrings()), ("readme", distribution_readmes())]
    base: list[Page] = []
    for kind, sources in pools:
        for page in chunk_pages(sources):
            assign_host(page, kind, rng)
            base.append(page)
    rng.shuffle(base)
    n_originals = n_pages - planted * len(CASES)
    if n_originals < planted * 2 or len(base) < n_originals + planted * 2:
        raise ValueError(
            f"sample: {len(base)} source pages available; {n_pages} pages with {planted} planted per case "
            "needs more. Lower acquire.sample_pages or acquire.planted_per_case."
        )
    # Planted pages are built from pages that pass the heuristic filters, so that the stage meant
    # for each case (dedup for duplicates, redaction for PII) is the one that must catch it.
    originals = _clean_first(base[:n_originals])
    spare = _clean_first(base[n_originals:])
    vocab = sorted({w for p in originals[:200] for w in re.findall(r"[A-Za-z]{5,12}", " ".join(p.paragraphs))})
    pages = list(originals)
    # A few originals served in a legacy charset, as many real sites still do.
    for page in originals[: max(1, n_originals // 50)]:
        page.charset = "windows-1252"

    for i in range(planted):
        src = originals[i]
        pages.append(
            Page(
                src.title,
                list(src.paragraphs),
                src.host,
                src.path.replace(".html", f"-copy{i}.html"),
                "exact_duplicate",
                src.url,
            )
        )
        src = originals[planted + i]
        mirror = rng.choice(["mirror.pagesync.example", "cache.webarchive-copy.example", "scraper.contentfarm.example"])
        pages.append(Page(src.title, _mutate(src.paragraphs, rng), mirror, src.path, "near_duplicate", src.url))
        keywords = rng.sample(vocab, 6) + ["cheap", "best", "buy", "online"]
        stuffed = [" ".join(rng.choice(keywords) for _ in range(60)) for _ in range(5)]
        pages.append(Page(f"Best {keywords[0]} deals", stuffed, "deals.bestoffers.example", f"/offer-{i}.html", "spam"))
        pages.append(
            Page(
                "Welcome",
                [],
                rng.choice(["www.techjournal.example", "pyindex.example"]),
                f"/landing-{i}.html",
                "boilerplate_only",
            )
        )
        sentences, values = _fake_pii(rng, vocab)
        donor = spare[i]
        paras = list(donor.paragraphs)
        paras.insert(1, sentences[0])
        paras.append(" ".join(sentences[1:]))
        pages.append(Page(donor.title, paras, "people.staffpages.example", f"/profile-{i}.html", "pii", pii=values))
        donor = spare[planted + i]
        pages.append(
            Page(
                donor.title,
                list(donor.paragraphs),
                BLOCKED_HOSTS[i % len(BLOCKED_HOSTS)],
                f"/p/{i}.html",
                "blocklisted",
            )
        )

    translations = translation_texts()
    languages = sorted(translations)
    for i in range(planted):
        lang = languages[i % len(languages)]
        messages = translations[lang]
        start = rng.randrange(max(1, len(messages) - 40))
        chosen = messages[start : start + 40]
        paras = [" ".join(chosen[j : j + 5]) for j in range(0, len(chosen), 5)]
        pages.append(
            Page(
                chosen[0][:60],
                paras,
                f"{lang.lower().replace('_', '-')}.localsite.example",
                f"/{i}.html",
                "non_english",
            )
        )
    return pages


def _clean_first(pages: list[Page]) -> list[Page]:
    from tasks.config import GopherQualityConfig, GopherRepetitionConfig
    from tasks.filters.gopher import GopherQuality, GopherRepetition

    quality, repetition = GopherQuality(GopherQualityConfig()), GopherRepetition(GopherRepetitionConfig())

    def passes(page: Page) -> bool:
        text = "\n\n".join(page.paragraphs)
        return quality.check(text) is None and repetition.check(text) is None

    return sorted(pages, key=lambda p: not passes(p))  # stable: keeps the seeded order otherwise


def _record_id(seed: int, n: int, kind: str) -> str:
    digest = hashlib.sha1(f"{seed}:{n}:{kind}".encode()).hexdigest()
    return f"<urn:uuid:{digest[:8]}-{digest[8:12]}-{digest[12:16]}-{digest[16:20]}-{digest[20:32]}>"


class SampleWriter:
    """Writes request+response record pairs, deterministically, across several WARC files."""

    def __init__(self, out_dir: Path, n_files: int, seed: int):
        self.out_dir, self.seed, self.n = out_dir, seed, 0
        self.paths = [out_dir / f"CC-SAMPLE-{seed:04d}-{i:05d}.warc.gz" for i in range(n_files)]
        self.files = [open(p, "wb") for p in self.paths]  # noqa: SIM115 - closed in close()
        self.writers = [WARCWriter(f, gzip=True) for f in self.files]

    def write(
        self,
        file_index: int,
        url: str,
        status: str,
        content_type: str,
        body: bytes,
        extra_headers: list[tuple[str, str]] | None = None,
    ) -> str:
        self.n += 1
        writer = self.writers[file_index]
        date = (FETCH_START + timedelta(seconds=self.n * 7)).strftime("%Y-%m-%dT%H:%M:%SZ")
        host = url.split("/")[2]
        req_headers = StatusAndHeaders(
            f"GET /{url.split('/', 3)[-1]} HTTP/1.1",
            [
                ("Host", host),
                ("User-Agent", "CCBot/2.0 (https://commoncrawl.org/faq/)"),
                ("Accept", "text/html,application/xhtml+xml"),
                ("Accept-Encoding", "gzip"),
            ],
            is_http_request=True,
        )
        req_id = _record_id(self.seed, self.n, "request")
        writer.write_record(
            writer.create_warc_record(
                url,
                "request",
                http_headers=req_headers,
                warc_headers_dict={"WARC-Record-ID": req_id, "WARC-Date": date},
            )
        )
        headers = [
            ("Content-Type", content_type),
            ("Content-Length", str(len(body))),
            ("Server", "nginx"),
            ("Date", date),
        ] + (extra_headers or [])
        resp_id = _record_id(self.seed, self.n, "response")
        writer.write_record(
            writer.create_warc_record(
                url,
                "response",
                payload=io.BytesIO(body),
                http_headers=StatusAndHeaders(status, headers, protocol="HTTP/1.1"),
                warc_headers_dict={"WARC-Record-ID": resp_id, "WARC-Date": date, "WARC-Concurrent-To": req_id},
            )
        )
        return resp_id

    def close(self) -> None:
        for f in self.files:
            f.close()


def write_sample(
    out_dir: Path, n_pages: int = 2400, planted: int = 24, seed: int = 0, n_files: int = 4, truncate_last: bool = True
) -> dict:
    """Write the sample WARC files and `ground_truth.jsonl`; return a summary.

    `truncate_last=False` leaves out the cut-off record at the end (benchmarks feed the files to
    tools that stop at it)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed + 1)
    pages = build_pages(n_pages, planted, seed)
    non_html = [
        ("application/pdf", b"%PDF-1.4\n" + rng.randbytes(600)),
        ("image/png", b"\x89PNG\r\n\x1a\n" + rng.randbytes(400)),
        ("application/json", json.dumps({"items": list(range(30))}).encode()),
    ]
    non_200 = [
        ("404 Not Found", "Page not found"),
        ("500 Internal Server Error", "Internal error"),
        ("301 Moved Permanently", "Moved"),
    ]
    order = list(range(len(pages) + 2 * planted))
    rng.shuffle(order)
    writer = SampleWriter(out_dir, n_files, seed)
    truth = []
    for slot in order:
        file_index = slot % n_files
        if slot < len(pages):
            page = pages[slot]
            body = render(page, rng, with_content=page.case != "boilerplate_only").encode(page.charset, "replace")
            rid = writer.write(file_index, page.url, "200 OK", f"text/html; charset={page.charset}", body)
            truth.append(
                {
                    "record_id": rid,
                    "doc_id": doc_id_for(rid),
                    "url": page.url,
                    "case": page.case,
                    "group": page.group,
                    "pii": page.pii,
                    "expected_stage": EXPECTED_STAGE[page.case],
                    # What a perfect extractor returns: scores extraction precision and recall.
                    "main_text": "" if page.case == "boilerplate_only" else "\n\n".join([page.title, *page.paragraphs]),
                }
            )
            continue
        k = slot - len(pages)
        if k < planted:
            ctype, body = non_html[k % len(non_html)]
            url, case = f"https://files.pyindex.example/asset-{k}", "non_html"
            rid = writer.write(file_index, url, "200 OK", ctype, body)
        else:
            status, msg = non_200[k % len(non_200)]
            url, case = f"https://www.techjournal.example/gone-{k}.html", "non_200"
            extra = [("Location", "https://www.techjournal.example/")] if status.startswith("301") else []
            rid = writer.write(
                file_index,
                url,
                status,
                "text/html; charset=utf-8",
                f"<html><body><h1>{msg}</h1></body></html>".encode(),
                extra,
            )
        truth.append(
            {
                "record_id": rid,
                "doc_id": doc_id_for(rid),
                "url": url,
                "case": case,
                "group": "",
                "pii": [],
                "expected_stage": EXPECTED_STAGE[case],
            }
        )
    if not truncate_last:
        writer.close()
        return _finish_sample(out_dir, writer, truth)
    # One truncated record at the very end of the last file, as a cut-off download leaves it.
    last = n_files - 1
    writer.files[last].flush()
    clean_size = writer.files[last].tell()
    writer.write(
        last, "https://www.techjournal.example/truncated.html", "200 OK", "text/html", render(pages[0], rng).encode()
    )
    writer.close()
    path = writer.paths[last]
    data = path.read_bytes()
    path.write_bytes(data[: clean_size + (len(data) - clean_size) // 2])
    truth.append(
        {
            "record_id": None,
            "doc_id": None,
            "url": "https://www.techjournal.example/truncated.html",
            "case": "truncated",
            "group": "",
            "pii": [],
            "expected_stage": "extract",
        }
    )
    return _finish_sample(out_dir, writer, truth)


def _finish_sample(out_dir: Path, writer: SampleWriter, truth: list[dict]) -> dict:
    with open(out_dir / "ground_truth.jsonl", "w") as f:
        for row in truth:
            f.write(json.dumps(row, sort_keys=True) + "\n")
    counts: dict[str, int] = {}
    for row in truth:
        counts[row["case"]] = counts.get(row["case"], 0) + 1
    return {
        "warc_files": [str(p) for p in writer.paths],
        "ground_truth": str(out_dir / "ground_truth.jsonl"),
        "records": len(truth),
        "cases": counts,
    }
