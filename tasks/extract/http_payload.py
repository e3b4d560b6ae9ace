"""From a raw HTTP response block to decoded HTML: status, headers, Content-Encoding, charset."""

from __future__ import annotations

import io
import re
import zlib
from dataclasses import dataclass

from warcio.statusandheaders import StatusAndHeadersParser, StatusAndHeadersParserException

META_CHARSET = re.compile(rb"""<meta[^>]+charset=["']?([A-Za-z0-9_\-]+)""", re.I)
_PARSER = StatusAndHeadersParser(["HTTP/1.0", "HTTP/1.1", "HTTP/2", "HTTP/2.0"], verify=False)


class PayloadError(Exception):
    """A body we cannot turn into text; `rule` names why (decode_error, too_large)."""

    def __init__(self, rule: str, detail: str, value: float | None = None):
        super().__init__(detail)
        self.rule, self.value = rule, value


@dataclass(frozen=True)
class HttpResponse:
    status: int
    content_type: str
    content_encoding: str
    body: bytes


def parse_response(block: bytes) -> HttpResponse:
    stream = io.BytesIO(block)
    try:
        parsed = _PARSER.parse(stream)
    except (StatusAndHeadersParserException, ValueError, EOFError) as e:
        raise PayloadError("decode_error", f"bad HTTP headers: {e}"[:200]) from e
    try:
        status = int((parsed.get_statuscode() or "0")[:3])
    except ValueError:
        status = 0
    return HttpResponse(
        status,
        (parsed.get_header("Content-Type") or "").lower(),
        (parsed.get_header("Content-Encoding") or "").lower().strip(),
        stream.read(),
    )


def _inflate(body: bytes, wbits: int, cap: int) -> bytes:
    d = zlib.decompressobj(wbits)
    out = d.decompress(body, cap + 1)
    if len(out) > cap:
        raise PayloadError("too_large", f"decompresses to over {cap} bytes")
    return out


def _unbrotli(body: bytes, cap: int) -> bytes:
    import brotli

    d = brotli.Decompressor()
    out = bytearray(d.process(body, output_buffer_limit=cap + 1))
    while len(out) <= cap and not d.can_accept_more_data():
        out += d.process(b"", output_buffer_limit=cap + 1 - len(out))
    if len(out) > cap:
        raise PayloadError("too_large", f"decompresses to over {cap} bytes")
    return bytes(out)


GZIP_MAGIC = b"\x1f\x8b"
# Bytes that text never holds (C0 controls but tab, newline, form feed, carriage return, escape).
_BINARY = bytes(set(range(32)) - {9, 10, 12, 13, 27})


def plausible_text(body: bytes, sample: int = 4096) -> bool:
    """Whether a body reads as text already: compressed bytes are dense with control characters
    (about 12% of a random byte stream), HTML in any charset has almost none."""
    head = body[:sample]
    if not head.strip() or head.startswith(GZIP_MAGIC):
        return False
    return sum(head.count(bytes([b])) for b in _BINARY) <= len(head) // 200


def _undo(body: bytes, encoding: str, cap: int) -> bytes:
    if encoding in ("gzip", "x-gzip"):
        return _inflate(body, 16 + zlib.MAX_WBITS, cap)
    if encoding == "deflate":  # servers send both zlib-wrapped and raw deflate under this name
        try:
            return _inflate(body, zlib.MAX_WBITS, cap)
        except zlib.error:
            return _inflate(body, -zlib.MAX_WBITS, cap)
    return _unbrotli(body, cap)


def decode_content(body: bytes, encoding: str, cap: int) -> tuple[bytes, bool]:
    """Undo Content-Encoding, never producing more than `cap` bytes (decompression bombs).

    Returns the body and whether its label was wrong: archived crawls often store the body already
    decoded under its original `Content-Encoding` header, so a body the codec rejects that reads as
    text is taken as it is (`encoding_mislabeled`); one that is neither is a `decode_error`.
    """
    if encoding in ("", "identity", "none"):
        return body, False
    if encoding not in ("gzip", "x-gzip", "deflate", "br"):
        raise PayloadError("decode_error", f"unsupported Content-Encoding {encoding!r}")
    try:
        return _undo(body, encoding, cap), False
    except PayloadError:
        raise
    except Exception as e:  # noqa: BLE001 - zlib.error, brotli.error: a corrupt body is one bad page
        if plausible_text(body):
            return body, True
        raise PayloadError("decode_error", f"{encoding}: {type(e).__name__}: {e}"[:200]) from e


def decode_html(body: bytes, content_type: str) -> str:
    """HTTP charset, then <meta charset>, then strict UTF-8, then detection, then cp1252."""
    candidates = []
    if m := re.search(r"charset=([\w\-]+)", content_type, re.I):
        candidates.append(m.group(1))
    if m := META_CHARSET.search(body[:4096]):
        candidates.append(m.group(1).decode("ascii", "ignore"))
    for enc in [*candidates, "utf-8"]:
        try:
            return body.decode(enc)
        except (LookupError, UnicodeDecodeError):
            continue
    from charset_normalizer import from_bytes

    best = from_bytes(body[:200_000]).best()
    if best is not None and best.encoding:
        try:
            return body.decode(best.encoding)
        except (LookupError, UnicodeDecodeError):
            pass
    # What browsers assume for undeclared legacy pages; never fails.
    return body.decode("cp1252", errors="replace")
