from typer.testing import CliRunner

from flows.cli import app

runner = CliRunner()


def _run(*args: str):
    return runner.invoke(app, list(args))


def test_missing_config_file_exits_2_and_writes_nothing(tmp_path):
    work = tmp_path / "work"
    result = _run("run", "--config", str(tmp_path / "missing.yaml"), "--workdir", str(work))
    assert result.exit_code == 2
    assert "config file not found" in result.output
    assert not work.exists()


def test_unknown_stage_exits_2(tmp_path):
    work = tmp_path / "work"
    for flag in ("--only", "--from", "--until", "--force"):
        result = _run("run", flag, "tokenise", "--workdir", str(work))
        assert result.exit_code == 2, flag
        assert "unknown stage 'tokenise'" in result.output
    assert not work.exists()


def test_invalid_threshold_exits_2_with_key_path(tmp_path):
    work = tmp_path / "work"
    result = _run("run", "--set", "filter.gopher_quality.max_symbol_word_ratio=1.5", "--workdir", str(work))
    assert result.exit_code == 2
    assert "filter.gopher_quality.max_symbol_word_ratio" in result.output
    result = _run("run", "--set", "filter.gopher_quality.min_words", "--workdir", str(work))
    assert result.exit_code == 2 and "dotted.key=value" in result.output
    assert not work.exists()


def test_catalog_commands_without_a_catalog(tmp_path):
    for cmd in (["status"], ["artifacts"], ["sql", "select 1"]):
        result = _run(*cmd, "--workdir", str(tmp_path))
        assert result.exit_code == 1
        assert "no catalog" in result.output


def test_sample_command_writes_warc_and_ground_truth(tmp_path):
    result = _run("sample", "--out", str(tmp_path / "s"), "--pages", "200", "--planted", "4")
    assert result.exit_code == 0, result.output
    assert len(list((tmp_path / "s").glob("*.warc.gz"))) == 4
    assert (tmp_path / "s" / "ground_truth.jsonl").exists()


def _cli(*args: str, env_extra: dict | None = None):
    """The CLI as a user's script runs it: its own process, stdout and stderr pipes (not a terminal)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    env = {**os.environ, **(env_extra or {})}
    root = Path(__file__).resolve().parents[1]
    return subprocess.run([sys.executable, "-m", "flows.cli", *args], cwd=root, capture_output=True, text=True,
                          env=env, timeout=120)  # fmt: skip


def _one_error_line(done) -> str:
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert "Traceback" not in done.stderr and "temporary server" not in done.stdout + done.stderr, done.stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    return lines[0]


def test_selection_mistakes_are_one_line_before_prefect_starts(tmp_path):
    work = str(tmp_path / "work")
    cases = [
        (["--from", "tokenize", "--until", "filter"], "--from tokenize comes after --until filter"),
        (["--only", "filter", "--from", "extract"], "cannot be combined with --from or --until"),
        (["--only", "mix", "--until", "mix"], "cannot be combined"),
        (["--only", "dedup"], "dedup needs the output of filter"),
        (["--from", "train"], "train needs the output of tokenize"),
    ]
    for args, message in cases:
        done = _cli("run", "--workdir", work, *args)
        assert done.returncode == 2, (args, done.stderr)
        assert message in _one_error_line(done), args


def test_a_busy_workdir_is_refused_before_prefect_starts(tmp_path):
    import json
    import socket
    import subprocess
    import sys

    work = tmp_path / "work"
    work.mkdir()
    owner = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (work / ".lock").write_text(json.dumps({"pid": owner.pid, "host": socket.gethostname()}))
        done = _cli("run", "--workdir", str(work))
        assert done.returncode == 1
        assert f"in use by process {owner.pid}" in _one_error_line(done)
    finally:
        owner.kill()
        owner.wait()


def test_error_lines_are_never_wrapped_off_a_terminal(tmp_path):
    deep = tmp_path / ("a-rather-long-directory-name-" * 6) / ("and-another-one-" * 5)
    done = _cli(
        "run", "--config", str(deep / "missing.yaml"), "--workdir", str(tmp_path / "w"), env_extra={"COLUMNS": "80"}
    )
    assert done.returncode == 2
    assert f"config file not found: {deep / 'missing.yaml'}" in _one_error_line(done)


def test_an_experiment_table_puts_runs_in_columns_and_metrics_in_rows():
    from flows.cli import runs_as_columns

    columns = ["label", "run_id", "setting", "yardstick_bits_per_byte", "task.cloze.acc"]
    rows = [("raw-seed0", "run-aaaaaaaa1", "{}", 1.9, 0.3), ("full-seed0", "run-bbbbbbbb2", "{}", 1.8, 0.31)]
    heads, body = runs_as_columns(columns, rows)
    assert heads == ["metric", "raw-seed0 (run-aaaa)", "full-seed0 (run-bbbb)"]
    assert body == [("setting", "{}", "{}"), ("yardstick_bits_per_byte", 1.9, 1.8), ("task.cloze.acc", 0.3, 0.31)]


def test_compare_says_nothing_of_a_stage_the_other_run_did_not_record(tmp_path):
    """B ran a slice (an experiment variant from mix on): A's extract removals are not "B removed 0,
    B - A = -8" but blank."""
    from storage.catalog import Catalog, now
    from storage.compare import funnel_diff

    catalog = Catalog(tmp_path)

    def record(run: str, stage: str, fingerprint: str, removed_lang: int) -> None:
        manifest = {"counts": {"docs_in": 100, "docs_out": 100 - removed_lang, "docs_removed": removed_lang},
                    "metrics": [{"name": "removed.lang", "value": float(removed_lang), "step": None}],
                    "files": [], "output_dir": str(tmp_path / stage)}  # fmt: skip
        catalog.record_stage(run, stage, fingerprint, manifest, cache_hit=False, started_at=now(), parents=[])

    for run in ("run-a", "run-b"):
        catalog.start_run(run, "sample", {})
    record("run-a", "extract", "fp-extract", 8)
    record("run-a", "mix", "fp-mix-a", 0)
    record("run-b", "mix", "fp-mix-b", 0)
    rows = {row[0]: row for row in funnel_diff(catalog, "run-a", "run-b")}
    assert rows["extract removed: lang"] == ("extract removed: lang", None, 8.0, None, None)
