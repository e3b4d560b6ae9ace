"""Run one planned stage into a chosen directory, as its own process (the kill tests SIGKILL it).

    python tests/stage_subprocess.py WORKDIR OUT_DIR STAGE [dotted.key=value ...]

Upstream outputs are read from WORKDIR's complete stage directories, exactly as the flow passes them.
"""

from __future__ import annotations

import sys
from pathlib import Path


def main(workdir: str, out: str, stage: str, *overrides: str) -> None:
    from tasks.config import load_config
    from tasks.plan import plan
    from tasks.registry import SPEC_BY_NAME
    from tasks.stage import StageInput, execute_stage, load_manifest

    cfg = load_config(None, list(overrides))
    planned = {p.stage: p for p in plan(cfg, Path(workdir))}
    spec = SPEC_BY_NAME[stage]
    inputs = {s: StageInput.from_manifest(load_manifest(planned[s].output_dir)) for s in spec.inputs}
    print("START", flush=True)
    execute_stage(stage, spec.run, planned[stage].fingerprint, cfg.stage(stage), inputs, Path(out))
    print("DONE", flush=True)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    main(*sys.argv[1:])
