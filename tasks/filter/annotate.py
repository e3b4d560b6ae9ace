"""Documents scored by an LLM judge on an OpenAI-compatible endpoint (`tasks.llm_endpoint`: bounded
concurrency, retries, the answer cache keyed by template, model and document hash); malformed answers
counted and kept out."""

from __future__ import annotations

import logging
import time
from collections import Counter
from pathlib import Path

from tasks.filter.config import AnnotateConfig
from tasks.filter.judge import MalformedAnswer, load_template, parse_score, render
from tasks.llm_endpoint import AnswerCache, ChatClient, EndpointError, Reply, ask_all, text_hash
from tasks.llm_endpoint import preflight as endpoint_preflight

log = logging.getLogger("crawl2model")


# The judge's errors are the endpoint's (no key, unreachable, rejected): nothing is annotated.
AnnotateError = EndpointError
SETTING = "filter.quality.annotate"


def preflight(cfg: AnnotateConfig) -> None:
    endpoint_preflight(cfg, SETTING)


class Judge(ChatClient):
    """One client, shared by the worker threads: a document in the rubric's prompt."""

    def __init__(self, cfg: AnnotateConfig, template: str):
        super().__init__(cfg, SETTING)
        self.cfg: AnnotateConfig = cfg
        self.template = template

    def ask(self, text: str, lang: str | None = None) -> Reply:
        return self.complete(render(self.template, text, self.cfg.max_chars, lang))


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
    try:
        ask_all(lambda doc_id: judge.ask(texts[doc_id], langs.get(doc_id)), todo, judge.cfg.concurrency,
                lambda doc_id, reply: _record(reply, hashes[doc_id], cache, progress))  # fmt: skip
    finally:
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
