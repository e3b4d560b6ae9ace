"""acquire: WARC/WET files into the stage's output directory, from one of four sources.

sample: the embedded sample; paths: local paths and globs (hard-linked when possible);
urls: http(s) or any fsspec URL; commoncrawl: a crawl id plus a file selection from its index.
Remote files are downloaded resumably and verified (tasks/download.py); a file is in `warc/` only
once it is whole, so the manifest never registers a partial download.
"""

from __future__ import annotations

import glob
import logging
import os
import shutil
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from urllib.parse import urlsplit

from storage.errors import Crawl2ModelError
from storage.fingerprint import file_identity
from storage.shards import atomic_write_json
from tasks.acquire.commoncrawl import local_name, read_index, select_files
from tasks.acquire.config import AcquireConfig
from tasks.archives import detect_format, first_record_error
from tasks.download import DownloadError, Fetcher
from tasks.sample.warc import write_sample
from tasks.stage import STREAM_PLAN, StageInput, StageOutcome

log = logging.getLogger("crawl2model")


def resolve_paths(patterns: list[str]) -> list[Path]:
    """Expand globs in order; a pattern that matches nothing is an error, not an empty run."""
    found: list[Path] = []
    for pattern in patterns:
        matches = sorted(glob.glob(os.path.expanduser(pattern)))
        if not matches:
            raise FileNotFoundError(f"acquire.paths: {pattern!r} matches no file")
        found += [Path(m) for m in matches if Path(m).is_file()]
    return found


def input_identity(cfg: AcquireConfig) -> list[str]:
    """What the fingerprint must see of local inputs: a changed file must not be a cache hit."""
    if cfg.source != "paths":
        return []
    return [file_identity(p) for p in resolve_paths(cfg.paths)]


def _link_or_copy(src: Path, dst: Path) -> None:
    tmp = dst.with_name(f".{dst.name}.tmp")
    try:
        os.link(src, tmp)
    except OSError:
        shutil.copyfile(src, tmp)
    os.replace(tmp, dst)


def fetch_all(urls_and_names: list[tuple[str, str]], cfg: AcquireConfig, fetcher: Fetcher, out: Path) -> dict:
    """Download every file (cfg.download.concurrency at once); failures beyond the allowance raise."""
    from storage.progress import byte_progress

    warc_dir = out / "warc"
    warc_dir.mkdir(parents=True, exist_ok=True)
    partial_dir = out / "_state" / "downloads"
    reports, failures = [], []
    with byte_progress("acquire", len(urls_and_names)) as (add_bytes, file_done):
        fetcher.on_bytes = add_bytes
        with ThreadPoolExecutor(max_workers=cfg.download.concurrency) as pool:
            futures = {
                pool.submit(fetcher.fetch, url, warc_dir / name, partial_dir): url for url, name in urls_and_names
            }
            for fut in as_completed(futures):
                try:
                    reports.append(fut.result())
                except DownloadError as e:
                    failures.append(e)
                    log.error("acquire: %s", e)
                file_done()
    if len(failures) > cfg.download.max_failed_files:
        # Finished files stay in warc/; the rerun skips them and retries only what failed.
        raise DownloadError(
            f"{len(failures)} of {len(urls_and_names)} files failed (download.max_failed_files="
            f"{cfg.download.max_failed_files}): " + "; ".join(map(str, failures[:3])),
            transient=any(f.transient for f in failures),
        )
    reports.sort(key=lambda r: r.path)
    return {
        "files_failed": [str(f) for f in failures],
        "downloads": [
            {
                "url": r.url,
                "bytes": r.bytes,
                "attempts": r.attempts,
                "resumed_from": r.resumed_from,
                "restarts": r.restarts,
                "corrupt_at_source": r.corrupt_at_source,
                "already_present": r.already_present,
            }
            for r in reports
        ],
    }


def url_file_name(url: str) -> str:
    return local_name(urlsplit(url).path.rsplit("/", 1)[-1])


