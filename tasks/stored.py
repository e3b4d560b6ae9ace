"""Stage outputs on object storage: what the stage contract does when the workdir has a store
(`storage.artifacts`, see storage/objects.py).

- A stage about to run pulls its inputs' files and whatever an interrupted run left in the store
  (shards and their done-markers: a fresh machine resumes where another stopped); once it has run,
  every file goes up, then the manifest.
- A shard runs shared-nothing: in a scratch directory of its own, on whichever machine runs it. It
  is sent no local path, only keys in the store (`Ref`): it pulls its input and the files its
  settings name, writes its output in the scratch directory, uploads each file and then its
  done-marker. A machine that dies mid-shard leaves no marker, so the shard runs again.
"""

from __future__ import annotations

import dataclasses
import json
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from storage.objects import ArtifactStore, store_for
from storage.shards import MANIFEST


def shard_marker(index: int) -> str:
    """A shard's done-marker, relative to its stage output: its stats, written after its files."""
    return f"_state/shard-{index:05d}.json"


@dataclass(frozen=True)
class Ref:
    """A file or directory of the workdir, named by its key in the store (what a shard task is sent)."""

    rel: str
    as_path: bool  # given as a Path (else a str)
    is_dir: bool = False


def convert_tree(value: Any, convert: Callable[[Any], Any]) -> Any:
    """`value` with `convert` applied to every leaf inside dataclasses, pydantic models and containers."""
    if isinstance(value, BaseModel):
        update = {k: convert_tree(getattr(value, k), convert) for k in type(value).model_fields}
        changed = {k: v for k, v in update.items() if v is not getattr(value, k)}
        return value.model_copy(update=changed) if changed else value
    if dataclasses.is_dataclass(value) and not isinstance(value, type | Ref):
        update = {f.name: convert_tree(getattr(value, f.name), convert) for f in dataclasses.fields(value) if f.init}
        changed = {k: v for k, v in update.items() if v is not getattr(value, k)}
        return dataclasses.replace(value, **changed) if changed else value
    if isinstance(value, dict):
        return {k: convert_tree(v, convert) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(convert_tree(v, convert) for v in value)
    return convert(value)


def to_refs(value: Any, store: ArtifactStore) -> Any:
    """Flow side: every existing path in the workdir becomes a `Ref`, uploaded first if the store lacks it."""

    def convert(leaf: Any) -> Any:
        if not isinstance(leaf, str | Path) or (isinstance(leaf, str) and not leaf.startswith("/")):
            return leaf
        path = Path(leaf)
        if not store.owns(path) or not path.exists():
            return leaf
        if path.is_dir():
            store.push_tree(path)
        elif not store.exists(store.rel(path)):
            store.put(path)
        return Ref(store.rel(path), isinstance(leaf, Path), path.is_dir())

    return convert_tree(value, convert)


def from_refs(value: Any, store: ArtifactStore, mirror: Path) -> Any:
    """Worker side: every `Ref` pulled into `mirror` (the same relative layout) and given as a local path."""

    def convert(leaf: Any) -> Any:
        if not isinstance(leaf, Ref):
            return leaf
        path = mirror / leaf.rel
        if leaf.is_dir:
            path.mkdir(parents=True, exist_ok=True)  # an empty folder is not in the store
            for rel in store.listing(leaf.rel):
                store.get(rel, mirror / rel)
        elif not path.exists():
            store.get(leaf.rel, path)
        return path if leaf.as_path else str(path)

    return convert_tree(value, convert)


@dataclass(frozen=True)
class StoredShard:
    """A shard function run shared-nothing (see the module doc); `tasks.stage.run_one_shard` calls `run`."""

    fn: Callable[[str, Path, Any, int], dict[str, Any]]
    store: ArtifactStore

    def run(self, in_ref: Ref, out_rel: str, params: Any, index: int) -> dict[str, Any]:
        with tempfile.TemporaryDirectory(prefix="crawl2model-shard-") as scratch:
            inputs, out = Path(scratch) / "in", Path(scratch) / "out" / out_rel
            out.mkdir(parents=True)
            stats = self.fn(from_refs(in_ref, self.store, inputs), out, from_refs(params, self.store, inputs), index)
            for path in sorted(out.rglob("*")):
                if path.is_file() and not path.name.startswith("."):
                    self.store.put(path, f"{out_rel}/{path.relative_to(out).as_posix()}")
            self.store.put_json(f"{out_rel}/{shard_marker(index)}", stats, Path(scratch) / "marker.json")  # last
        return stats


def shard_job(fn: Any, todo: list[tuple[int, str]], out: Path, params: Any) -> tuple[Any, list, Any, Any] | None:
    """The shard work as sent when `out` is in a workdir with a store: (StoredShard, todo as refs,
    the output's key, params as refs); None without a store."""
    store = store_for(out)
    if store is None:
        return None
    refs = [(i, to_refs(p, store)) for i, p in todo]  # a path, or a tuple of them
    params = to_refs(params, store)
    return StoredShard(fn, dataclasses.replace(store, local="")), refs, store.rel(out), params  # no local path


def pull_output(out: Path) -> None:
    """What the store holds of this output (shards another machine wrote) into the local mirror."""
    if (store := store_for(out)) is not None:
        store.pull_tree(out, skip=MANIFEST)


def prepare_inputs(inputs: dict[str, Any], out: Path) -> None:
    """Before a stage runs: its inputs' files in the local mirror (and in the store: a workdir bound
    after they were made uploads them now), and what an interrupted run left of its own output."""
    if (store := store_for(out)) is None:
        return
    for upstream in inputs.values():
        if upstream.manifest.get("streaming"):
            continue
        if not store.exists(store.rel(upstream.output_dir / MANIFEST)):
            store.push_tree(upstream.output_dir, last=MANIFEST)
        localize(upstream.output_dir, upstream.manifest)
    store.pull_tree(out, skip=MANIFEST)


def local_copy(path: Path) -> Path:
    """One file of a stage output, in the local mirror (downloaded when only the store holds it)."""
    store = store_for(path)
    return path if store is None else store.pull(path)


def localize(output_dir: Path, manifest: dict[str, Any]) -> None:
    """Every file a finished output's manifest lists, in the local mirror."""
    if (store := store_for(output_dir)) is not None:
        for entry in manifest["files"]:
            store.pull(output_dir / entry["path"])


def publish(out: Path, write_manifest: Callable[[], Any]) -> Any:
    """Upload a finished output: every file, then the manifest `write_manifest` writes locally."""
    store = store_for(out)
    if store is not None:
        store.push_tree(out)
    manifest = write_manifest()
    if store is not None:
        store.put(out / MANIFEST)
    return manifest


def discard_output(out: Path) -> None:
    """A stage output gone from the store too (a forced rerun must not find the old one there)."""
    store = store_for(out)
    if store is not None and store.listing(store.rel(out)):
        store.fs.rm(store.key(store.rel(out)), recursive=True)


def fetch_manifest(out: Path) -> dict[str, Any] | None:
    """A manifest only the store holds (another machine finished the stage): downloaded, its output
    directory this machine's mirror of it. None when the store has none (or there is no store)."""
    store = store_for(out)
    if store is None or not store.exists(store.rel(out / MANIFEST)):
        return None
    path = store.get(store.rel(out / MANIFEST), out / MANIFEST)
    manifest = json.loads(path.read_text())
    if manifest["output_dir"] != str(out):
        manifest["output_dir"] = str(out)
        path.write_text(json.dumps(manifest, indent=2, sort_keys=True, default=str))
    return manifest
