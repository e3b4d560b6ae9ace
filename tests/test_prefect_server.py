"""The Prefect way, for real: `crawl2model serve` (server on a free loopback port, work pool,
deployments, worker), `prefect deployment run` of the sample pipeline, then of the stage deployment
with a changed filter threshold; checked through the Prefect API and the catalog."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest

from storage.catalog import Catalog
from tests.conftest import TINY_PIPELINE

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]
FINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _config(extra: list[str]) -> dict:
    """The tiny pipeline's --set values as the nested dict a deployment parameter takes."""
    out: dict = {}
    for item in [*TINY_PIPELINE, "train.max_steps=40", "evaluate.max_new_tokens=4", *extra]:
        key, value = item.split("=", 1)
        *parents, leaf = key.split(".")
        node = out
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = json.loads(value)
    return out


def _run_deployment(env: dict, name: str, params: dict) -> str:
    args = [str(Path(sys.executable).with_name("prefect")), "deployment", "run", name]
    for key, value in params.items():
        args += ["--param", f"{key}={json.dumps(value) if not isinstance(value, str) else value}"]
    out = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    return re.search(r"UUID: ([0-9a-f-]{36})", out.stdout).group(1)


def _wait(api: str, flow_run_id: str, timeout_s: float = 600) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        run = httpx.get(f"{api}/flow_runs/{flow_run_id}", timeout=10).json()
        if run["state"]["type"] in FINAL:
            return run
        time.sleep(2)
    raise TimeoutError(f"flow run {flow_run_id} did not finish")


def _task_names(api: str, flow_run_id: str) -> list[str]:
    body = {"flow_runs": {"id": {"any_": [flow_run_id]}}}
    return [t["name"] for t in httpx.post(f"{api}/task_runs/filter", json=body, timeout=10).json()]


# Where the browser test keeps its screenshot (CI uploads or inspects it; git ignores it).
SCREENSHOTS = Path(os.environ.get("CRAWL2MODEL_TEST_ARTIFACTS", ROOT / "test-artifacts"))
CHROMIUM_FLAGS = [
    "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
    # No network here: without these, Chromium keeps trying (and failing) to reach Google's hosts.
    "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-quic",
]  # fmt: skip


def _render_task_runs(url: str, expected: list[str], screenshot: Path) -> str:
    """Open the flow run page in headless Chromium (Debian's package, driven by Playwright), switch to
    its Task Runs tab, wait for the expected names, keep a screenshot; return the page's text."""
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "Chromium is missing: .ci/system-packages installs Debian's chromium"
    screenshot.parent.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(url)
            page.locator("#task-runs").click()  # the UI's tab ids
            for name in expected:
                page.get_by_text(name, exact=True).first.wait_for(timeout=60_000)
            page.screenshot(path=str(screenshot), full_page=True)
            return page.inner_text("body")
        finally:
            browser.close()