def run(inputs: dict[str, StageInput], cfg: AcquireConfig, out: Path) -> StageOutcome:
    outcome = StageOutcome()
    warc_dir = out / "warc"
    if cfg.source == "sample":
        summary = write_sample(warc_dir, cfg.sample_pages, cfg.planted_per_case, cfg.seed,
                               languages=tuple(cfg.sample_languages), articles=cfg.sample_articles)  # fmt: skip
        (warc_dir / "ground_truth.jsonl").rename(out / "ground_truth.jsonl")
        outcome.info = {
            "source": "sample",
            "records": summary["records"],
            "cases": summary["cases"],
            "crawl": f"CC-SAMPLE-{cfg.seed:04d}",
        }
    elif cfg.source == "paths":
        warc_dir.mkdir(parents=True, exist_ok=True)
        paths = resolve_paths(cfg.paths)
        names = set()
        for i, src in enumerate(paths):
            name = src.name if src.name not in names else f"{i:05d}-{src.name}"
            names.add(name)
            _link_or_copy(src, warc_dir / name)
        outcome.info = {"source": "paths", "paths": [str(p) for p in paths], "crawl": "local"}
    else:
        with Fetcher(cfg.download) as fetcher:
            if cfg.source == "commoncrawl":
                selected = select_files(read_index(fetcher, cfg, out), cfg)
                host = cfg.host.rstrip("/")
                jobs = [(f"{host}/{path}", local_name(path)) for path in selected]
                outcome.info = {"source": "commoncrawl", "crawl": cfg.crawl, "selected": selected}
            else:
                names = [url_file_name(u) for u in cfg.urls]
                # Same last path part from two URLs: prefix the position to keep both.
                jobs = [
                    (u, n if names.count(n) == 1 else f"{i:05d}-{n}")
                    for i, (u, n) in enumerate(zip(cfg.urls, names, strict=True))
                ]
                outcome.info = {"source": "urls", "crawl": "remote"}
            # The files to expect, for an extract that streams (starts on files as they land).
            plan = {"crawl": outcome.info["crawl"], "files": sorted(name for _, name in jobs)}
            atomic_write_json(out / "_state" / STREAM_PLAN, plan)
            outcome.info.update(fetch_all(jobs, cfg, fetcher, out))
        downloads = outcome.info["downloads"]
        outcome.metric("download_attempts", sum(d["attempts"] for d in downloads))
        outcome.metric("download_restarts", sum(len(d["restarts"]) for d in downloads))
        outcome.metric("download_resumes", sum(len(d["resumed_from"]) for d in downloads))
        outcome.metric("files_failed", len(outcome.info["files_failed"]))
        outcome.metric("files_corrupt_at_source", sum(bool(d["corrupt_at_source"]) for d in downloads))
    files = sorted(warc_dir.iterdir())
    outcome.metric("warc_files", len(files))
    outcome.metric("warc_bytes", sum(f.stat().st_size for f in files))
    check_readable(files, cfg, outcome)
    return outcome


class UnreadableInput(Crawl2ModelError, RuntimeError):
    """acquire.strict: some input file holds no readable WARC/ARC record."""


def check_readable(files: list[Path], cfg: AcquireConfig, outcome: StageOutcome) -> None:
    """A verdict on every file's first record; with `strict`, unreadable files fail the stage here,
    before extract, so a run on the wrong files stops at once."""
    outcome.info["formats"] = formats = {f.name: detect_format(str(f)) for f in files}
    verdicts = {f.name: first_record_error(str(f), formats[f.name]) for f in files}
    bad = {name: why for name, why in verdicts.items() if why is not None}
    outcome.metric("files_unreadable", len(bad))
    if bad:  # named as warnings by extract, which reads every record (verdicts in `extract_files`)
        outcome.info["unreadable_files"] = bad
    if bad and cfg.strict:
        listed = "; ".join(f"{name} ({why})" for name, why in sorted(bad.items()))
        raise UnreadableInput(f"acquire.strict: {len(bad)} input file(s) hold no readable record: {listed}")
