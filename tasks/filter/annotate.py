"""Documents scored by an LLM judge on an OpenAI-compatible endpoint (vLLM, llama.cpp, Ollama, a hosted API).

Bounded concurrency (threads, `concurrency` requests in flight), retries with backoff on 429 (its
Retry-After wins), 5xx, timeouts and dropped connections; malformed answers counted and kept out.
Every answer is appended to a cache in the workdir (fsynced), keyed by (template fingerprint, model,
document hash), so a rerun, or a run resumed after SIGKILL, sends no answered document again. The
API key is read from the environment variable the config names and goes only into the request header.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import threading
import time
from collections import Counter
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from storage.errors import Crawl2ModelError
from tasks.filter.config import AnnotateConfig
from tasks.filter.judge import MalformedAnswer, load_template, parse_score, render, template_fingerprint
from tasks.http import RETRYABLE_STATUS, parse_retry_after

log = logging.getLogger("crawl2model")


class AnnotateError(Crawl2ModelError, RuntimeError):
    """The judge cannot be used at all (no key, unreachable, key or model rejected): nothing is annotated."""


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


class AnswerCache:
    """Append-only JSONL of answers, one file per (template, model); a line torn by a kill is skipped."""

    def __init__(self, directory: Path, template: str, model: str):
        slug = hashlib.sha256(model.encode()).hexdigest()[:12]
        self.path = directory / f"{template_fingerprint(template)}-{slug}.jsonl"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.answers: dict[str, dict[str, Any]] = {}
        if self.path.exists():
            for line in self.path.read_text(errors="replace").splitlines():
                try:
                    entry = json.loads(line)
                    self.answers[entry["doc"]] = entry
                except (json.JSONDecodeError, KeyError, TypeError):
                    continue
        self._lock = threading.Lock()

    def get(self, doc: str) -> dict[str, Any] | None:
        return self.answers.get(doc)

    def put(self, doc: str, score: int | None, answer: str) -> None:
        entry = {"doc": doc, "score": score, "answer": answer[-300:]}
        with self._lock, open(self.path, "a") as f:
            f.write(json.dumps(entry) + "\n")
            f.flush()
            os.fsync(f.fileno())
            self.answers[doc] = entry


def api_headers(cfg: AnnotateConfig) -> dict[str, str]:
    if cfg.api_key_env is None:
        return {}
    key = os.environ.get(cfg.api_key_env)
    if not key:
        raise AnnotateError(f"filter.quality.annotate.api_key_env names {cfg.api_key_env}, which is not set")
    return {"Authorization": f"Bearer {key}"}


def preflight(cfg: AnnotateConfig) -> None:
    """Fail before any work: the key is missing, the endpoint unreachable, or the key rejected."""
    headers = api_headers(cfg)
    try:
        r = httpx.get(f"{cfg.endpoint}/models", headers=headers, timeout=min(cfg.timeout_s, 10.0))
    except httpx.HTTPError as e:
        raise AnnotateError(f"judge endpoint {cfg.endpoint} is unreachable: {type(e).__name__}: {e}") from None
    if r.status_code in (401, 403):
        raise AnnotateError(f"judge endpoint {cfg.endpoint} rejected the API key (HTTP {r.status_code})")


@dataclass
class Reply:
    text: str | None  # None: no answer after every retry (not cached: a rerun asks again)
    calls: int
    error: str = ""


class Judge:
    """One client, shared by the worker threads."""

    def __init__(self, cfg: AnnotateConfig, template: str):
        self.cfg, self.template = cfg, template
        self.client = httpx.Client(headers=api_headers(cfg), timeout=httpx.Timeout(cfg.timeout_s))
        self._rng = random.Random(0)

    def close(self) -> None:
        self.client.close()

    def backoff(self, attempt: int, retry_after: float | None) -> float:
        wait_s = min(self.cfg.backoff_max_s, self.cfg.backoff_s * 2**attempt) * (0.5 + self._rng.random() / 2)
        return min(max(wait_s, retry_after or 0.0), self.cfg.backoff_max_s)

    def ask(self, text: str, lang: str | None = None) -> Reply:
        prompt = render(self.template, text, self.cfg.max_chars, lang)
        body = {"model": self.cfg.model, "temperature": 0, "max_tokens": self.cfg.max_tokens,
                "messages": [{"role": "user", "content": prompt}]}  # fmt: skip
        error = ""
        for attempt in range(self.cfg.retries + 1):
            retry_after = None
            try:
                r = self.client.post(f"{self.cfg.endpoint}/chat/completions", json=body)
            except (httpx.TimeoutException, httpx.TransportError) as e:
                error = type(e).__name__
            else:
                if r.status_code in (401, 403, 404):
                    raise AnnotateError(f"judge endpoint answered HTTP {r.status_code}: {r.text[:200]}")
                if r.status_code not in RETRYABLE_STATUS:
                    return Reply(_content(r), attempt + 1)
                error, retry_after = f"HTTP {r.status_code}", parse_retry_after(r.headers.get("retry-after"))
            if attempt < self.cfg.retries:
                time.sleep(self.backoff(attempt, retry_after))
        return Reply(None, self.cfg.retries + 1, error)


def _content(r: httpx.Response) -> str:
    """The answer's text; a response without one reads as an empty (malformed) answer."""
    try:
        return str(r.json()["choices"][0]["message"]["content"] or "")
    except (ValueError, KeyError, IndexError, TypeError):
        return ""


