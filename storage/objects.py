"""A workdir whose artifacts live on object storage: any fsspec URL (s3://, gs://, az://, file://).

The workdir stays a local directory: it holds the DuckDB catalog, the lock, and a mirror of the files
the flow's machine reads or writes. The store holds the same tree under its URL (`<url>/artifacts/
<stage>/<fingerprint>/...`); it is the truth a fresh machine resumes from. Guarantees, as on disk: a
file is uploaded only once complete and is visible whole or not at all (an object store's PUT is
atomic; other filesystems get a temporary name and a move), a stage's manifest is uploaded last, a
download lands under a temporary name and is renamed into place. Credentials come from the
environment only (AWS_*, GOOGLE_APPLICATION_CREDENTIALS, ...), never from a config file.

A workdir is bound to one URL (`storage.json` in it): a later run, `crawl2model sql` and every other
command find the store from the workdir.
"""

from __future__ import annotations

import functools
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from storage.errors import UserError

BINDING = "storage.json"
# Filesystems whose writes are atomic objects: put directly. Any other gets a temporary name first.
OBJECT_STORES = {"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "oss", "r2"}


class StorageError(UserError):
    """The object store named by `storage.artifacts` cannot be used (no package, no access, another URL)."""


@functools.lru_cache(maxsize=8)
def _filesystem(url: str) -> tuple[Any, str]:
    import fsspec

    fs, root = fsspec.core.url_to_fs(url)
    return fs, root.rstrip("/")


@dataclass(frozen=True)
class ArtifactStore:
    """The workdir `local` mirrored at `url`: a path under `local` has the same relative key there."""

    url: str
    local: str

    @property
    def fs(self) -> Any:
        return _filesystem(self.url)[0]

    def key(self, rel: str) -> str:
        return f"{_filesystem(self.url)[1]}/{rel}".rstrip("/")

    def url_of(self, rel: str) -> str:
        """A full URL (with its protocol) for readers other than fsspec itself (DuckDB's views)."""
        return self.fs.unstrip_protocol(self.key(rel))

    def rel(self, path: Path | str) -> str:
        return Path(os.path.abspath(path)).relative_to(self.local).as_posix()

    def owns(self, path: Path | str) -> bool:
        return os.path.abspath(path).startswith(self.local + os.sep)

    # --- single files ---------------------------------------------------------------------------
    def put(self, path: Path, rel: str | None = None) -> None:
        """Upload a finished local file; visible in the store only whole."""
        key = self.key(rel if rel is not None else self.rel(path))
        protocols = {self.fs.protocol} if isinstance(self.fs.protocol, str) else set(self.fs.protocol)
        if protocols & OBJECT_STORES:
            self.fs.put_file(str(path), key)
            return
        tmp = f"{key.rsplit('/', 1)[0]}/.{key.rsplit('/', 1)[1]}.tmp-{os.getpid()}"
        self.fs.makedirs(key.rsplit("/", 1)[0], exist_ok=True)
        self.fs.put_file(str(path), tmp)
        self.fs.mv(tmp, key)

    def put_json(self, rel: str, value: Any, scratch: Path) -> None:
        scratch.parent.mkdir(parents=True, exist_ok=True)
        scratch.write_text(json.dumps(value, indent=2, sort_keys=True, default=str))
        self.put(scratch, rel)

    def get(self, rel: str, path: Path) -> Path:
        """Download into `path` (a temporary name, renamed into place)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        self.fs.get_file(self.key(rel), str(tmp))
        os.replace(tmp, path)
        return path

    def exists(self, rel: str) -> bool:
        self.fs.invalidate_cache()  # another machine may have written it since the last listing
        return self.fs.exists(self.key(rel))

    # --- trees ----------------------------------------------------------------------------------
    def listing(self, rel_dir: str) -> dict[str, int]:
        """Every file under `rel_dir` in the store: relative key -> size (temporary names left out)."""
        self.fs.invalidate_cache()
        base = self.key(rel_dir)
        found = self.fs.find(base, detail=True) if self.fs.exists(base) else {}
        prefix = self.key("")
        return {
            name[len(prefix) + 1 :] if prefix else name: int(info.get("size") or 0)
            for name, info in found.items()
            if info.get("type", "file") == "file" and not name.rsplit("/", 1)[-1].startswith(".")
        }

    def push_tree(self, directory: Path, last: str | None = None) -> int:
        """Upload the files under `directory` the store lacks (or holds at another size); `last`, a
        name at its top, goes after everything else. Returns how many were uploaded."""
        remote = self.listing(self.rel(directory))
        files = [p for p in sorted(directory.rglob("*")) if p.is_file() and not p.name.startswith(".")]
        files.sort(key=lambda p: p.relative_to(directory).as_posix() == last)
        pushed = 0
        for path in files:
            if remote.get(self.rel(path)) != path.stat().st_size:
                self.put(path)
                pushed += 1
        return pushed

    def pull_tree(self, directory: Path, skip: str | None = None) -> int:
        """Download the files under `directory` that the local mirror lacks; returns how many."""
        pulled = 0
        for rel, size in self.listing(self.rel(directory)).items():
            path = Path(self.local) / rel
            if path.name != skip and not (path.exists() and path.stat().st_size == size):
                self.get(rel, path)
                pulled += 1
        return pulled

    def pull(self, path: Path) -> Path:
        """The local mirror's copy of one file, downloaded when missing."""
        return path if path.exists() else self.get(self.rel(path), path)


def open_store(url: str, workdir: Path) -> ArtifactStore:
    """A store for `url`, checked: its filesystem's package is installed and the location is writable."""
    protocol = url.split("://", 1)[0] if "://" in url else "file"
    try:
        import fsspec

        fsspec.get_filesystem_class(protocol)
    except (ImportError, ValueError) as e:
        hint = "s3:// needs `pip install 'crawl2model[s3]'`; gs:// gcsfs; az:// adlfs"
        raise StorageError(f"storage.artifacts={url}: {e}".splitlines()[0], hint=hint) from None
    store = ArtifactStore(url.rstrip("/"), str(Path(workdir).resolve()))
    try:
        store.fs.makedirs(store.key(""), exist_ok=True)
        probe = store.key(f".probe-{os.getpid()}")  # writable, with these credentials
        store.fs.pipe_file(probe, b"")
        store.fs.rm_file(probe)
    except Exception as e:  # any backend's own error (no bucket, no credentials, no route)
        hint = ("a folder this user can write" if protocol == "file" else
                "credentials come from the environment (AWS_ACCESS_KEY_ID, AWS_ENDPOINT_URL, ...)")  # fmt: skip
        line = f"storage.artifacts={url}: cannot use it: {type(e).__name__}: {e}".splitlines()[0]
        raise StorageError(line, hint=hint) from None
    return store


def bind(workdir: Path, url: str | None) -> ArtifactStore | None:
    """The workdir's store: the one it is bound to, or `url` (binding the workdir to it). A workdir
    keeps one store: another URL is an error, not a silent second copy."""
    workdir = Path(workdir).resolve()
    bound = store_of(workdir)
    if url is None or (bound is not None and bound.url == url.rstrip("/")):
        return bound
    if bound is not None:
        raise StorageError(f"storage.artifacts={url}, but the workdir {workdir} keeps its artifacts at {bound.url}",
                           hint=f"use another --workdir, or delete {workdir / BINDING} to rebind this one")  # fmt: skip
    store = open_store(url, workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / BINDING).write_text(json.dumps({"artifacts": store.url}) + "\n")
    return store


def store_of(workdir: Path) -> ArtifactStore | None:
    binding = Path(workdir) / BINDING
    if not binding.exists():
        return None
    return ArtifactStore(json.loads(binding.read_text())["artifacts"], str(Path(workdir).resolve()))


def store_for(path: Path | str) -> ArtifactStore | None:
    """The store of the workdir that `path` (a stage output, or anything in one) belongs to."""
    path = Path(path).resolve()
    for parent in path.parents:
        if parent.name == "artifacts":
            return store_of(parent.parent)
    return None
