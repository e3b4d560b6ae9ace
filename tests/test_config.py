import os
from pathlib import Path

import pytest
import yaml

from tasks.config import ConfigError, PipelineConfig, load_config

ROOT = Path(__file__).resolve().parents[1]


def test_sample_yaml_matches_the_builtin_defaults():
    assert load_config(ROOT / "configs" / "sample.yaml") == PipelineConfig()


def test_set_overrides_are_parsed_and_validated():
    cfg = load_config(
        None,
        [
            "filter.gopher_quality.min_words=80",
            f'acquire.paths=["{ROOT}/configs/*.yaml"]',
            "mix.mode=temperature",
            "filter.gopher_quality.max_words=null",
        ],
    )
    assert cfg.filter.gopher_quality.min_words == 80
    assert cfg.filter.gopher_quality.max_words is None
    assert cfg.acquire.source == "paths" and cfg.acquire.paths == [f"{ROOT}/configs/*.yaml"]
    assert cfg.mix.mode == "temperature"


@pytest.mark.parametrize(
    ("overrides", "where"),
    [
        (["filter.gopher_quality.min_words=abc"], "filter.gopher_quality.min_words"),
        (["extract.min_lang_score=1.5"], "extract.min_lang_score"),
        (["dedup.threshold=0"], "dedup.threshold"),
        (["filtr.x=1"], "filtr"),
        (["train.n_embd=100", "train.n_head=3"], "train"),
        (["tokenize.unknown_key=1"], "tokenize.unknown_key"),
        (["mix.mode=weights", "mix.weights={}"], "mix"),
        (["filter.blocklist_file=/nonexistent/list"], "filter"),
        (["acquire.source=paths"], "acquire"),
        (['acquire.paths=["/nonexistent/*.warc.gz"]'], "acquire"),
        # Each section: a wrong type, a value out of range, an unknown key, a missing file.
        (["acquire.source=commoncrawl", "acquire.crawl=CC-2024"], "acquire.crawl"),
        (["acquire.source=commoncrawl"], "acquire"),
        (["acquire.download.retries=-1"], "acquire.download.retries"),
        (["acquire.download.concurrency=many"], "acquire.download.concurrency"),
        (["acquire.download.mirror=x"], "acquire.download.mirror"),
        (["acquire.download.storage_options={secret_key: x}"], "acquire.download"),
        (["extract.reader=selectolax"], "extract.reader"),
        (["extract.timeout_s=0"], "extract.timeout_s"),
        (["extract.lang=en"], "extract.lang"),
        (["filter.quality.lr=-1"], "filter.quality.lr"),
        (["filter.workers=0"], "filter.workers"),
        (["dedup.num_perm=8"], "dedup.num_perm"),
        (["dedup.shingles=5"], "dedup.shingles"),
        (["mix.topic_examples=/nonexistent.jsonl"], "mix"),
        (["tokenize.vocab_size=lots"], "tokenize.vocab_size"),
        (["train.max_steps=-5"], "train.max_steps"),
        (["train.optimizer=sgd"], "train.optimizer"),
        (["evaluate.max_new_tokens=0"], "evaluate.max_new_tokens"),
        (["evaluate.temperature=hot"], "evaluate.temperature"),
        (["evaluate.metric=acc"], "evaluate.metric"),
        (['evaluate.benchmarks=[{"name": "x", "format": "generic", "path": "/nonexistent.jsonl"}]'], "evaluate"),
    ],
)
def test_invalid_values_name_the_key(overrides, where):
    with pytest.raises(ConfigError) as e:
        load_config(None, overrides)
    assert where in str(e.value)


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("filter: [1, 2")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text(yaml.safe_dump(3))
    with pytest.raises(ConfigError, match="mapping"):
        load_config(scalar)


