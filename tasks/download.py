"""Resumable, retried, verified downloads over HTTP(S) (httpx) or any fsspec URL: acquire's WARC
files, and the reference corpora and classifiers the filter fetches by URL.

A file is fetched into `<partial_dir>/<name>.part` and moved to its final name only after it is
verified (size against Content-Length, every gzip member's CRC), so a final file is always whole.
An interrupted download continues with an HTTP Range request; if the server's validators (ETag,
Last-Modified, total size) changed since the first bytes, or the spliced file fails verification,
the partial file is discarded and the download starts again.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import os
import random
import re
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import httpx
from pydantic import Field, model_validator

from storage.errors import Crawl2ModelError
from storage.section import Section
from tasks.http import RETRYABLE_STATUS, parse_retry_after

log = logging.getLogger("crawl2model.download")


class DownloadConfig(Section):
    """How remote files are fetched: politely, resumably, verified."""

    concurrency: int = Field(4, ge=1, le=64, description="files downloaded at once")
    retries: int = Field(8, ge=0, le=100, description="tries after the first, per file")
    backoff_s: float = Field(1.0, gt=0.0, le=600.0, description="first retry delay; doubles each time, with jitter")
    backoff_max_s: float = Field(120.0, gt=0.0, le=3600.0, description="cap on one delay, Retry-After included")
    timeout_s: float = Field(60.0, gt=0.0, le=3600.0, description="connect and read timeout")
    chunk_bytes: int = Field(1 << 20, ge=1024, le=1 << 28)
    verify_gzip: bool = Field(True, description="decompress .gz files fully before accepting them (CRC check)")
    max_failed_files: int = Field(0, ge=0, description="files that may fail for good before the stage fails")
    user_agent: str = Field(
        "crawl2model/0.1 (data pipeline; +https://github.com/crawl2model/crawl2model)", min_length=8
    )
    storage_options: dict[str, Any] = Field(
        default_factory=dict, description="fsspec options for non-HTTP URLs, e.g. {anon: true} for s3"
    )
    seed: int = Field(0, description="seeds the backoff jitter")

    @model_validator(mode="after")
    def _no_secrets(self) -> DownloadConfig:
        # The config is stored in the catalog and shown in reports; credentials must not be.
        secret = [k for k in self.storage_options if any(w in k.lower() for w in ("key", "secret", "token", "pass"))]
        if secret:
            raise ValueError(
                f"storage_options {secret}: credentials come from the environment (e.g. AWS_ACCESS_KEY_ID), "
                "never from the config, which is stored in the catalog"
            )
        return self


CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")


class DownloadError(Crawl2ModelError):
    """A file that could not be fetched whole after every retry (transient: trying later may work)
    or a permanent HTTP error such as 404 (not transient)."""

    def __init__(self, message: str, transient: bool = False):
        super().__init__(f"download failed: {message}", hint="finished files are kept; rerun to fetch the rest")
        self.transient = transient


class _Retry(Exception):
    def __init__(self, reason: str, retry_after: float | None = None):
        super().__init__(reason)
        self.retry_after = retry_after


class _Restart(Exception):
    """The partial file is unusable (the source changed, or the whole file failed verification)."""


@dataclass
class FileReport:
    url: str
    path: str
    bytes: int = 0
    attempts: int = 0
    resumed_from: list[int] = field(default_factory=list)  # offsets a Range request continued from
    restarts: list[str] = field(default_factory=list)  # why a partial file was thrown away
    already_present: bool = False
    corrupt_at_source: str = ""  # the served file itself fails gzip verification


def verify_gzip(path: Path, chunk: int = 1 << 20) -> None:
    """Read every gzip member to its end; raises on a bad CRC, a bad length or a cut-off member."""
    with gzip.open(path, "rb") as f:
        while f.read(chunk):
            pass


def _validators(headers: httpx.Headers) -> dict[str, str]:
    return {k: headers[k] for k in ("etag", "last-modified") if k in headers}


class Fetcher:
    """Fetches files with the policy in DownloadConfig; safe to share between threads."""

    def __init__(self, cfg: DownloadConfig, on_bytes: Callable[[int], None] = lambda n: None):
        self.cfg = cfg
        self.on_bytes = on_bytes
        self._rng = random.Random(cfg.seed)
        self._rng_lock = threading.Lock()
        self._client = httpx.Client(
            headers={"User-Agent": cfg.user_agent},
            timeout=httpx.Timeout(cfg.timeout_s),
            follow_redirects=True,
        )

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> Fetcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- policy ---------------------------------------------------------------------------------

    def delay(self, attempt: int, retry_after: float | None) -> float:
        """Exponential backoff with jitter; a server's Retry-After wins when it asks for longer."""
        with self._rng_lock:
            jitter = 0.5 + self._rng.random() / 2
        backoff = min(self.cfg.backoff_max_s, self.cfg.backoff_s * 2**attempt) * jitter
        if retry_after is not None:
            backoff = max(backoff, retry_after)
        return min(backoff, self.cfg.backoff_max_s)

    def fetch(self, url: str, dest: Path, partial_dir: Path) -> FileReport:
        report = FileReport(url, str(dest))
        if dest.exists():  # verified by an earlier, interrupted run of this stage
            report.already_present, report.bytes = True, dest.stat().st_size
            return report
        partial_dir.mkdir(parents=True, exist_ok=True)
        part = partial_dir / f"{dest.name}.part"
        meta_path = partial_dir / f"{dest.name}.part.json"
        last_error = ""
        failed_digests: set[str] = set()
        for attempt in range(self.cfg.retries + 1):
            report.attempts += 1
            try:
                if url.startswith(("http://", "https://")):
                    self._http_once(url, part, meta_path, report)
                else:
                    self._fsspec_once(url, part, meta_path, report)
                self._verify(dest, part, failed_digests, report)
            except _Restart as e:
                report.restarts.append(str(e))
                log.warning("%s: %s; starting over", url, e)
                _discard(part, meta_path)
                last_error = str(e)
                retry_after = None
            except _Retry as e:
                last_error, retry_after = str(e), e.retry_after
            except (httpx.TransportError, OSError) as e:
                # Dropped connections, timeouts, resets: the partial file is kept and continued.
                last_error, retry_after = f"{type(e).__name__}: {e}", None
            else:
                os.replace(part, dest)
                meta_path.unlink(missing_ok=True)
                report.bytes = dest.stat().st_size
                return report
            if attempt < self.cfg.retries:
                wait = self.delay(attempt, retry_after)
                log.info("%s: %s; retry %d/%d in %.1fs", url, last_error, attempt + 1, self.cfg.retries, wait)
                time.sleep(wait)
        raise DownloadError(f"{url}: gave up after {report.attempts} attempts: {last_error}", transient=True)

    def _verify(self, dest: Path, part: Path, failed_digests: set[str], report: FileReport) -> None:
        """Check every gzip member. A file that fails twice with the same bytes is broken at the
        source, not in transit: it is kept (extract counts its bad records) and flagged."""
        if not (self.cfg.verify_gzip and dest.name.endswith(".gz")):
            return
        try:
            verify_gzip(part)
        except (OSError, EOFError, zlib.error) as e:
            digest = _sha256(part)
            if digest in failed_digests:
                report.corrupt_at_source = f"{type(e).__name__}: {e}"
                log.warning("%s: the same bytes failed gzip verification twice; keeping it as served", dest.name)
                return
            failed_digests.add(digest)
            raise _Restart(f"gzip verification failed ({type(e).__name__}: {e})") from e

    # -- HTTP -----------------------------------------------------------------------------------

    def _http_once(self, url: str, part: Path, meta_path: Path, report: FileReport) -> None:
        meta = _read_meta(meta_path) if part.exists() else {}
        offset = part.stat().st_size if meta else 0
        headers = {}
        if offset:
            headers["Range"] = f"bytes={offset}-"
            if validator := meta["validators"].get("etag") or meta["validators"].get("last-modified"):
                headers["If-Range"] = validator  # a compliant server answers 200 if the file changed
        with self._client.stream("GET", url, headers=headers) as r:
            if r.status_code in RETRYABLE_STATUS:
                raise _Retry(f"HTTP {r.status_code}", parse_retry_after(r.headers.get("retry-after")))
            if r.status_code == 416:
                raise _Restart("range not satisfiable: the file is shorter than our partial copy")
            if r.status_code not in (200, 206):
                raise DownloadError(f"{url}: HTTP {r.status_code}")
            validators = _validators(r.headers)
            if r.status_code == 206:
                m = CONTENT_RANGE.fullmatch(r.headers.get("content-range", ""))
                if not m or int(m.group(1)) != offset:
                    raise _Restart(f"server sent range {r.headers.get('content-range')!r} for offset {offset}")
                total = int(m.group(3)) if m.group(3) != "*" else None
                if validators != meta["validators"] or (total is not None and total != meta["total"]):
                    raise _Restart(f"the file changed on the server ({meta['validators']} -> {validators})")
                report.resumed_from.append(offset)
                mode = "ab"
            else:
                total = int(r.headers["content-length"]) if "content-length" in r.headers else None
                offset, mode = 0, "wb"
                _write_meta(meta_path, {"url": url, "validators": validators, "total": total})
            with open(part, mode) as f:
                # Raw bytes as they arrive: no Content-Encoding decoding (a .gz file is stored as
                # served), and nothing held in a buffer that a dropped connection would lose.
                for chunk in r.iter_raw():
                    f.write(chunk)
                    self.on_bytes(len(chunk))
        size = part.stat().st_size
        expected = meta.get("total") if r.status_code == 206 else total
        if expected is not None and size != expected:
            if size > expected:
                raise _Restart(f"got {size} bytes, more than the {expected} announced")
            raise _Retry(f"connection ended at {size} of {expected} bytes")

    # -- fsspec (s3://, gs://, file://, ...) ---------------------------------------------------

    def _fsspec_once(self, url: str, part: Path, meta_path: Path, report: FileReport) -> None:
        import fsspec

        fs, path = fsspec.core.url_to_fs(url, **self.cfg.storage_options)
        info = fs.info(path)
        total = int(info["size"])
        validators = {k: str(info[k]) for k in ("ETag", "etag", "mtime", "LastModified") if k in info}
        meta = _read_meta(meta_path) if part.exists() else {}
        offset = part.stat().st_size if meta else 0
        if offset and (meta["validators"] != validators or meta["total"] != total):
            raise _Restart(f"the file changed at its source ({meta['validators']} -> {validators})")
        if not offset:
            _write_meta(meta_path, {"url": url, "validators": validators, "total": total})
        else:
            report.resumed_from.append(offset)
        with fs.open(path, "rb") as src, open(part, "ab" if offset else "wb") as f:
            src.seek(offset)
            while chunk := src.read(self.cfg.chunk_bytes):
                f.write(chunk)
                self.on_bytes(len(chunk))
        if (size := part.stat().st_size) != total:
            raise _Retry(f"read {size} of {total} bytes")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _read_meta(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}  # no usable record of what the partial file is: start it over


def _write_meta(path: Path, meta: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(meta))
    os.replace(tmp, path)


def _discard(*paths: Path) -> None:
    for p in paths:
        p.unlink(missing_ok=True)


class PinMismatch(Crawl2ModelError, ValueError):
    """A fetched file's sha256 is not the one the config pins."""


def fetch_pinned(url: str, sha256: str | None, cache_dir: Path, cfg: DownloadConfig) -> Path:
    """The file at `url` in `cache_dir`, downloaded the first time only; a pinned digest that does
    not match is an error (and the file is not kept)."""
    name = PurePosixPath(url.split("?", 1)[0]).name or "download"
    dest = cache_dir / f"{hashlib.sha256(url.encode()).hexdigest()[:16]}-{name}"
    if not dest.exists():
        with Fetcher(cfg) as fetcher:
            fetcher.fetch(url, dest, cache_dir / "partial")
    if sha256 and (actual := _sha256(dest)) != sha256.lower():
        dest.unlink()
        raise PinMismatch(f"{url}: sha256 {actual}, but the config pins {sha256}")
    return dest
