"""Stage fingerprints: the identity of a stage output, and so its cache key."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no whitespace, so equal configs hash equally."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def stage_fingerprint(stage: str, version: str, config: dict[str, Any], inputs: Iterable[str]) -> str:
    """sha256(stage name, stage version, canonical config JSON, input fingerprints)."""
    h = hashlib.sha256()
    for part in (stage, version, canonical_json(config), *sorted(inputs)):
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()[:24]


def file_identity(path: str | Path) -> str:
    """Resolved path, size and mtime: what a fingerprint sees of a file it reads (cheap for a model of
    gigabytes, and an edit in place changes it). A missing file is named so; the stage reports it."""
    p = Path(path).resolve()
    if p.is_dir():  # a directory of files: each file's identity, so an edit inside it is seen
        return ";".join(file_identity(f) for f in sorted(p.rglob("*")) if f.is_file()) or f"{p}:empty"
    try:
        st = p.stat()
    except FileNotFoundError:
        return f"{p}:missing"
    return f"{p}:{st.st_size}:{st.st_mtime_ns}"


def file_sha256(path: str, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def stable_hash(*parts: object) -> int:
    """A 64-bit hash that is the same in every process (unlike hash())."""
    digest = hashlib.blake2b("\x1f".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def unit_interval(*parts: object) -> float:
    """Deterministic pseudo-random number in [0, 1) from the given parts."""
    return stable_hash(*parts) / 2**64