def test_a_file_named_by_the_config_is_part_of_its_stage_fingerprint(tmp_path):
    """Editing a blocklist (or a tokenizer model) in place must rerun its stage and those after it."""
    from tasks.plan import plan

    blocklist, tokenizer = tmp_path / "blocklist.txt", tmp_path / "tok.model"
    blocklist.write_text("spam.example\n")
    tokenizer.write_bytes(b"model")
    cfg = load_config(None, [f"filter.blocklist_file={blocklist}", f"tokenize.model_path={tokenizer}"])
    before = {p.stage: p.fingerprint for p in plan(cfg, tmp_path)}
    assert before == {p.stage: p.fingerprint for p in plan(cfg, tmp_path)}  # stable when nothing changed
    blocklist.write_text("spam.example\nmore-spam.example\n")
    after = {p.stage: p.fingerprint for p in plan(cfg, tmp_path)}
    # Extract runs the URL rules before trafilatura, so the blocklist is part of its fingerprint too.
    assert [s for s in before if before[s] != after[s]] == ["extract", "yardstick", "filter", "dedup", "mix",
                                                            "tokenize", "train", "sft", "dpo", "evaluate"]  # fmt: skip
    os.utime(tokenizer, ns=(1, 1))  # same bytes, touched: rebuilt rather than trusted
    touched = {p.stage: p.fingerprint for p in plan(cfg, tmp_path)}
    assert [s for s in after if after[s] != touched[s]] == ["tokenize", "train", "sft", "dpo", "evaluate"]
    plain = {p.stage: p.fingerprint for p in plan(load_config(None, []), tmp_path)}
    assert plain["acquire"] == before["acquire"] and plain["filter"] != before["filter"]


def test_extract_takes_filters_url_rules_unless_told_not_to():
    from tasks.config import load_config

    cfg = load_config(None, ['filter.banned_url_words=["spam"]', "filter.enabled=false"])
    assert cfg.stage("extract").url_rules.banned_url_words == ["spam"]  # filter off: extract still runs them
    assert cfg.stage("extract").url_rules.blocklist_domains == cfg.filter.blocklist_domains
    assert "extract.url_rules" not in cfg.stage("evaluate").config_changes  # derived, not a user's change
    assert load_config(None, ["extract.skip_url_blocked=false"]).stage("extract").url_rules is None
    nothing = ["filter.blocklist_domains=[]", "filter.banned_url_words=[]"]
    assert load_config(None, nothing).stage("extract").url_rules is None


def test_a_run_is_named_after_its_source_unless_named(tmp_path):
    warc = tmp_path / "a.warc.gz"
    warc.write_bytes(b"")
    assert load_config(None, [f'acquire.paths=["{warc}"]']).run_name() == "paths"
    assert load_config(None, []).run_name() == "sample"
    assert load_config(None, [f'acquire.paths=["{warc}"]', "name=my-crawl"]).run_name() == "my-crawl"


def test_input_files_are_declared_by_type_not_guessed_from_names(tmp_path):
    """A field is fingerprinted as a file because its type says so (ExistingFile, InputPath), in any
    position (optional, in a list, in a nested section); a str field named `path` is not."""
    from storage.section import ExistingFile, InputPath, Section, input_files

    class Inner(Section):
        source: InputPath = "https://example.com/corpus.jsonl"
        path: str = "just/a/name"

    class Outer(Section):
        model: ExistingFile | None = None
        corpora: list[ExistingFile] = []
        inner: Inner = Inner()

    a = tmp_path / "a.bin"
    a.write_text("x")
    cfg = Outer(model=str(a), corpora=[str(a)])
    assert input_files(cfg) == [str(a), str(a), "https://example.com/corpus.jsonl"]


def test_derived_settings_are_read_through_the_registry_not_written_into_sections():
    """extract's URL rules come from filter's section through the registry's `derive`: the user's
    extract section is left as given, and every reader gets the derived one from `cfg.stage`."""
    cfg = load_config(None, ['filter.blocklist_domains=["spam.example"]'])
    assert cfg.extract.url_rules is None
    assert cfg.stage("extract").url_rules.blocklist_domains == ["spam.example"]
    assert "object.__setattr__" not in (ROOT / "tasks" / "config.py").read_text()


def test_a_setting_whose_optional_package_is_missing_names_the_extra(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda n, *a: None if n in ("resiliparse", "prefect_ray") else real(n, *a)
    )
    for setting, extra in (("extract.extractor=resiliparse", "resiliparse"), ("runner.kind=ray", "ray")):
        with pytest.raises(ConfigError, match=rf"pip install 'crawl2model\[{extra}\]'"):
            load_config(None, [setting])
