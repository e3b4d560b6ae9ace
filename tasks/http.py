"""HTTP policy shared by every stage that talks to a server (acquire's downloads, filter's judge)."""

from __future__ import annotations

import email.utils
import time

# Worth another try: the server is busy, rate-limiting or briefly failing.
RETRYABLE_STATUS = {408, 425, 429, 500, 502, 503, 504}


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Retry-After is either delay-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return None
    return max(0.0, when - (time.time() if now is None else now))
