"""What an input file is, shared by acquire (a verdict per file, `acquire.strict`) and extract.

Real crawls hand over files that are not what their names say: a text or HTML page saved as
`.warc.gz`, an empty file, a `.warc.gz` that is not gzip, ARC files from older crawls.
"""

from __future__ import annotations

import zlib

from warcio.archiveiterator import ArchiveIterator

GZIP_MAGIC = b"\x1f\x8b"


def detect_format(path: str) -> str:
    """What the file is, from its first bytes: warc, arc (gzipped or not), or what it is instead."""
    with open(path, "rb") as f:
        head = f.read(8192)
    if not head:
        return "empty"
    if head.startswith(GZIP_MAGIC):
        try:
            inner = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(head, 64)
        except zlib.error:
            return "corrupt gzip"
        kind = _archive_kind(inner)
        return f"{kind}.gz" if kind else "gzip, not an archive"
    return _archive_kind(head) or ("html, not an archive" if head.lstrip()[:1] == b"<" else "not an archive")


def _archive_kind(head: bytes) -> str | None:
    if head.startswith(b"WARC/"):
        return "warc"
    if head.startswith(b"filedesc://"):
        return "arc"
    return None


def first_record_error(path: str, kind: str | None = None) -> str | None:
    """None when the file's first record can be read (WARC, WET or ARC); otherwise why not.
    `kind` is the file's `detect_format`, when the caller has it already."""
    kind = kind or detect_format(path)
    if kind.split(".")[0] not in ("warc", "arc"):
        return kind
    try:
        with open(path, "rb") as f:
            for _ in ArchiveIterator(f, no_record_parse=True, arc2warc=True):
                return None
    except Exception as e:  # noqa: BLE001 - any reader error is the verdict, not a crash
        return f"{kind}: {type(e).__name__}: {e}"[:300]
    return f"{kind}: no record"
