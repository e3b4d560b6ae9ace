"""PII redaction: emails, phone numbers and IP addresses become typed placeholders."""

from __future__ import annotations

import ipaddress
import re

EMAIL = re.compile(r"\b[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}\b")
# International or North-American style numbers with separators; bare digit runs are left alone
# (they are versions, years and counts far more often than phone numbers).
PHONE = re.compile(
    r"(?<![\w.])(?:\+\d{1,3}[\s.\-]?)?(?:\(\d{2,4}\)[\s.\-]?|\d{2,4}[\s.\-])\d{3,4}[\s.\-]\d{3,4}(?!\w|\.\d)"
)
IPV4 = re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?!\w|\.\d)")
IPV6 = re.compile(r"(?<![\w:])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![\w:])")

PLACEHOLDERS = {"email": "<EMAIL>", "phone": "<PHONE>", "ip": "<IP_ADDRESS>"}


def _valid_ip(text: str) -> bool:
    # Short colon runs such as Python slices (x[1::2]) parse as IPv6; require four groups.
    if ":" in text and sum(bool(g) for g in text.split(":")) < 4:
        return False
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return False
    # Documentation examples (127.0.0.1, 0.0.0.0) identify no one; keep them readable.
    return not (ip.is_loopback or ip.is_unspecified)


def redact(text: str) -> tuple[str, dict[str, int]]:
    counts = {"email": 0, "phone": 0, "ip": 0}

    def sub(kind: str, pattern: re.Pattern, text: str, check=None) -> str:
        def repl(m: re.Match) -> str:
            if check and not check(m.group(0)):
                return m.group(0)
            counts[kind] += 1
            return PLACEHOLDERS[kind]

        return pattern.sub(repl, text)

    text = sub("email", EMAIL, text)
    text = sub("ip", IPV4, text, _valid_ip)
    text = sub("ip", IPV6, text, _valid_ip)
    text = sub("phone", PHONE, text)
    return text, counts
