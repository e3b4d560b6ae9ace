"""A local OpenAI-compatible chat-completions server whose "judge" scores documents by a rule the
tests know, with faults on request: 429 with Retry-After, 500, a stall past the client's timeout,
malformed answers, a required API key."""

from __future__ import annotations

import hashlib
import json
import random
import re
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

EDU_WORDS = ["photosynthesis", "theorem", "molecule", "equation", "hypothesis", "velocity", "enzyme",
             "algorithm", "derivative", "ecosystem", "electron", "proof"]  # fmt: skip
FILLER = ["the", "and", "of", "to", "in", "is", "that", "for", "it", "with", "as", "was", "on", "are", "this",
          "by", "shop", "deal", "click", "today", "great", "best", "price", "free", "new", "more", "page",
          "home"]  # fmt: skip


def rule_score(text: str) -> int:
    """The judge's rule: one point per distinct teaching word, at most 5."""
    return min(5, len({w for w in EDU_WORDS if w in text.split()}))


ERROR_WORDS = {"exception", "exceptions", "error", "errors", "raise", "raised", "raises", "traceback", "except",
               "handler", "warning", "warnings", "fails", "invalid"}  # fmt: skip


def additive_rubric(text: str) -> int:
    """A hidden rubric as FineWeb-Edu's prompt adds points: one each for at least 120 words, an example,
    an explanation ("because", "means", "defined" ...), error handling (any of 14 words), and code
    ("()" or ">>>"); 3 or more is good (26% of the sample's pages)."""
    words = set(re.findall(r"[a-z]+", text.lower()))
    return (int(len(text.split()) >= 120) + int(bool({"example", "examples", "instance"} & words))
            + int(bool({"because", "means", "therefore", "defined", "define"} & words))
            + int(bool(ERROR_WORDS & words)) + int("()" in text or ">>>" in text))  # fmt: skip


def sample_pages() -> list[str]:
    """The embedded sample's pages (language reference, docstrings, READMEs) in a seeded order: a judge's input."""
    from tasks.sample.planted import chunk_pages
    from tasks.sample.sources import distribution_readmes, language_reference, stdlib_docstrings

    pages = chunk_pages(language_reference() + stdlib_docstrings() + distribution_readmes())
    texts = ["\n\n".join(p.paragraphs) for p in pages]
    random.Random(0).shuffle(texts)
    return texts


def document_of(prompt: str) -> str:
    match = re.search(r"<<<\n(.*)\n>>>", prompt, re.DOTALL)
    return match.group(1) if match else prompt


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


class FakeJudge:
    """`faults(text_hash, attempt)` -> None (answer) or one of "429", "500", "stall", "malformed"."""

    def __init__(self, api_key: str | None = None, delay_s: float = 0.0,
                 faults: Callable[[str, int], str | None] = lambda h, n: None,
                 rule: Callable[[str], int] = rule_score, reply: Callable[[str], str] | None = None):  # fmt: skip
        """`reply(prompt)`, when given, writes the whole answer (a pairwise judge); else `rule` scores the document."""
        self.api_key, self.delay_s, self.faults, self.rule, self.reply = api_key, delay_s, faults, rule, reply
        self.attempts: Counter[str] = Counter()  # requests per document hash
        self.answered: Counter[str] = Counter()  # well-formed answers sent per document hash
        self.times: dict[str, list[float]] = defaultdict(list)
        self.prompts: dict[str, str] = {}  # document hash -> the last prompt it came in
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _handler(self):
        judge = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def _send(self, status: int, body: dict, headers: dict[str, str] | None = None) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _authorized(self) -> bool:
                if judge.api_key and self.headers.get("Authorization") != f"Bearer {judge.api_key}":
                    self._send(401, {"error": {"message": "invalid api key"}})
                    return False
                return True

            def do_GET(self):
                if self._authorized():
                    self._send(200, {"object": "list", "data": [{"id": "fake-judge", "object": "model"}]})

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if not self._authorized():
                    return
                text = document_of(body["messages"][-1]["content"])
                h = text_hash(text)
                with judge.lock:
                    judge.attempts[h] += 1
                    judge.times[h].append(time.monotonic())
                    judge.prompts[h] = body["messages"][-1]["content"]
                    fault = judge.faults(h, judge.attempts[h])
                time.sleep(judge.delay_s)
                if fault == "429":
                    return self._send(429, {"error": {"message": "rate limited"}}, {"Retry-After": "1"})
                if fault == "500":
                    return self._send(500, {"error": {"message": "boom"}})
                if fault == "stall":
                    time.sleep(2.0)
                prompt = body["messages"][-1]["content"]
                content = judge.reply(prompt) if judge.reply else f"Clear enough.\nScore: {judge.rule(text)}"
                if fault == "malformed":
                    content = "I would rather not say."
                if fault != "malformed":
                    with judge.lock:
                        judge.answered[h] += 1
                self._send(200, {"id": "chatcmpl-1", "object": "chat.completion", "model": body["model"],
                                 "choices": [{"index": 0, "finish_reason": "stop",
                                              "message": {"role": "assistant", "content": content}}]})  # fmt: skip

        return Handler


def pairwise_by_constraints(prompt: str) -> str:
    """A pairwise judge (evaluate's win rate): the response following more of the instruction's stated
    constraints wins (`tasks.instructions`), ties to the longer one."""
    from tasks.instructions import CONSTRAINTS

    instruction, a, b = re.findall(r"<<<\n(.*?)\n>>>", prompt, re.DOTALL)
    stated = [c for c in CONSTRAINTS if c.instruction() in instruction]
    score_a, score_b = ((sum(c.followed(r, "en") for c in stated), len(r)) for r in (a, b))
    return f"Compared.\nWinner: {'A' if score_a >= score_b else 'B'}"
