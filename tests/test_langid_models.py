"""A language-id model by pinned URL (GlotLID's label scheme) instead of lid.176: fetched once from a
server on 127.0.0.1, its labels mapped to the registry's codes, its scripts kept; a wrong pin is one
error line before any page is read."""

from __future__ import annotations

import hashlib
import random

import duckdb
import pytest
from typer.testing import CliRunner

from flows.cli import app
from tests.conftest import html_page, native_text, prose, write_warc
from tests.test_quality_sources import FileHost

# GlotLID's labels: ISO 639-3 and the script.
LABELS = {"en": "eng_Latn", "ja": "jpn_Jpan", "ru": "rus_Cyrl", "th": "tha_Thai"}


def _text(lang: str, offset: int) -> str:
    return prose(3, offset=offset * 3) if lang == "en" else native_text(lang, 600, offset=offset * 12)


@pytest.fixture(scope="module")
def glotlid_like(tmp_path_factory):
    """A small fastText model trained here with GlotLID's label scheme, served on 127.0.0.1."""
    from tasks.fasttext_training import train_and_save

    root = tmp_path_factory.mktemp("served")
    lines = []
    for lang, label in LABELS.items():
        for offset in range(6):
            for sentence in _text(lang, offset).replace("。", "。\n").replace(". ", ".\n").splitlines():
                if sentence.strip():
                    lines.append(f"__label__{label} {' '.join(sentence.split())}")
    random.Random(0).shuffle(lines)
    train = root / "train.txt"
    train.write_text("\n".join(lines) + "\n")
    train_and_save(train, root / "glotlid-like.bin", epoch=25, lr=0.5, minn=1, maxn=3, dim=16)
    server = FileHost(root)
    yield server, hashlib.sha256((root / "glotlid-like.bin").read_bytes()).hexdigest()
    server.close()


def _run(tmp_path, *sets: str):
    pages = [(f"https://{lang}.example/{i}.html", "200 OK", "text/html; charset=utf-8",
              html_page(_text(lang, 7 + i))) for lang in LABELS for i in range(2)]  # fmt: skip
    warc = write_warc(tmp_path / "pages.warc.gz", pages)
    args = ["run", "--workdir", str(tmp_path / "work"), "--until", "extract", "--set", f"acquire.paths=[{warc}]",
            "--set", "extract.languages=[en,ja,ru,th]", "--set", "extract.langid.download.retries=1"]  # fmt: skip
    return CliRunner().invoke(app, [*args, *(a for s in sets for a in ("--set", s))])


def test_a_glotlid_model_by_pinned_url_labels_pages_with_the_registrys_codes_and_scripts(tmp_path, glotlid_like):
    server, digest = glotlid_like
    url = f"{server.url}/glotlid-like.bin"
    before = server.gets["/glotlid-like.bin"]
    result = _run(tmp_path, f"extract.langid.model_url={url}", f"extract.langid.sha256={digest}")
    assert result.exit_code == 0, result.output
    rows = duckdb.sql(f"select url, lang, lang_script from read_parquet('{tmp_path}/work/artifacts/extract/*/docs/*"
                      ".parquet')").fetchall()  # fmt: skip
    assert len(rows) == 8
    for url_, lang, script in rows:
        expected = url_.split("//")[1].split(".")[0]
        assert (lang, script) == (expected, LABELS[expected].split("_")[1]), url_
    info = duckdb.sql(f"select * from read_json('{tmp_path}/work/artifacts/extract/*/manifest.json')").fetchall()
    assert digest in str(info)
    assert server.gets["/glotlid-like.bin"] == before + 1
    # Another extract setting re-extracts with the cached model: no second download.
    assert _run(tmp_path, f"extract.langid.model_url={url}", f"extract.langid.sha256={digest}",
                "extract.min_text_chars=150").exit_code == 0  # fmt: skip
    assert server.gets["/glotlid-like.bin"] == before + 1


def test_a_language_id_model_whose_digest_differs_from_its_pin_is_one_error_line(tmp_path, glotlid_like):
    server, digest = glotlid_like
    wrong = "f" * 64
    result = _run(tmp_path, f"extract.langid.model_url={server.url}/glotlid-like.bin", f"extract.langid.sha256={wrong}")
    assert result.exit_code != 0, result.output
    assert "error:" in result.output and wrong in result.output and "Traceback" not in result.output, result.output


def test_a_model_url_without_a_pin_is_refused_before_any_work(tmp_path, glotlid_like):
    server, _ = glotlid_like
    before = server.gets["/glotlid-like.bin"]
    result = _run(tmp_path, f"extract.langid.model_url={server.url}/glotlid-like.bin")
    assert result.exit_code == 2 and "sha256" in result.output
    assert server.gets["/glotlid-like.bin"] == before


def test_glotlid_labels_map_to_the_registry_and_keep_unknown_codes():
    from tasks.extract.langid import registry_code

    assert registry_code("cmn_Hani", "auto") == ("zh", "Hani")
    assert registry_code("jpn_Jpan", "glotlid") == ("ja", "Jpan")
    assert registry_code("srp_Latn", "auto")[1] == "Latn" and registry_code("srp_Cyrl", "auto")[1] == "Cyrl"
    assert registry_code("eng_Latn", "auto") == ("en", "Latn")
    assert registry_code("zza_Latn", "auto") == ("zza", "Latn")  # not in the registry: its own code
    assert registry_code("ja", "auto") == ("ja", None)  # lid.176's labels pass through
