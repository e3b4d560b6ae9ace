"""The deployment files parse and point at real code (no Docker engine or server here to run them)."""

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def test_compose_has_server_postgres_and_worker():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert {"postgres", "server", "worker"} <= set(compose["services"])
    server_env = compose["services"]["server"]["environment"]
    assert server_env["PREFECT_API_DATABASE_CONNECTION_URL"].startswith("postgresql+asyncpg://")
    assert "--pool crawl2model" in compose["services"]["worker"]["command"]


def test_prefect_yaml_entrypoints_exist():
    import importlib
    import inspect

    from flows import pipeline

    spec = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    names = {d["name"] for d in spec["deployments"]}
    assert {"sample", "commoncrawl", "stage", "export"} == names
    for d in spec["deployments"]:
        path, func = d["entrypoint"].split(":")
        assert (ROOT / path).exists()
        flow_fn = getattr(importlib.import_module(path.removesuffix(".py").replace("/", ".")), func)
        params = d.get("parameters", {})
        assert set(params) <= set(inspect.signature(flow_fn.fn).parameters), d["name"]
        # Every deployment's parameters make a valid config.
        pipeline.resolve_config(params.get("config"), str(ROOT / params["config_path"]) if "config_path" in params
                                else None)  # fmt: skip


def test_published_ports_bind_to_loopback_only():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    published = [p for service in compose["services"].values() for p in service.get("ports", [])]
    assert published and all(str(p).startswith("127.0.0.1:") for p in published)


def test_compose_file_validates_with_a_real_compose_implementation(tmp_path):
    """`docker-compose config` (Debian's docker-compose, no engine needed) accepts the file with the Dask
    profile and with the Ray one; the auth string comes from the env file into the server, the worker and
    the Dask or Ray workers."""
    import shutil
    import subprocess

    compose = shutil.which("docker-compose")
    assert compose, "docker-compose is missing: .ci/system-packages installs Debian's docker-compose"
    shutil.copy(ROOT / "docker-compose.yml", tmp_path / "docker-compose.yml")
    (tmp_path / "Dockerfile").write_text((ROOT / "Dockerfile").read_text())
    args = [compose, "--profile", "dask", "config"]
    missing = subprocess.run(args, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert missing.returncode != 0 and "prefect-auth.env" in missing.stderr  # no env file: a clear error
    env = (ROOT / "prefect-auth.env.example").read_text().replace("admin:change-me", "ci:s3cret")
    (tmp_path / "prefect-auth.env").write_text(env)
    out = subprocess.run(args, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    services = yaml.safe_load(out.stdout)["services"]
    # `config` lists every service with its profiles (this docker-compose does not filter by them).
    assert {"postgres", "server", "worker", "dask-scheduler", "dask-worker"} <= set(services)
    assert services["server"]["environment"]["PREFECT_SERVER_API_AUTH_STRING"] == "ci:s3cret"
    for name in ("worker", "dask-worker"):
        assert services[name]["environment"]["PREFECT_API_AUTH_STRING"] == "ci:s3cret"
        assert "work:/work:rw" in services[name]["volumes"]  # the shared workdir
    assert "tcp://dask-scheduler:8786" in services["dask-worker"]["command"]
    ray = subprocess.run([compose, "--profile", "ray", "config"], cwd=tmp_path, capture_output=True, text=True,
                         timeout=60)  # fmt: skip
    assert ray.returncode == 0, ray.stderr
    services = yaml.safe_load(ray.stdout)["services"]
    assert services["ray-head"]["profiles"] == services["ray-worker"]["profiles"] == ["ray"]
    for name in ("ray-head", "ray-worker"):  # Ray's workers run the shard tasks: the auth string, the workdir
        assert services[name]["environment"]["PREFECT_API_AUTH_STRING"] == "ci:s3cret"
        assert "work:/work:rw" in services[name]["volumes"]
    assert "--address ray-head:6379" in services["ray-worker"]["command"]


def test_the_stage_deployment_applies_its_changes_over_the_latest_run(tmp_path):
    """`repeat: latest` (the stage deployment's default): the changed values go over the config the
    latest completed run had, derived settings derived again; without a run, one clear error."""
    import pytest

    from flows import pipeline
    from storage.catalog import Catalog
    from storage.errors import NotFound
    from storage.section import config_json
    from tasks.config import load_config

    spec = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    stage = next(d for d in spec["deployments"] if d["name"] == "stage")
    assert stage["parameters"] == {"repeat": "latest"}  # no default selection: `only` works on its own
    with pytest.raises(NotFound, match="no catalog"):
        pipeline.repeated_config(tmp_path, "latest")
    earlier = load_config(None, ["tokenize.seq_len=32", "train.n_layer=1", "evaluate.benchmarks=[]"])
    catalog = Catalog(tmp_path)
    catalog.start_run("run-1", "sample", config_json(earlier))
    catalog.finish_run("run-1", "completed")
    base = pipeline.repeated_config(tmp_path, "latest")
    cfg = pipeline.resolve_config({"filter": {"gopher_quality": {"min_words": 80}}}, None, base)
    assert (cfg.tokenize.seq_len, cfg.train.n_layer, cfg.filter.gopher_quality.min_words) == (32, 1, 80)
    assert "eval_benchmarks" not in base["tokenize"] and "config_changes" not in base["evaluate"]
    assert cfg.stage("evaluate").config_changes["filter.gopher_quality.min_words"] == 80


def test_changes_validated_by_prefect_into_a_config_still_go_over_the_base_alone(tmp_path):
    """Prefect turns a deployment's `config` dict into a PipelineConfig (the parameter's type): its
    defaults must not overwrite the repeated run's or the YAML file's values."""
    from flows import pipeline
    from tasks.config import PipelineConfig

    base = {"acquire": {"sample_pages": 300}, "train": {"n_layer": 1}}
    as_prefect_gives_it = PipelineConfig.model_validate({"filter": {"gopher_quality": {"min_words": 80}}})
    cfg = pipeline.resolve_config(as_prefect_gives_it, None, base)
    assert (cfg.acquire.sample_pages, cfg.train.n_layer, cfg.filter.gopher_quality.min_words) == (300, 1, 80)
    from_yaml = pipeline.resolve_config(as_prefect_gives_it, str(ROOT / "configs" / "commoncrawl.yaml"))
    assert from_yaml.acquire.source == "commoncrawl" and from_yaml.filter.gopher_quality.min_words == 80


def test_the_slurm_recipe_is_valid_bash_and_its_config_loads():
    """configs/slurm: a Ray cluster over the allocation's nodes, the flow on the head joining it."""
    import subprocess

    from tasks.config import load_config

    script = ROOT / "configs" / "slurm" / "ray.sbatch"
    assert subprocess.run(["bash", "-n", str(script)], capture_output=True).returncode == 0
    text = script.read_text()
    assert "#SBATCH --nodes=" in text and "ray start --head" not in text  # started through $RAY
    assert '"$RAY" start --head' in text and '--address="$HEAD:$PORT"' in text
    default_config = text.split("CONFIG=${CONFIG:-")[1].split("}")[0]
    cfg = load_config(ROOT / default_config)
    assert cfg.runner.kind == "ray" and cfg.runner.address == "auto" and cfg.acquire.source == "commoncrawl"
