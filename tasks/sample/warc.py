"""WARC writing for the embedded sample: request/response pairs, a truncated record, the ground truth."""

from __future__ import annotations

import hashlib
import io
import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from tasks.documents import doc_id_for
from tasks.sample.languages import language_pages
from tasks.sample.planted import EXPECTED_STAGE, Page, build_pages
from tasks.sample.render import render

FETCH_START = datetime(2026, 10, 1, tzinfo=UTC)


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
    out_dir: Path,
    n_pages: int = 2400,
    planted: int = 24,
    seed: int = 0,
    n_files: int = 4,
    truncate_last: bool = True,
    languages: tuple[str, ...] = (),
    articles: int = 0,
) -> dict:
    """Write the sample WARC files and `ground_truth.jsonl`; return a summary.

    `truncate_last=False` leaves out the cut-off record at the end (benchmarks feed the files to
    tools that stop at it)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed + 1)
    pages = build_pages(n_pages, planted, seed, languages)
    if languages:
        pages += language_pages(list(languages), articles, max(1, planted // 6), seed)
    non_html = [
        ("application/pdf", b"%PDF-1.4\n" + rng.randbytes(600)),
        ("image/png", b"\x89PNG\r\n\x1a\n" + rng.randbytes(400)),
        ("application/json", json.dumps({"items": list(range(30))}).encode()),
    ]
    order = list(range(len(pages) + 2 * planted))
    rng.shuffle(order)
    writer = SampleWriter(out_dir, n_files, seed)
    truth = []
    for slot in order:
        file_index = slot % n_files
        if slot < len(pages):
            truth.append(_write_page(writer, file_index, pages[slot], rng))
        else:
            truth.append(_write_unwanted(writer, file_index, slot - len(pages), planted, non_html))
    if truncate_last:
        truth.append(_write_truncated(writer, pages[0], rng))
    else:
        writer.close()
    return _finish_sample(out_dir, writer, truth)


def _write_page(writer: SampleWriter, file_index: int, page: Page, rng: random.Random) -> dict:
    body = render(page, rng, with_content=page.case != "boilerplate_only").encode(page.charset, "replace")
    rid = writer.write(file_index, page.url, "200 OK", f"text/html; charset={page.charset}", body)
    row = {
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
    if page.lang:
        row["lang"] = page.lang
    return row


NON_200 = [
    ("404 Not Found", "Page not found"),
    ("500 Internal Server Error", "Internal error"),
    ("301 Moved Permanently", "Moved"),
]


def _write_unwanted(
    writer: SampleWriter, file_index: int, k: int, planted: int, non_html: list[tuple[str, bytes]]
) -> dict:
    """Record `k` of the non-HTML responses (k < planted), then of the non-200 ones."""
    if k < planted:
        ctype, body = non_html[k % len(non_html)]
        url, case = f"https://files.pyindex.example/asset-{k}", "non_html"
        rid = writer.write(file_index, url, "200 OK", ctype, body)
    else:
        status, msg = NON_200[k % len(NON_200)]
        url, case = f"https://www.techjournal.example/gone-{k}.html", "non_200"
        extra = [("Location", "https://www.techjournal.example/")] if status.startswith("301") else []
        html = f"<html><body><h1>{msg}</h1></body></html>".encode()
        rid = writer.write(file_index, url, status, "text/html; charset=utf-8", html, extra)
    return {"record_id": rid, "doc_id": doc_id_for(rid), "url": url, "case": case, "group": "", "pii": [],
            "expected_stage": EXPECTED_STAGE[case]}  # fmt: skip


def _write_truncated(writer: SampleWriter, page: Page, rng: random.Random) -> dict:
    """One truncated record at the very end of the last file, as a cut-off download leaves it."""
    last = len(writer.paths) - 1
    writer.files[last].flush()
    clean_size = writer.files[last].tell()
    url = "https://www.techjournal.example/truncated.html"
    writer.write(last, url, "200 OK", "text/html", render(page, rng).encode())
    writer.close()
    path = writer.paths[last]
    data = path.read_bytes()
    path.write_bytes(data[: clean_size + (len(data) - clean_size) // 2])
    return {"record_id": None, "doc_id": None, "url": url, "case": "truncated", "group": "", "pii": [],
            "expected_stage": "extract"}  # fmt: skip


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
