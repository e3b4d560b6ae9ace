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

from tasks.archives import detect_format

Reader = Literal["warcio", "fastwarc"]
# Records that can hold a page: HTTP responses, WET text, and `resource` records (a stored file, such
# as an HTML page archived without its HTTP headers). The others are counted, not read.
RECORD_TYPES = ("response", "conversion", "resource")
ALL_TYPES = ("warcinfo", "request", "response", "revisit", "metadata", "resource", "conversion", "continuation")
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
    content_type: str = ""  # the record's own Content-Type (what a `resource` record holds)

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


def _iter_warcio(path: str, cap: int, counts: dict[str, int], arc: bool) -> Iterator[RawRecord]:
    from warcio.archiveiterator import ArchiveIterator

    with open(path, "rb") as f:
        it = ArchiveIterator(f, no_record_parse=True, arc2warc=arc)  # ARC records arrive as WARC responses
        for record in it:
            if record.rec_type not in RECORD_TYPES:
                counts[f"records.{record.rec_type}"] = counts.get(f"records.{record.rec_type}", 0) + 1
                continue
            h = record.rec_headers
            block, n = _read_capped(record.raw_stream.read, cap)
            counts[f"records.{record.rec_type}"] = counts.get(f"records.{record.rec_type}", 0) + 1
            yield RawRecord(
                record.rec_type,
                h.get_header("WARC-Target-URI") or "",
                h.get_header("WARC-Record-ID") or "",
                h.get_header("WARC-Date"),
                int(h.get_header("Content-Length") or 0),
                block,
                n,
                it.get_record_offset(),
                h.get_header("Content-Type") or "",
            )


def _iter_fastwarc(path: str, cap: int, counts: dict[str, int]) -> Iterator[RawRecord]:
    from fastwarc.warc import ArchiveIterator, WarcRecordType

    kinds = [(getattr(WarcRecordType, name), name) for name in ALL_TYPES if hasattr(WarcRecordType, name)]
    # fsspec off: a local path is read directly; parse_http off: we parse the block ourselves.
    for record in ArchiveIterator(path, record_types=WarcRecordType.any_type, parse_http=False, fsspec_args=False):
        rec_type = next((name for kind, name in kinds if record.record_type == kind), "unknown")
        counts[f"records.{rec_type}"] = counts.get(f"records.{rec_type}", 0) + 1
        if rec_type not in RECORD_TYPES:
            continue
        h = record.headers
        block, n = _read_capped(record.reader.read, cap)
        yield RawRecord(
            rec_type,
            h.get("WARC-Target-URI") or "",
            h.get("WARC-Record-ID") or "",
            h.get("WARC-Date"),
            int(record.content_length),
            block,
            n,
            record.stream_pos,
            h.get("Content-Type") or "",
        )


def iter_records(
    path: str, reader: Reader = "warcio", cap: int = 1 << 24, counts: dict[str, int] | None = None
) -> Iterator[RawRecord | Exception]:
    """Yield records; yield the exception if the file breaks (what follows it is unreadable).

    `counts` gets `records.<type>` for every record read, whatever its type. fastwarc reads WARC
    only: an ARC file is read with warcio whichever reader is configured.
    """
    counts = {} if counts is None else counts
    detected = detect_format(path)
    kind = detected.split(".")[0]
    if kind not in ("warc", "arc"):
        if kind != "empty":  # an empty file holds no record and no error
            yield ArchiveLoadFailed(f"not a WARC or ARC file: {detected}")
        return
    if reader == "fastwarc" and kind == "warc":
        it = _iter_fastwarc(path, cap, counts)
    else:
        it = _iter_warcio(path, cap, counts, arc=kind == "arc")
    try:
        yield from it
    except (ArchiveLoadFailed, zlib.error, EOFError, OSError, ValueError) as e:
        yield e
