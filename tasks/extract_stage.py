"""extract: WARC responses -> HTML -> main text (trafilatura) -> language id, one shard per WARC.

Every response record is a document in; each is either kept or lands in `removed` with a rule:
http_status, non_html, too_large, decode_error, extract_error, too_short, lang, corrupt_record.
"""

from __future__ import annotations

import contextlib
import logging
import re
import signal
import threading
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from warcio.archiveiterator import ArchiveIterator
from warcio.exceptions import ArchiveLoadFailed

from tasks import STAGE_VERSIONS
from tasks.config import ExtractConfig
from tasks.documents import count_words, doc_id_for, removed_row, write_shard
from tasks.langid import detect_language
from tasks.stage import StageInput, StageOutcome, map_shards, sum_stats

VERSION = STAGE_VERSIONS["extract"]
STAGE = "extract"
HTML_TYPES = ("text/html", "application/xhtml+xml")
META_CHARSET = re.compile(rb"""<meta[^>]+charset=["']?([A-Za-z0-9_\-]+)""", re.I)

log = logging.getLogger("crawl2model")
# trafilatura logs every discarded page at WARNING; our removed table already says why.
logging.getLogger("trafilatura").setLevel(logging.CRITICAL)


class ExtractTimeout(Exception):
    pass


@contextlib.contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Bound trafilatura's time per document (only possible in a process's main thread)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def _raise(signum, frame):  # noqa: ARG001
        raise ExtractTimeout(f"extraction took over {seconds}s")

    previous = signal.signal(signal.SIGALRM, _raise)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def decode_html(body: bytes, content_type: str) -> str:
    """HTTP charset, then <meta charset>, then strict UTF-8, then cp1252 (what browsers assume)."""
    candidates = []
    if m := re.search(r"charset=([\w\-]+)", content_type, re.I):
        candidates.append(m.group(1))
    if m := META_CHARSET.search(body[:4096]):
        candidates.append(m.group(1).decode("ascii", "ignore"))
    for enc in [*candidates, "utf-8"]:
        try:
            return body.decode(enc)
        except (LookupError, UnicodeDecodeError):
            continue
    return body.decode("cp1252", errors="replace")


def extract_text(html: str, url: str, timeout_s: float) -> str | None:
    import trafilatura

    with time_limit(timeout_s):
        return trafilatura.extract(
            html,
            url=url,
            include_comments=False,
            include_tables=False,
            deduplicate=False,
            favor_precision=True,
            with_metadata=False,
        )


def iter_responses(path: str) -> Iterator[Any | Exception]:
    """Yield response records; yield the exception if the file breaks (the rest is unreadable)."""
    with open(path, "rb") as f:
        it = ArchiveIterator(f)
        try:
            for record in it:
                if record.rec_type == "response":
                    yield record
        except (ArchiveLoadFailed, zlib.error, EOFError, OSError, ValueError) as e:
            yield e


def unread_bytes(record: Any) -> int:
    """Drain the record; a positive result means the file ended before the record did."""
    while record.raw_stream.read(1 << 16):
        pass
    return int(getattr(record.raw_stream, "limit", 0) or 0)


def process_record(
    record: Any, warc_path: str, crawl: str, cfg: ExtractConfig
) -> tuple[dict, str | None, float | None, str]:
    """Return (doc, removal rule or None, measured value, detail)."""
    url = record.rec_headers.get_header("WARC-Target-URI") or ""
    record_id = record.rec_headers.get_header("WARC-Record-ID") or f"{warc_path}#{url}"
    doc: dict[str, Any] = {
        "doc_id": doc_id_for(record_id),
        "url": url,
        "host": urlsplit(url).hostname or "",
        "crawl": crawl,
        "warc_path": Path(warc_path).name,
        "fetch_time": record.rec_headers.get_header("WARC-Date"),
    }
    http = record.http_headers
    # Read one byte past the cap so an oversized page is detected without holding all of it.
    body = record.content_stream().read(cfg.max_html_bytes + 1)
    if missing := unread_bytes(record):
        return doc, "corrupt_record", missing, "truncated: record shorter than its Content-Length"
    status = int(http.get_statuscode() or 0) if http else 0
    if status != 200:
        return doc, "http_status", status, ""
    content_type = (http.get_header("Content-Type") or "").lower()
    if not content_type.startswith(HTML_TYPES):
        return doc, "non_html", None, content_type[:100]
    if len(body) > cfg.max_html_bytes:
        return doc, "too_large", len(body), ""
    html = decode_html(body, content_type)
    try:
        text = extract_text(html, url, cfg.timeout_s)
    except ExtractTimeout as e:
        return doc, "extract_timeout", cfg.timeout_s, str(e)
    except Exception as e:  # noqa: BLE001 - one bad page must not stop the shard
        return doc, "extract_error", None, f"{type(e).__name__}: {e}"[:200]
    text = (text or "").strip()[: cfg.max_text_chars]
    if len(text) < cfg.min_text_chars:
        return doc, "too_short", len(text), ""
    lang, score = detect_language(text)
    doc.update(lang=lang, lang_score=score, text=text, n_chars=len(text), n_words=count_words(text))
    if lang not in cfg.languages:
        return doc, "lang", score, lang
    if score < cfg.min_lang_score:
        return doc, "lang_score", score, lang
    return doc, None, None, ""


def process_shard(in_path: str, out: Path, params: tuple[ExtractConfig, str], index: int) -> dict[str, Any]:
    cfg, crawl = params
    kept, removed = [], []
    stats: dict[str, Any] = {"docs_in": 0, "records_corrupt": 0}
    for item in iter_responses(in_path):
        if isinstance(item, Exception):
            stats["docs_in"] += 1
            stats["records_corrupt"] += 1
            bad = {"doc_id": doc_id_for(f"{Path(in_path).name}#corrupt#{stats['records_corrupt']}"), "url": None}
            removed.append(removed_row(bad, STAGE, "corrupt_record", None, f"{type(item).__name__}: {item}"[:200]))
            log.warning("extract: %s: unreadable record (%s); the rest of this file is skipped", in_path, item)
            continue
        stats["docs_in"] += 1
        doc, rule, value, detail = process_record(item, in_path, crawl, cfg)
        stats["records_corrupt"] += rule == "corrupt_record"
        if rule is None:
            kept.append(doc)
        else:
            removed.append(removed_row(doc, STAGE, rule, value, detail))
    return {**stats, **write_shard(out, index, kept, removed)}


def run(inputs: dict[str, StageInput], cfg: ExtractConfig, out: Path) -> StageOutcome:
    acquire = inputs["acquire"]
    warcs = acquire.files("warc")
    crawl = acquire.info.get("crawl", "")
    stats = sum_stats(map_shards(process_shard, warcs, out, (cfg, crawl), cfg.workers, label="extract"))
    outcome = StageOutcome(stats["docs_in"], stats["docs_out"], stats["docs_removed"])
    for name, value in sorted(stats.items()):
        outcome.metric(name, value)
    return outcome
