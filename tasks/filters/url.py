"""URL filtering: a domain blocklist (UT1 format, subdomains match) and banned words in the URL."""

from __future__ import annotations

import re
from pathlib import Path

from tasks.filters import Verdict


def read_blocklist(path: str | Path) -> set[str]:
    """UT1 `domains` files: one domain per line; blank lines and # comments ignored."""
    domains = set()
    for line in Path(path).read_text(errors="replace").splitlines():
        line = line.strip().lower()
        if line and not line.startswith("#"):
            domains.add(line.lstrip("."))
    return domains


class UrlFilter:
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

    def check(self, url: str, host: str) -> Verdict:
        if self.blocked_domain(host):
            return "url_blocklist", None
        if self.banned and self.banned.search(url.lower()):
            return "url_banned_word", None
        return None
