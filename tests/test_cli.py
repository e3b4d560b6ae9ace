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
