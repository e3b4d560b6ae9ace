"""The URL rules, shared by filter (where they are configured and their removals are recorded) and
extract (which runs them before trafilatura, so pages they remove are never extracted).

A domain blocklist (UT1 format, subdomains match) and banned words matched as whole URL tokens.
"""

from __future__ import annotations

import re
from functools import cached_property
from pathlib import Path

from pydantic import Field

from storage.section import ExistingFile, Section

BLOCKLIST_RULE, BANNED_WORD_RULE = "url_blocklist", "url_banned_word"
URL_RULES = (BLOCKLIST_RULE, BANNED_WORD_RULE)


def read_blocklist(path: str | Path) -> set[str]:
    """UT1 `domains` files: one domain per line; blank lines and # comments ignored."""
    domains = set()
    for line in Path(path).read_text(errors="replace").splitlines():
        line = line.strip().lower()
        if line and not line.startswith("#"):
            domains.add(line.lstrip("."))
    return domains


class UrlRules(Section):
    """The filter's URL settings as one value (the filter section keeps them as its own fields)."""

    blocklist_domains: list[str] = Field(default_factory=list)
    blocklist_file: ExistingFile | None = None
    banned_url_words: list[str] = Field(default_factory=list)

    def is_empty(self) -> bool:
        return not (self.blocklist_domains or self.blocklist_file or any(self.banned_url_words))

    def matcher(self) -> UrlMatcher:
        domains = set(self.blocklist_domains)
        if self.blocklist_file:
            domains |= read_blocklist(self.blocklist_file)
        return UrlMatcher(domains, self.banned_url_words)


class UrlMatcher:
    def __init__(self, domains: set[str], banned_words: list[str]):
        self.domains = {d.lower() for d in domains}
        self.banned_words = [w.lower() for w in banned_words if w]

    @cached_property
    def banned(self) -> re.Pattern[str] | None:
        # Whole URL tokens, so "casino" does not hit "occasional".
        words = "|".join(map(re.escape, self.banned_words))
        return re.compile(rf"(?:^|[^a-z0-9])(?:{words})(?:[^a-z0-9]|$)") if words else None

    def blocked_domain(self, host: str) -> str | None:
        parts = host.lower().rstrip(".").split(".")
        for i in range(len(parts) - 1):
            candidate = ".".join(parts[i:])
            if candidate in self.domains:
                return candidate
        return None

    def banned_word(self, url: str) -> str | None:
        found = self.banned.search(url.lower()) if self.banned else None
        return found.group(0).strip("/.-_?=&") if found else None

    def first_block(self, url: str, host: str) -> tuple[str, str] | None:
        """(rule, detail) of the first URL rule the page fails, in the filter's order; None: it passes."""
        if domain := self.blocked_domain(host):
            return BLOCKLIST_RULE, domain
        if word := self.banned_word(url):
            return BANNED_WORD_RULE, word
        return None
