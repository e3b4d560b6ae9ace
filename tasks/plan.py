"""What a run will do, decided before Prefect starts: each stage's fingerprint and output directory,
and which stages a selection (`--only`, `--from`, `--until`, `--force`) runs.

No Prefect import here: the CLI checks a selection (and that the upstream outputs it needs exist)
in a fraction of a second, and reports a mistake in one line instead of after the server started.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from storage.errors import NotFound, UserError, did_you_mean
from storage.fingerprint import stage_fingerprint
from storage.objects import bind
from storage.section import config_json
from tasks.config import PipelineConfig
from tasks.registry import STAGE_SPECS, STAGES
from tasks.stage import StageInput, load_manifest
from tasks.stored import localize


class SelectionError(UserError):
    """A stage selection that cannot run (unknown stage, or an upstream output that is missing)."""


class MissingOutputError(NotFound):
    """A stage output this config needs is not in the workdir (the pipeline has not run with it)."""


@dataclass
class PlannedStage:
    stage: str
    fingerprint: str
    output_dir: Path
    parents: tuple[str, ...]


def plan(cfg: PipelineConfig, workdir: Path) -> list[PlannedStage]:
    """Fingerprint every stage: a change to one stage's config changes it and everything after.
    A config with `storage.artifacts` binds the workdir to that store (checked: usable, not another)."""
    bind(workdir, cfg.storage.artifacts)
    fingerprints: dict[str, str] = {}
    planned = []
    for spec in STAGE_SPECS:
        section = cfg.stage(spec.name)  # derived once: evaluate's derivation rebuilds every default section
        config = config_json(section)
        if (identity := spec.identity(section)) is not None:  # None: the key stays out
            config = {**config, "_inputs": identity}
        fp = stage_fingerprint(spec.name, spec.version, config, [fingerprints[p] for p in spec.inputs])
        fingerprints[spec.name] = fp
        planned.append(PlannedStage(spec.name, fp, workdir / "artifacts" / spec.name / fp, spec.inputs))
    return planned


def select(only: str | None, start: str | None, until: str | None, force: list[str]) -> tuple[list[str], set[str]]:
    """Stages to run, and those forced (a forced stage forces every later one: its output may change)."""
    for name in [only, start, until, *force]:
        if name is not None and name not in STAGES:
            raise SelectionError(f"unknown stage {name!r}{did_you_mean(name, STAGES)}; stages are: {', '.join(STAGES)}")
    first = STAGES.index(only or start or STAGES[0])
    last = STAGES.index(only or until or STAGES[-1])
    if only is not None and (start is not None or until is not None):
        raise SelectionError("--only runs one stage: it cannot be combined with --from or --until")
    if first > last:
        raise SelectionError(f"--from {STAGES[first]} comes after --until {STAGES[last]}")
    selected = list(STAGES[first : last + 1])
    forced_from = min((STAGES.index(f) for f in force), default=len(STAGES))
    return selected, {s for s in selected if STAGES.index(s) >= forced_from}


def check_upstream(planned: list[PlannedStage], selected: list[str]) -> None:
    """Every input of the first selected stages that the run will not compute must be in the cache."""
    by_stage = {p.stage: p for p in planned}
    first = STAGES.index(selected[0])
    for p in planned:
        if p.stage not in selected:
            continue
        for parent in p.parents:
            if STAGES.index(parent) < first and load_manifest(by_stage[parent].output_dir) is None:
                raise SelectionError(
                    f"{p.stage} needs the output of {parent} for this config, and it has not been "
                    f"computed yet: run without --only/--from first"
                )


def finished_outputs(cfg: PipelineConfig, workdir: Path, stages: tuple[str, ...]) -> dict[str, StageInput]:
    """The finished outputs of `stages` for this config, for work outside a run (evaluating a
    checkpoint, exporting): a clear error naming the first one that is missing."""
    outputs = {p.stage: p.output_dir for p in plan(cfg, workdir)}
    found = {}
    for stage in stages:
        if stage not in outputs:
            raise MissingOutputError(f"unknown stage {stage!r}; stages: {', '.join(outputs)}")
        if (manifest := load_manifest(outputs[stage])) is None:
            raise MissingOutputError(f"{stage} has no output for this config in {workdir}: run `crawl2model run` "
                                     "with the same --config/--set first")  # fmt: skip
        localize(outputs[stage], manifest)  # with a store: its files, downloaded once into the mirror
        found[stage] = StageInput.from_manifest(manifest)
    return found