class Progress:
    """A log line every few seconds: answers, cache hits, calls/s, retries, malformed, failed."""

    def __init__(self, total: int, hits: int):
        self.total, self.hits, self.start, self.last = total, hits, time.monotonic(), 0.0
        self.counts: Counter[str] = Counter()

    def add(self, reply: Reply, malformed: bool) -> None:
        self.counts["answers" if reply.text is not None else "failed"] += 1
        self.counts["calls"] += reply.calls
        self.counts["retries"] += reply.calls - 1
        self.counts["malformed"] += malformed
        now = time.monotonic()
        if now - self.last > 5 or self.done == self.total:
            self.last = now
            log.info("judge: %d/%d documents (%d cached), %.1f calls/s, %d retries, %d malformed, %d failed",
                     self.done, self.total, self.hits, self.counts["calls"] / max(now - self.start, 1e-9),
                     self.counts["retries"], self.counts["malformed"], self.counts["failed"])  # fmt: skip

    @property
    def done(self) -> int:
        return self.hits + self.counts["answers"] + self.counts["failed"]


def annotate(texts: dict[str, str], cfg: AnnotateConfig, cache_dir: Path,
             langs: dict[str, str] | None = None) -> tuple[dict[str, int], dict[str, float]]:  # fmt: skip
    """Judge scores for `texts` (doc_id -> text), the judge told each page's language (`langs`,
    doc_id -> code; English where absent); cached answers reused (the language is the text's, so the
    text's hash keys it); malformed and failed ones are left out. Returns (doc_id -> score, counts)."""
    template = load_template(cfg.template_path)
    cache = AnswerCache(cache_dir, template, cfg.model)
    hashes = {doc_id: text_hash(text) for doc_id, text in texts.items()}
    todo = [d for d in texts if cache.get(hashes[d]) is None]
    progress = Progress(len(texts), len(texts) - len(todo))
    if todo:
        preflight(cfg)
        _ask_all(Judge(cfg, template), todo, texts, langs or {}, hashes, cache, progress)
    scores = {d: cache.get(h)["score"] for d, h in hashes.items() if cache.get(h) is not None}
    valid = {d: s for d, s in scores.items() if s is not None}
    seconds = round(time.monotonic() - progress.start, 3)
    counts = {"annotate_documents": len(texts), "annotate_cache_hits": progress.hits,
              "annotate_calls": progress.counts["calls"], "annotate_retries": progress.counts["retries"],
              "annotate_malformed": len(scores) - len(valid), "annotate_failed": progress.counts["failed"],
              "annotate_scored": len(valid), "annotate_seconds": seconds}  # fmt: skip
    return valid, counts


def _ask_all(judge: Judge, todo: list[str], texts: dict[str, str], langs: dict[str, str], hashes: dict[str, str],
             cache: AnswerCache, progress: Progress) -> None:  # fmt: skip
    """At most `concurrency` requests in flight; each answer cached as it arrives."""
    pending: dict[Future, str] = {}
    queue = iter(todo)
    with ThreadPoolExecutor(judge.cfg.concurrency, thread_name_prefix="judge") as pool:
        try:
            while True:
                for doc_id in queue:
                    pending[pool.submit(judge.ask, texts[doc_id], langs.get(doc_id))] = doc_id
                    if len(pending) >= judge.cfg.concurrency:
                        break
                if not pending:
                    return
                finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in finished:
                    _record(future.result(), hashes[pending.pop(future)], cache, progress)
        finally:
            for future in pending:
                future.cancel()
            judge.close()


def _record(reply: Reply, doc_hash: str, cache: AnswerCache, progress: Progress) -> None:
    malformed = False
    if reply.text is not None:
        try:
            score: int | None = parse_score(reply.text)
        except MalformedAnswer:
            score, malformed = None, True
        cache.put(doc_hash, score, reply.text)
    progress.add(reply, malformed)
