"""URL filtering: a domain blocklist (UT1 format, subdomains match) and banned words in the URL."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tasks.filter.rules import Measurement, Rule, Verdict, first_failure, verdict_of


def read_blocklist(path: str | Path) -> set[str]:
    """UT1 `domains` files: one domain per line; blank lines and # comments ignored."""
    domains = set()
    for line in Path(path).read_text(errors="replace").splitlines():
        line = line.strip().lower()
        if line and not line.startswith("#"):
            domains.add(line.lstrip("."))
    return domains


class UrlFilter(Rule):
    """The domain blocklist (the matched domain is the detail) and banned words in the URL."""

    name = "url"

    def __init__(self, domains: set[str], banned_words: list[str]):
        self.domains = {d.lower() for d in domains}
        words = [re.escape(w.lower()) for w in banned_words if w]
        # Banned words match whole URL tokens, so "casino" does not hit "occasional".
        self.banned = re.compile(rf"(?:^|[^a-z0-9])(?:{'|'.join(words)})(?:[^a-z0-9]|$)") if words else None

    def blocked_domain(self, host: str) -> str | None:
        parts = host.lower().rstrip(".").split(".")
        for i in range(len(parts) - 1):
            candidate = ".".join(parts[i:])
            if candidate in self.domains:
                return candidate
        return None

    def measure(self, doc: dict[str, Any]) -> Iterator[Measurement]:
        blocked = self.blocked_domain(doc.get("host") or "")
        yield Measurement("url_blocklist", None, blocked is None, detail=blocked or "")
        word = self.banned.search((doc.get("url") or "").lower()) if self.banned else None
        yield Measurement("url_banned_word", None, word is None, detail=word.group(0).strip("/.-_?=&") if word else "")

    def check(self, url: str, host: str) -> Verdict:
        return verdict_of(first_failure(self.measure({"url": url, "host": host})))
