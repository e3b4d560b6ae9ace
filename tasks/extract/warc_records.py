"""Read WARC/WET records with warcio or fastwarc into one record type, so both yield the same documents.

Both readers hand us the raw record block (HTTP headers + payload for `response`, plain text for WET
`conversion` records); HTTP parsing and decoding happen once, in `tasks/extract/http_payload.py`. Reading the
raw block also lets both readers detect truncation the same way: fewer block bytes than the record's
declared Content-Length.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

from warcio.exceptions import ArchiveLoadFailed

Reader = Literal["warcio", "fastwarc"]
RECORD_TYPES = ("response", "conversion")
CHUNK = 1 << 16


@dataclass(frozen=True)
class RawRecord:
    rec_type: str  # "response" (WARC) or "conversion" (WET)
    url: str
    record_id: str
    date: str | None
    declared_length: int  # the record's Content-Length
    block: bytes  # at most `cap` bytes of the block
    block_length: int  # bytes actually present in the file
    offset: int = 0  # where the record starts in the (compressed) file, for `explain` and re-reading

    @property
    def truncated(self) -> bool:
        return self.block_length < self.declared_length

    @property
    def oversized(self) -> bool:
        return self.block_length > len(self.block)


def _read_capped(read, cap: int) -> tuple[bytes, int]:
    """Keep the first `cap` bytes, drain (and count) the rest without holding it."""
    kept = bytearray()
    total = 0
    while chunk := read(CHUNK):
        total += len(chunk)
        if len(kept) < cap:
            kept += chunk[: cap - len(kept)]
    return bytes(kept), total


def _iter_warcio(path: str, cap: int) -> Iterator[RawRecord]:
    from warcio.archiveiterator import ArchiveIterator

    with open(path, "rb") as f:
        it = ArchiveIterator(f, no_record_parse=True)
        for record in it:
            if record.rec_type not in RECORD_TYPES:
                continue
            h = record.rec_headers
            block, n = _read_capped(record.raw_stream.read, cap)
            yield RawRecord(
                record.rec_type,
                h.get_header("WARC-Target-URI") or "",
                h.get_header("WARC-Record-ID") or "",
                h.get_header("WARC-Date"),
                int(h.get_header("Content-Length") or 0),
                block,
                n,
                it.get_record_offset(),
            )


def _iter_fastwarc(path: str, cap: int) -> Iterator[RawRecord]:
    from fastwarc.warc import ArchiveIterator, WarcRecordType

    wanted = WarcRecordType.response | WarcRecordType.conversion
    # fsspec off: a local path is read directly; parse_http off: we parse the block ourselves.
    for record in ArchiveIterator(path, record_types=wanted, parse_http=False, fsspec_args=False):
        h = record.headers
        block, n = _read_capped(record.reader.read, cap)
        yield RawRecord(
            "response" if record.record_type == WarcRecordType.response else "conversion",
            h.get("WARC-Target-URI") or "",
            h.get("WARC-Record-ID") or "",
            h.get("WARC-Date"),
            int(record.content_length),
            block,
            n,
            record.stream_pos,
        )


def iter_records(path: str, reader: Reader = "warcio", cap: int = 1 << 24) -> Iterator[RawRecord | Exception]:
    """Yield records; yield the exception if the file breaks (what follows it is unreadable)."""
    it = _iter_fastwarc(path, cap) if reader == "fastwarc" else _iter_warcio(path, cap)
    try:
        yield from it
    except (ArchiveLoadFailed, zlib.error, EOFError, OSError, ValueError) as e:
        yield e
