"""An LLM on an OpenAI-compatible endpoint (vLLM, llama.cpp, Ollama, a hosted API): what filter's
annotating judge and evaluate's win-rate judge share.

Bounded concurrency (threads, `concurrency` requests in flight), retries with backoff on 429 (its
Retry-After wins), 5xx, timeouts and dropped connections. Answers go to an append-only cache in the
workdir (fsynced), keyed by (template fingerprint, model, input hash), so a rerun, or a run resumed
after SIGKILL, asks nothing already answered. The API key is read from the environment variable the
config names and goes only into the request header.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import threading
import time
from collections.abc import Callable, Hashable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from pydantic import Field, field_validator

from storage.errors import Crawl2ModelError
from storage.section import Section
from tasks.http import RETRYABLE_STATUS, parse_retry_after


class EndpointSettings(Section):
    """Where the LLM is and how it is asked."""

    endpoint: str = Field(description="OpenAI-compatible base URL, e.g. http://127.0.0.1:8000/v1")
    model: str = Field(description="the judge model's name on that endpoint")
    api_key_env: str | None = Field(
        None, description="the environment variable holding the API key (never the key); None: no key"
    )
    concurrency: int = Field(8, ge=1, le=256)
    max_tokens: int = Field(400, ge=8, description="answer length limit")
    timeout_s: float = Field(120.0, gt=0.0)
    retries: int = Field(6, ge=0, le=20, description="tries after the first on 429/5xx/timeouts")
    backoff_s: float = Field(1.0, ge=0.0)
    backoff_max_s: float = Field(60.0, ge=0.0)

    @field_validator("endpoint")
    @classmethod
    def _http_url(cls, url: str) -> str:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"an http(s) base URL such as http://127.0.0.1:8000/v1, not {url!r}")
        return url.rstrip("/")


class EndpointError(Crawl2ModelError, RuntimeError):
    """The endpoint cannot be used at all (no key, unreachable, key or model rejected): nothing is asked."""


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def template_fingerprint(template: str) -> str:
    return hashlib.sha256(template.encode()).hexdigest()[:16]


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


def api_headers(cfg: EndpointSettings, setting: str) -> dict[str, str]:
    if cfg.api_key_env is None:
        return {}
    key = os.environ.get(cfg.api_key_env)
    if not key:
        raise EndpointError(f"{setting}.api_key_env names {cfg.api_key_env}, which is not set")
    return {"Authorization": f"Bearer {key}"}


def preflight(cfg: EndpointSettings, setting: str) -> None:
    """Fail before any work: the key is missing, the endpoint unreachable, or the key rejected."""
    headers = api_headers(cfg, setting)
    try:
        r = httpx.get(f"{cfg.endpoint}/models", headers=headers, timeout=min(cfg.timeout_s, 10.0))
    except httpx.HTTPError as e:
        raise EndpointError(f"judge endpoint {cfg.endpoint} is unreachable: {type(e).__name__}: {e}") from None
    if r.status_code in (401, 403):
        raise EndpointError(f"judge endpoint {cfg.endpoint} rejected the API key (HTTP {r.status_code})")


@dataclass
class Reply:
    text: str | None  # None: no answer after every retry (not cached: a rerun asks again)
    calls: int
    error: str = ""


class ChatClient:
    """One client, shared by the worker threads."""

    def __init__(self, cfg: EndpointSettings, setting: str):
        self.cfg = cfg
        self.client = httpx.Client(headers=api_headers(cfg, setting), timeout=httpx.Timeout(cfg.timeout_s))
        self._rng = random.Random(0)

    def close(self) -> None:
        self.client.close()

    def backoff(self, attempt: int, retry_after: float | None) -> float:
        wait_s = min(self.cfg.backoff_max_s, self.cfg.backoff_s * 2**attempt) * (0.5 + self._rng.random() / 2)
        return min(max(wait_s, retry_after or 0.0), self.cfg.backoff_max_s)

    def complete(self, prompt: str) -> Reply:
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
                    raise EndpointError(f"judge endpoint answered HTTP {r.status_code}: {r.text[:200]}")
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


def ask_all(ask: Callable[[Any], Reply], todo: list[Hashable], concurrency: int,
            on_reply: Callable[[Hashable, Reply], None]) -> None:  # fmt: skip
    """`ask(key)` for every key, at most `concurrency` in flight; `on_reply` as each answer arrives."""
    pending: dict[Future, Hashable] = {}
    queue = iter(todo)
    with ThreadPoolExecutor(concurrency, thread_name_prefix="judge") as pool:
        try:
            while True:
                for key in queue:
                    pending[pool.submit(ask, key)] = key
                    if len(pending) >= concurrency:
                        break
                if not pending:
                    return
                finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in finished:
                    on_reply(pending.pop(future), future.result())
        finally:
            for future in pending:
                future.cancel()
