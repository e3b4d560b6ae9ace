"""URL filtering as a filter rule set: the domain blocklist and banned URL words (`tasks.url_rules`)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from tasks.filter.rules import Measurement, Rule, Verdict, first_failure, verdict_of
from tasks.url_rules import BANNED_WORD_RULE, BLOCKLIST_RULE, UrlMatcher


class UrlFilter(Rule):
    """The domain blocklist (the matched domain is the detail) and banned words in the URL."""

    name = "url"

    def __init__(self, matcher: UrlMatcher):
        self.matcher = matcher

    def measure(self, doc: dict[str, Any]) -> Iterator[Measurement]:
        blocked = self.matcher.blocked_domain(doc.get("host") or "")
        yield Measurement(BLOCKLIST_RULE, None, blocked is None, detail=blocked or "")
        word = self.matcher.banned_word(doc.get("url") or "")
        yield Measurement(BANNED_WORD_RULE, None, word is None, detail=word or "")

    def check(self, url: str, host: str) -> Verdict:
        return verdict_of(first_failure(self.measure({"url": url, "host": host})))
