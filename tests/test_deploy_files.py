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
    from flows import pipeline

    spec = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    names = {d["name"] for d in spec["deployments"]}
    assert {"sample", "commoncrawl", "stage"} == names
    for d in spec["deployments"]:
        path, func = d["entrypoint"].split(":")
        assert (ROOT / path).exists() and path == "flows/pipeline.py"
        assert callable(getattr(pipeline, func))
        params = d.get("parameters", {})
        assert set(params) <= {"config", "config_path", "workdir", "only", "start", "until", "force"}
        # Every deployment's parameters make a valid config.
        pipeline.resolve_config(params.get("config"), str(ROOT / params["config_path"]) if "config_path" in params
                                else None)  # fmt: skip


def test_published_ports_bind_to_loopback_only():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    published = [p for service in compose["services"].values() for p in service.get("ports", [])]
    assert published and all(str(p).startswith("127.0.0.1:") for p in published)