def test_deployments_run_through_a_real_server_and_worker(tmp_path):
    port, home, work = _free_port(), tmp_path / "prefect-home", tmp_path / "work"
    api = f"http://127.0.0.1:{port}/api"
    env = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_API_URL": api, "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    log = open(tmp_path / "serve.log", "w")  # noqa: SIM115 - read while the server runs
    # Started as a script starts it: in the background of a non-interactive shell (SIGINT ignored),
    # pointed at a workdir; the deployments below name none.
    exe = Path(sys.executable).with_name("crawl2model")
    script = f"'{exe}' serve --port {port} --workdir '{work}' & echo $! > '{tmp_path / 'serve.pid'}'; wait"
    shell = subprocess.Popen(["bash", "-c", script], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                             start_new_session=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 240
        while "Prefect UI:" not in (tmp_path / "serve.log").read_text():
            assert shell.poll() is None and time.monotonic() < deadline, (tmp_path / "serve.log").read_text()[-3000:]
            time.sleep(1)
        deployments = httpx.post(f"{api}/deployments/filter", json={}, timeout=10).json()
        assert {d["name"] for d in deployments} == {"sample", "commoncrawl", "stage", "export"}

        first = _run_deployment(env, "crawl2model/sample", {"config": _config([])})
        run = _wait(api, first)
        assert run["state"]["type"] == "COMPLETED", (tmp_path / "serve.log").read_text()[-4000:]
        names = _task_names(api, first)
        assert {n.split("-")[0] for n in names} == {"acquire", "extract", "yardstick", "filter", "dedup", "mix",
                                                     "tokenize", "train", "sft", "dpo", "evaluate"}  # fmt: skip
        body = {"flow_runs": {"id": {"any_": [first]}}}
        keys = {a["key"] for a in httpx.post(f"{api}/artifacts/filter", json=body, timeout=10).json()}
        assert {"filter-summary", "dedup-summary", "report", "evaluation"} <= keys
        ui = httpx.get(f"http://127.0.0.1:{port}/", timeout=10)  # the dashboard is served on the same port
        assert ui.status_code == 200 and "<html" in ui.text.lower()
        # The flow run page in a real browser: every stage's task run is listed, Completed.
        page = _render_task_runs(f"http://127.0.0.1:{port}/runs/flow-run/{first}", names,
                                 SCREENSHOTS / "flow-run.png")  # fmt: skip
        assert all(name in page for name in names) and f"{len(names)} Task runs" in page, page[:2000]
        assert SCREENSHOTS.joinpath("flow-run.png").stat().st_size > 10_000

        # The stage deployment repeats the latest run with only the change given: its config is that run's
        # (the tiny pipeline), so the stages before filter are cache hits and filter onwards rerun.
        only_the_change = {"filter": {"gopher_quality": {"min_words": 80}}}
        second = _run_deployment(env, "crawl2model/stage", {"config": only_the_change})
        assert _wait(api, second)["state"]["type"] == "COMPLETED", (tmp_path / "serve.log").read_text()[-4000:]
        assert {n.split("-")[0] for n in _task_names(api, second)} == {n.split("-")[0] for n in names}
        _, rows = Catalog(work).query(
            "select stage, cache_hit from stage_runs where run_id = (select run_id from runs order by started_at "
            "desc limit 1)"
        )
        rerun = ["filter", "dedup", "mix", "tokenize", "train", "sft", "dpo", "evaluate"]
        assert dict(rows) == dict.fromkeys(["acquire", "extract", "yardstick"], True) | dict.fromkeys(rerun, False)
        changed = _config(["filter.gopher_quality.min_words=80"])
        _, rows = Catalog(work).query("select count(*) from runs where status = 'completed'")
        assert rows[0][0] == 2
        # The export deployment after a run: the second run's token shards as a Megatron dataset.
        exported = tmp_path / "megatron"
        third = _run_deployment(env, "crawl2model-export/export", {"config": changed, "out": str(exported)})
        assert _wait(api, third)["state"]["type"] == "COMPLETED", (tmp_path / "serve.log").read_text()[-4000:]
        assert (exported / "export.json").exists() and (exported / "train_text_document.idx").exists()
        _, rows = Catalog(work).query("select format, stage from exports")
        assert rows == [("megatron", "tokenize")]
        # SIGTERM to `serve` alone (as `kill PID` does): server and worker stop, exit 0, within 10 s.
        serve = psutil.Process(int((tmp_path / "serve.pid").read_text()))
        children = serve.children(recursive=True)
        assert len(children) >= 2
        started = time.monotonic()
        serve.send_signal(signal.SIGTERM)
        assert shell.wait(timeout=15) == 0 and time.monotonic() - started < 10
        _, alive = psutil.wait_procs(children, timeout=1)
        assert not [p for p in alive if p.status() != psutil.STATUS_ZOMBIE], alive
    finally:
        if shell.poll() is None:
            os.killpg(shell.pid, signal.SIGKILL)
        log.close()
