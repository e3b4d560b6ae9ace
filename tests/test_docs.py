"""The manual: generated reference and results pages that follow the code, a strict MkDocs build,
and a README that stays the front page."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from benchmarks.pages import json_markdown, results_pages
from flows.reference import cli_reference, config_reference, errors_reference, stages_reference
from storage.section import flatten
from tasks.config import PipelineConfig
from tasks.registry import STAGE_SPECS

ROOT = Path(__file__).resolve().parents[1]


def test_every_config_key_is_in_the_reference_with_its_description():
    page = config_reference()
    for key in flatten(PipelineConfig().model_dump(mode="json")):
        parts = key.split(".")
        # dict-valued settings (mix.domain_rules.docs) are one row: some prefix of the key is listed
        assert any(f"| `{'.'.join(parts[:n])}` |" in page for n in range(len(parts), 0, -1)), key
    assert "| `filter.gopher_quality.min_words` | int \\| None |" in page
    assert "lid.176 language codes whose pages are kept" in page  # a Field(description=...)
    assert "| `runner.workers` | int | `2` | >= 1, <= 1024 |" in page


def test_stages_cli_and_errors_pages_follow_the_code():
    stages = stages_reference()
    assert all(f"| `{s.name}` |" in stages for s in STAGE_SPECS)
    cli = cli_reference()
    for command in ("## `run`", "## `experiment recipes`", "## `sql`", "`--set`", "`--only`"):
        assert command in cli, command
    errors = errors_reference()
    assert "| `ConfigError` | 2 |" in errors and "| `WorkdirBusy` | 1 |" in errors and "| 130 |" in errors


def test_results_pages_come_from_every_results_file():
    pages = results_pages()
    files = sorted((ROOT / "benchmarks" / "results").glob("*.json"))
    assert files and all(f"results/{f.stem}.md" in pages for f in files)
    assert all(f"({f.stem}.md)" in pages["results/index.md"] for f in files)
    newest_dedup = sorted(f for f in files if f.stem.endswith("-dedup"))[-1]
    assert pages["results/dedup.md"] == pages[f"results/{newest_dedup.stem}.md"]  # the latest under its plain name
    table = json_markdown({"docs": 10, "results": {"a": {"s": 1.5}, "b": {"s": 2.0, "rss": 3}}})
    assert "| docs | 10 |" in table and "| a | 1.5 |  |" in table and "| b | 2.0 | 3 |" in table


def test_the_manual_builds_strictly(tmp_path):
    env = {**os.environ, "SITE_DIR": str(tmp_path / "site")}
    done = subprocess.run(["bash", "docs/build"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    site = tmp_path / "site"
    config_page = (site / "reference" / "config" / "index.html").read_text()
    assert "filter.gopher_quality.min_words" in config_page
    assert (site / "results" / "2026-12-02-vm-dedup" / "index.html").exists()
    assert (site / "guides" / "languages" / "index.html").exists()


def test_the_readme_is_a_front_page_with_the_two_commands():
    readme = (ROOT / "README.md").read_text()
    first, second = readme.splitlines()[:2]
    assert "bash .ci/setup && .venv/bin/crawl2model run" in first
    test_command = "bash .ci/system-packages && .venv/bin/python -m pytest -q"
    assert test_command in second and test_command in (ROOT / ".ci" / "run").read_text()
    assert len(readme.encode()) <= 15 * 1024
