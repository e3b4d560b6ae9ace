"""One error shape: every mistake is one `error:` line (and a hint) with its exit code, caught once in
the CLI; `--debug` shows the traceback; checks that need only the config run before the first stage."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from flows.cli import app
from storage.errors import Crawl2ModelError, NotFound, UserError, did_you_mean


def cli(*args: str):
    return CliRunner().invoke(app, list(args))


def test_a_mistyped_key_and_stage_get_a_did_you_mean(tmp_path):
    result = cli("run", "--workdir", str(tmp_path), "--set", "train.max_step=3", "--set", "tokenise.x=1")
    assert result.exit_code == 2, result.output
    assert "train.max_step: Extra inputs are not permitted (did you mean 'max_steps'?)" in result.output
    assert "tokenise: Extra inputs are not permitted (did you mean 'tokenize'?)" in result.output
    result = cli("run", "--workdir", str(tmp_path), "--only", "dedupe")
    assert result.exit_code == 2 and "unknown stage 'dedupe' (did you mean 'dedup'?)" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "catalog.duckdb").exists()


def test_a_missing_input_path_is_named_without_the_whole_section(tmp_path):
    result = cli("run", "--workdir", str(tmp_path), "--set", 'acquire.paths=["/nonexistent/*.warc.gz"]')
    assert result.exit_code == 2 and "no file matches ['/nonexistent/*.warc.gz']" in result.output
    assert "AcquireConfig(" not in result.output and len(result.output.splitlines()) == 2, result.output


def test_did_you_mean_stays_quiet_when_nothing_is_close():
    assert did_you_mean("xyzzy", ["acquire", "extract"]) == ""
    assert did_you_mean("extrct", ["acquire", "extract"]) == " (did you mean 'extract'?)"


def test_annealing_without_its_mixture_is_refused_before_any_stage(tmp_path):
    result = cli("run", "--workdir", str(tmp_path), "--set", "train.anneal.fraction=0.2")
    assert result.exit_code == 2 and "set mix.anneal" in result.output, result.output
    assert result.output.count("error:") == 1 and not (tmp_path / "artifacts").exists()


def test_a_missing_run_is_one_line_exit_1_and_debug_shows_the_exception(tmp_path):
    (tmp_path / "work").mkdir()
    result = cli("compare", "a", "b", "--workdir", str(tmp_path / "work"))
    assert result.exit_code == 1 and result.output.startswith("error: no catalog at"), result.output
    debug = cli("--debug", "compare", "a", "b", "--workdir", str(tmp_path / "work"))
    assert isinstance(debug.exception, Crawl2ModelError) and "error:" not in debug.output


@pytest.mark.parametrize(("error", "code"), [(UserError("bad value", hint="try 3"), 2), (NotFound("gone"), 1)])
def test_every_error_prints_its_line_hint_and_code(monkeypatch, error, code):
    import flows.cli

    def fail(**_):
        raise error

    monkeypatch.setattr("model.sizing.plan", fail)
    result = cli("plan", "--tokens", "1e9")
    assert result.exit_code == code
    assert f"error: {error}" in result.output
    assert ("hint: try 3" in result.output) == (error.hint is not None)
    assert flows.cli.ReportingGroup is type(flows.cli.typer.main.get_command(app))


def test_the_error_classes_of_the_project_share_one_base():
    """The classes a person sees derive from Crawl2ModelError, with the exit code of their kind."""
    from model.item_formats import FormatError
    from storage.lock import WorkdirBusy
    from tasks.checkpoints import CheckpointError
    from tasks.config import ConfigError
    from tasks.download import DownloadError
    from tasks.export.config import UnknownFormat
    from tasks.plan import MissingOutputError, SelectionError

    for cls in (ConfigError, SelectionError, FormatError, UnknownFormat):
        assert issubclass(cls, UserError) and cls.exit_code == 2
    for cls in (MissingOutputError, CheckpointError, WorkdirBusy, DownloadError):
        assert issubclass(cls, Crawl2ModelError) and cls.exit_code == 1
    assert DownloadError("x").hint == "finished files are kept; rerun to fetch the rest"


@pytest.mark.slow
def test_a_mistake_found_inside_a_stage_is_one_line_without_prefect_tracebacks(tmp_path):
    """Found only when tokenize sees the corpus: one error line and its hint, exit 2, no traceback from
    Prefect's task or flow logs either; the finished stages before it stay in the cache."""
    import subprocess
    import sys
    from pathlib import Path

    from tests.conftest import TINY_PIPELINE

    sets = [a for s in [*TINY_PIPELINE, "tokenize.vocab_size=200000", "tokenize.vocab_fallback=error"]
            for a in ("--set", s)]  # fmt: skip
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, "-m", "flows.cli", "run", "--workdir", str(tmp_path), "--until",
                           "tokenize", *sets], cwd=root, capture_output=True, text=True, timeout=600)  # fmt: skip
    output = done.stdout + done.stderr
    assert done.returncode == 2 and "Traceback" not in output, output[-3000:]
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert errors == [errors[0]] and "tokenize.vocab_size=200000 is more than this corpus can give" in errors[0]
    assert "hint: lower tokenize.vocab_size" in done.stderr
    assert list(tmp_path.glob("artifacts/mix/*/manifest.json"))


def test_the_ctrl_c_handler_is_the_runs_alone(tmp_path, monkeypatch):
    """While a run lasts SIGINT ends it with one line; after it, the caller's own handler is back (a
    process calling the CLI in-process, as these tests do, keeps its Ctrl-C)."""
    import signal

    import flows.cli

    during = []
    monkeypatch.setattr(
        flows.cli, "_run_pipeline", lambda *a, **k: during.append(signal.getsignal(signal.SIGINT)) or []
    )
    before = signal.getsignal(signal.SIGINT)
    result = cli("run", "--workdir", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert during == [flows.cli._stop_on_interrupt] and signal.getsignal(signal.SIGINT) is before
