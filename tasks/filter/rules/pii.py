"""PII redaction: emails, phone numbers and IP addresses become typed placeholders."""

from __future__ import annotations

import ipaddress
import re
from collections import Counter
from typing import Any

from tasks.documents import PLACEHOLDERS
from tasks.filter.rules import Rule

EMAIL = re.compile(r"\b[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}\b")
# International or North-American style numbers with separators; bare digit runs are left alone
# (they are versions, years and counts far more often than phone numbers).
# Not inside longer digit/dash runs (UUIDs, `01 012 0123 01234`-style sequences in code examples).
PHONE = re.compile(
    r"(?<![\w.\-])(?:\+\d{1,3}[\s.\-]?)?(?:\(\d{2,4}\)[\s.\-]?|\d{2,4}[\s.\-])\d{3,4}[\s.\-]\d{3,4}"
    r"(?![\w\-]|\.\d|[\s.]\d)"
)
IPV4 = re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?!\w|\.\d)")
IPV6 = re.compile(r"(?<![\w:])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![\w:])")


# RFC 5737 / RFC 3849 documentation ranges: examples in docs, never anyone's address.
DOC_NETWORKS = [ipaddress.ip_network(n) for n in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32")]
VERSION_CONTEXT = re.compile(r"(?:[<>=!~]=?|\bv|version)\s*$", re.I)


def _valid_ip(m: re.Match) -> bool:
    text = m.group(0)
    # Short colon runs such as Python slices (x[1::2]) parse as IPv6; require four groups.
    if ":" in text and sum(bool(g) for g in text.split(":")) < 4:
        return False
    # "brotlicffi >= 1.2.1.0", "version 1.0.0.1": a version, not an address.
    if VERSION_CONTEXT.search(m.string[max(0, m.start() - 12) : m.start()]):
        return False
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return False
    # Loopback, unspecified and documentation addresses identify no one; keep them readable.
    return not (ip.is_loopback or ip.is_unspecified or any(ip in net for net in DOC_NETWORKS))


def redact(text: str) -> tuple[str, dict[str, int]]:
    counts = {"email": 0, "phone": 0, "ip": 0}

    def sub(kind: str, pattern: re.Pattern, text: str, check=None) -> str:
        def repl(m: re.Match) -> str:
            if check and not check(m):
                return m.group(0)
            counts[kind] += 1
            return PLACEHOLDERS[kind]

        return pattern.sub(repl, text)

    text = sub("email", EMAIL, text)
    text = sub("ip", IPV4, text, _valid_ip)
    text = sub("ip", IPV6, text, _valid_ip)
    text = sub("phone", PHONE, text)
    return text, counts


class PiiRedaction(Rule):
    """An edit only (no verdict): PII becomes typed placeholders. Last in the list, so it runs on the
    documents every other rule kept, after the quality classifier has scored the original text."""

    name = "pii"
    counters = ("pii.email", "pii.phone", "pii.ip", "pii.docs")

    def edit(self, doc: dict[str, Any]) -> Counter:
        doc["text"], counts = redact(doc["text"])
        changes = Counter({f"pii.{kind}": n for kind, n in counts.items()})
        changes["pii.docs"] = int(any(counts.values()))
        return changes
