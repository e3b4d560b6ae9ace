"""PII redaction: emails, phone numbers, IP addresses and ID numbers become typed placeholders.

Beyond North America and Latin script: internationalised emails (`почта@пример.рф`, `用户@例子.中国`),
numbers written with a country code in any grouping (`+81 3-1234-5678`, `+33 1 23 45 67 89`,
`+91 98765 43210`, full-width digits), East Asian national numbers (`03-1234-5678`, `010-1234-5678`),
and ID numbers whose check digits hold: IBAN (mod 97), credit cards (Luhn), China's resident ID
(ISO 7064 MOD 11-2), Brazil's CPF and South Korea's resident registration number. A number of the
right shape whose check fails is left alone: versions, counts and hashes are far more common.
"""

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
# An address whose local part or domain is not ASCII (the ASCII pattern above takes the rest).
INTL_EMAIL = re.compile(r"(?<![\w.%+\-])[\w.%+\-]+@[\w\-]+(?:\.[\w\-]+)*\.[^\W\d_]{2,}(?![\w\-])")
# E.164: a country code after "+" and 7-14 more digits in groups; the groups are the country's business.
INTL_PHONE = re.compile(r"(?<![\w+＋])[+＋]\d{1,3}(?:[\s.\-]?(?:\(\d{1,5}\)|\d{1,5})){2,6}(?![\w\-]|\.\d)")
# Japan, Korea, Taiwan: a leading 0, three dash-separated groups, 9-11 digits (a date has 8).
NATIONAL_PHONE = re.compile(r"(?<![\w\-.])0\d{1,4}-\d{2,4}-\d{4}(?![\w\-]|\.\d)")
IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\b")
CARD = re.compile(r"(?<![\w\-.])\d{4}(?:[ \-]?\d{4}){2}[ \-]?\d{1,7}(?![\w\-]|\.\d)")
CN_RESIDENT_ID = re.compile(r"(?<!\w)\d{17}[\dXx](?!\w)")
BR_CPF = re.compile(r"(?<![\w.\-])\d{3}\.\d{3}\.\d{3}-\d{2}(?![\w\-]|\.\d)")
KR_RRN = re.compile(r"(?<![\w\-])\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])-[1-4]\d{6}(?![\w\-])")
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


def _digits(m: re.Match) -> str:
    return "".join(c for c in m.group(0) if c.isdigit())


def _e164(m: re.Match) -> bool:
    return 8 <= len(_digits(m)) <= 15


def _iban(m: re.Match) -> bool:
    code = m.group(0).replace(" ", "")
    if not 15 <= len(code) <= 34:
        return False
    moved = code[4:] + code[:4]
    return int("".join(str(int(c, 36)) for c in moved)) % 97 == 1


def _luhn(m: re.Match) -> bool:
    digits = [int(c) for c in _digits(m)]
    if not 13 <= len(digits) <= 19 or len(set(digits)) == 1:
        return False
    total = sum(d if i % 2 == 0 else (d * 2 - 9 if d > 4 else d * 2) for i, d in enumerate(reversed(digits)))
    return total % 10 == 0


def _cn_resident_id(m: re.Match) -> bool:
    text = m.group(0).upper()
    weights = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
    check = "10X98765432"[sum(int(c) * w for c, w in zip(text[:17], weights, strict=True)) % 11]
    return text[17] == check and 1900 <= int(text[6:10]) <= 2100 and 1 <= int(text[10:12]) <= 12


def _br_cpf(m: re.Match) -> bool:
    d = [int(c) for c in _digits(m)]
    if len(set(d)) == 1:
        return False
    first = sum(x * w for x, w in zip(d[:9], range(10, 1, -1), strict=True)) * 10 % 11 % 10
    second = sum(x * w for x, w in zip(d[:10], range(11, 1, -1), strict=True)) * 10 % 11 % 10
    return d[9] == first and d[10] == second


def redact(text: str) -> tuple[str, dict[str, int]]:
    counts = {"email": 0, "phone": 0, "ip": 0, "id": 0}

    def sub(kind: str, pattern: re.Pattern, text: str, check=None) -> str:
        def repl(m: re.Match) -> str:
            if check and not check(m):
                return m.group(0)
            counts[kind] += 1
            return PLACEHOLDERS[kind]

        return pattern.sub(repl, text)

    text = sub("email", EMAIL, text)
    if not text.isascii():
        text = sub("email", INTL_EMAIL, text, lambda m: not m.group(0).isascii())
    # ID numbers before phones: a card number in groups of four also has a phone number's shape.
    text = sub("id", IBAN, text, _iban)
    text = sub("id", CARD, text, _luhn)
    text = sub("id", CN_RESIDENT_ID, text, _cn_resident_id)
    text = sub("id", BR_CPF, text, _br_cpf)
    text = sub("id", KR_RRN, text)
    text = sub("ip", IPV4, text, _valid_ip)
    text = sub("ip", IPV6, text, _valid_ip)
    text = sub("phone", PHONE, text)
    text = sub("phone", INTL_PHONE, text, _e164)
    text = sub("phone", NATIONAL_PHONE, text, lambda m: 9 <= len(_digits(m)) <= 11)
    return text, counts


class PiiRedaction(Rule):
    """An edit only (no verdict): PII becomes typed placeholders. Last in the list, so it runs on the
    documents every other rule kept, after the quality classifier has scored the original text."""

    name = "pii"
    counters = ("pii.email", "pii.phone", "pii.ip", "pii.id", "pii.docs")

    def edit(self, doc: dict[str, Any]) -> Counter:
        doc["text"], counts = redact(doc["text"])
        changes = Counter({f"pii.{kind}": n for kind, n in counts.items()})
        changes["pii.docs"] = int(any(counts.values()))
        return changes
