"""Which parts of an export are finished: an interrupted export resumes after the last one."""

from __future__ import annotations

from pathlib import Path

from storage.shards import atomic_write_json, read_json
from tasks.stage import shard_done_path


class ShardLedger:
    """Part `i` is done once `_state/shard-i.json` (written after its files) lists what it wrote."""

    def __init__(self, out: Path):
        self.out = out

    def done(self, index: int) -> bool:
        return shard_done_path(self.out, index).exists()

    def finish(self, index: int, files: list[Path]) -> None:
        atomic_write_json(shard_done_path(self.out, index), {"files": [str(f.relative_to(self.out)) for f in files]})

    def files(self) -> list[Path]:
        done = sorted(self.out.glob("_state/shard-*.json"))
        return [self.out / rel for marker in done for rel in read_json(marker)["files"]]
