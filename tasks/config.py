"""The pipeline's config: the run's name, how it runs, and one section per registered stage.

Each stage's config class lives beside the stage (`tasks/<stage>/config.py`); `PipelineConfig` is
composed from the registry, so a new stage's section appears here without touching this file. It is
validated once per run, when loaded; stages receive their section as an object.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, Field, ValidationError, create_model, model_validator

from storage.errors import UserError, did_you_mean
from storage.section import Section, flatten, needs_package, section_type
from tasks.registry import SPEC_BY_NAME, STAGE_SPECS


class RunnerConfig(Section):
    """How the flow executes, not what it computes (so none of it is in any stage fingerprint).

    Per-shard work: `local` runs each stage's own process pool (`<stage>.workers`); `dask` makes every
    shard a Prefect task on prefect-dask's DaskTaskRunner: a local process cluster of `workers`
    processes, or the scheduler at `address` (then the cluster's workers); `ray` the same on
    prefect-ray's RayTaskRunner: a local Ray instance of `workers` CPUs, or the cluster at `address`
    (`ray://head:10001`, or `auto` on a node of a running cluster). Network stages (acquire)
    are retried by Prefect `network_retries` times, `network_retry_delay_s` doubling each time
    (with jitter), on top of the downloader's own per-request retries; a retry resumes from the files
    already verified."""

    kind: Literal["local", "dask", "ray"] = "local"
    workers: int = Field(2, ge=1, le=1024, description="dask: processes of the local cluster; ray: its CPUs")
    address: str | None = Field(None, description="a running cluster: dask's scheduler (tcp://scheduler:8786) or "
                                "ray's head (ray://head:10001, or auto)")  # fmt: skip
    shard_retries: int = Field(0, ge=0, le=10, description="dask, ray: Prefect retries of a failed shard task")
    network_retries: int = Field(2, ge=0, le=20, description="Prefect retries of the acquire task")
    network_retry_delay_s: float = Field(30.0, gt=0.0, le=3600.0, description="first retry delay; doubles")

    @model_validator(mode="after")
    def _runner_installed(self) -> RunnerConfig:
        if self.kind == "ray":
            needs_package("prefect_ray", "runner.kind=ray", "ray")
        return self


class StorageConfig(Section):
    """Where the workdir's stage outputs live (none of it is in any stage fingerprint). By default in
    the workdir itself; with `artifacts`, in object storage: every shard, state file and manifest is
    uploaded there (a shard once complete, a manifest last), shard tasks run shared-nothing (each
    pulls what it reads and uploads what it writes), and a fresh machine resumes from it. The workdir
    keeps the DuckDB catalog, the lock and a local mirror of what this machine read or wrote; the
    catalog's views read the store's Parquet for files the mirror lacks. A workdir stays bound to
    the URL it was first run with (`storage.json` in it). Credentials come from the environment only."""

    artifacts: str | None = Field(None, description="an fsspec URL for the stage outputs: s3://bucket/prefix "
                                  "(the s3 extra), gs://, az://, file:///path; unset: in the workdir")  # fmt: skip

    @model_validator(mode="after")
    def _store_usable(self) -> StorageConfig:
        if self.artifacts is None:
            return self
        if "://" not in self.artifacts:
            raise ValueError(f"storage.artifacts={self.artifacts!r}: expected a URL (s3://bucket/prefix, "
                             "file:///path); a local path is the workdir's own job (--workdir)")  # fmt: skip
        if self.artifacts.split("://", 1)[0] in ("s3", "s3a"):
            needs_package("s3fs", "storage.artifacts=s3://...", "s3")
        return self


# Settings the pipeline fills from other sections (declared by each stage in the registry): not the user's.
DERIVED = {spec.name: spec.derived for spec in STAGE_SPECS if spec.derived}


def without_derived(config_json: dict[str, Any]) -> dict[str, Any]:
    """A stored config less the settings the pipeline fills from other sections (see DERIVED)."""
    return {section: ({k: v for k, v in values.items() if k not in DERIVED.get(section, ())}
                      if isinstance(values, dict) else values) for section, values in config_json.items()}  # fmt: skip


class PipelineBase(Section):
    name: str = Field("sample", description="the run's name in the catalog (unset: acquire.source)")
    runner: RunnerConfig = Field(default_factory=RunnerConfig)
    storage: StorageConfig = Field(default_factory=StorageConfig)

    def run_name(self) -> str:
        """The name given, else the source: a run on local WARC files is not called "sample" in `status`."""
        return self.name if "name" in self.model_fields_set else self.acquire.source

    @model_validator(mode="after")
    def _annealing_has_a_mixture(self) -> PipelineBase:
        # Known from the config alone: an annealing phase reads the split mix.anneal makes.
        train, mix = getattr(self, "train", None), getattr(self, "mix", None)
        if train is not None and mix is not None and train.anneal.fraction > 0 and mix.anneal is None:
            raise ValueError(f"train.anneal.fraction={train.anneal.fraction} trains its last steps on the "
                             "anneal split, which mix.anneal makes: set mix.anneal "
                             "(e.g. --set mix.anneal.min_bucket=10)")  # fmt: skip
        return self

    @model_validator(mode="after")
    def _dpo_has_sft(self) -> PipelineBase:
        # DPO tunes the chat model sft trains.
        sft, dpo = getattr(self, "sft", None), getattr(self, "dpo", None)
        if dpo is not None and sft is not None and dpo.enabled and not sft.enabled:
            raise ValueError("dpo.enabled=true needs sft.enabled=true (DPO starts from the chat model sft trains)")
        return self

    def changes_from_defaults(self) -> dict[str, Any]:
        """{dotted key: value} for every stage setting that differs from its default (derived ones aside)."""
        changes: dict[str, Any] = {}
        for spec in STAGE_SPECS:
            section = getattr(self, spec.name)
            current, default = flatten(section.model_dump(mode="json")), flatten(spec.config().model_dump(mode="json"))
            changes |= {f"{spec.name}.{k}": v for k, v in current.items()
                        if default.get(k) != v and k.split(".")[0] not in DERIVED.get(spec.name, ())}  # fmt: skip
        return changes

    def stage(self, name: str) -> Section:
        """The stage's section as the stage sees it: with the settings it derives from other sections
        (the registry's `derive`) applied. Every reader of a stage's settings goes through here."""
        section, spec = getattr(self, name), SPEC_BY_NAME[name]
        return section.model_copy(update=spec.derive(self)) if spec.derive else section


# One field per registered stage, named after it, defaulting to that stage's config class.
PipelineConfig = create_model(
    "PipelineConfig",
    __base__=PipelineBase,
    __module__=__name__,
    **{spec.name: (spec.config, Field(default_factory=spec.config)) for spec in STAGE_SPECS},
)


class ConfigError(UserError):
    """A config problem, reported with the key path and the reason before any work starts."""


def _parse_override(item: str) -> tuple[list[str], Any]:
    if "=" not in item:
        raise ConfigError(f"--set {item!r}: expected dotted.key=value")
    key, raw = item.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as e:
        raise ConfigError(f"--set {key}: cannot parse value {raw!r}: {e}") from e
    return key.strip().split("."), value


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    for item in overrides:
        path, value = _parse_override(item)
        node = data
        for part in path[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {'.'.join(path)}: {part} is not a section")
        node[path[-1]] = value
    return data


def _known_keys(loc: tuple) -> list[str]:
    """The keys the section at `loc` (a validation error's location, its last part the bad key) accepts."""
    model: Any = PipelineConfig
    for part in loc[:-1]:
        field = getattr(model, "model_fields", {}).get(part)
        if field is None:
            return []
        model = section_type(field.annotation)
    return list(getattr(model, "model_fields", {}))


def format_validation_error(err: ValidationError) -> str:
    lines = []
    for e in err.errors():
        where = ".".join(str(p) for p in e["loc"]) or "(top level)"
        hint = did_you_mean(str(e["loc"][-1]), _known_keys(e["loc"])) if e["type"] == "extra_forbidden" else ""
        # The value given, when it is one value: a whole section (a model validator's error) is not repeated.
        shown = "input" in e and e["loc"] and not isinstance(e["input"], BaseModel | dict)
        got = f" (got {e['input']!r})" if shown else ""
        lines.append(f"  {where}: {e['msg']}{hint}{got}")
    return "invalid config:\n" + "\n".join(lines)


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> PipelineConfig:
    """Load YAML (or the sample defaults when path is None), apply --set overrides, validate."""
    data: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config file not found: {p}")
        try:
            data = yaml.safe_load(p.read_text()) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"config file {p} is not valid YAML: {e}") from e
        if not isinstance(data, dict):
            raise ConfigError(f"config file {p} must hold a mapping of sections")
    data = apply_overrides(data, overrides or [])
    try:
        return PipelineConfig.model_validate(data)
    except ValidationError as e:
        raise ConfigError(format_validation_error(e)) from e
