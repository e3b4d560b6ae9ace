"""The multilingual sample (acquire.sample_languages): nine languages' articles made the same way, each
language's planted cases caught at their stage, and survival within 15 points of English."""

from __future__ import annotations

import glob

import pytest

from tests.conftest import invoke

LANGUAGES = ["en", "zh", "ja", "th", "ar", "ru", "ko", "hi", "es"]


@pytest.fixture(scope="module")
def scored(tmp_path_factory):
    from tasks.sample.ground_truth import load_ground_truth, removals
    from tasks.sample.language_scores import survival_by_language

    workdir = tmp_path_factory.mktemp("multilingual")
    invoke("run", "--config", "configs/sample-multilingual.yaml", "--workdir", str(workdir), "--until", "dedup",
           "--set", "acquire.planted_per_case=12", "--set", "acquire.sample_articles=40",
           "--set", "dedup.quality_check_docs=0")  # fmt: skip
    truth = load_ground_truth(glob.glob(f"{workdir}/artifacts/acquire/*/ground_truth.jsonl")[0])
    removed = removals(glob.glob(f"{workdir}/artifacts/*/*/removed/*.parquet"))
    return workdir, truth, removed, survival_by_language(truth, removed)


@pytest.mark.slow
def test_every_language_has_articles_and_planted_cases(scored):
    _, truth, _, by_language = scored
    assert sorted(by_language) == sorted(LANGUAGES)
    assert {r.get("lang") for r in truth if r["url"].startswith("https://ar.")} == {"ar"}
    for lang, s in by_language.items():
        assert s["articles"] == 40, lang
        assert {case: c["planted"] for case, c in s["planted"].items()} == {
            "boilerplate_only": 2, "near_duplicate": 2, "spam": 2}, lang  # fmt: skip


@pytest.mark.slow
def test_each_languages_planted_cases_are_caught_at_their_stage(scored):
    _, _, _, by_language = scored
    for lang, s in by_language.items():
        for case, c in s["planted"].items():
            assert c["caught"] == c["planted"], (lang, case, c)


@pytest.mark.slow
def test_chinese_and_japanese_articles_survive_the_default_filters_within_15_points_of_english(scored):
    _, _, _, by_language = scored
    english = by_language["en"]["survival"]["filter"]["share"]
    assert english >= 0.9
    for lang in LANGUAGES:
        share = by_language[lang]["survival"]["filter"]["share"]
        assert abs(share - english) <= 0.15, (lang, share, english)


@pytest.mark.slow
def test_thai_articles_are_counted_in_their_own_words(scored):
    import duckdb

    workdir, truth, _, _ = scored
    th_ids = [r["doc_id"] for r in truth if r.get("lang") == "th" and r["case"] == "original"]
    rows = duckdb.sql(
        f"select text, n_words from read_parquet('{workdir}/artifacts/filter/*/docs/*.parquet') "
        f"where doc_id in ({', '.join(repr(d) for d in th_ids)})"
    ).fetchall()
    assert len(rows) >= 35
    for text, n_words in rows:
        assert n_words > 5 * len(text.split())  # Thai puts spaces between sentences, not words


@pytest.mark.slow
def test_calibrate_derives_thresholds_that_remove_the_share_english_loses(scored, tmp_path):
    import numpy as np
    import yaml

    from tasks.calibrate import calibrate, crawl_documents

    workdir = scored[0]
    out = tmp_path / "calibrated.yaml"
    printed = invoke(
        "calibrate", "--workdir", str(workdir), "--out", str(out), "--languages", "ja,zh,th,hi", "--min-docs", "30"
    )
    assert "ja:" in printed and out.with_suffix(".png").stat().st_size > 10_000
    per_language = yaml.safe_load(out.read_text())["filter"]["per_language"]
    assert set(per_language) == {"ja", "zh", "th", "hi"}
    # The defining property: each threshold removes (about) the share of the language's documents that
    # the English default removes of English's; ties at a bound can only make it remove fewer.
    for c in calibrate(crawl_documents(workdir, 2000), {}, ["ja", "zh", "th", "hi"], 30, 2000):
        exact = 0
        for section, values in c.thresholds.items():
            for name, threshold in values.items():
                x, q = np.asarray(c.values[f"{section}.{name}"]), c.shares[f"{section}.{name}"]
                removed = float(np.mean(x < threshold) if name.startswith("min_") else np.mean(x > threshold))
                assert removed <= q + 1.5 / len(x), (c.lang, name, removed, q)
                exact += abs(removed - q) <= 1.5 / len(x)
        assert exact >= 1, c
    # The file is a config: a run takes it as it is.
    invoke("run", "--config", str(out), "--workdir", str(tmp_path / "w"), "--until", "extract",
           "--set", "acquire.sample_pages=300", "--set", "acquire.planted_per_case=4")  # fmt: skip


def test_calibrate_with_reference_files_per_language(tmp_path):
    import json

    import yaml

    from tests.conftest import native_text, prose

    ja = tmp_path / "ja.jsonl"
    ja.write_text("".join(json.dumps({"text": native_text("ja", 500, offset=i * 5)}) + "\n" for i in range(60)))
    en = tmp_path / "en.jsonl"
    en.write_text("".join(json.dumps({"text": prose(2, offset=i * 2)}) + "\n" for i in range(60)))
    out = tmp_path / "cal.yaml"
    printed = invoke("calibrate", "--workdir", str(tmp_path / "none"), "--reference", f"ja={ja}",
                     "--reference", f"en={en}", "--out", str(out))  # fmt: skip
    assert "ja: 60 documents (reference vs English reference)" in printed
    assert "ja" in (yaml.safe_load(out.read_text())["filter"]["per_language"] or {"ja": None})


def test_calibrate_without_a_crawl_or_references_is_one_error_line(tmp_path):
    from typer.testing import CliRunner

    from flows.cli import app

    result = CliRunner().invoke(app, ["calibrate", "--workdir", str(tmp_path / "none")])
    assert result.exit_code == 2 and "error:" in result.output and "Traceback" not in result.output


@pytest.mark.slow
def test_explain_sets_a_removal_beside_the_rules_rate_in_the_other_languages(scored):
    import json

    workdir, truth, _, _ = scored
    spam = next(r["url"] for r in truth if r.get("lang") == "ja" and r["case"] == "spam")
    (history,) = json.loads(invoke("explain", spam, "--workdir", str(workdir), "--json"))
    rates = history["stages"][-1]["removed"]["by_language"]
    assert rates["language"] == "ja" and 1 <= rates["removed"] <= 4 and not rates["flag"]
    assert rates["others_docs"] > 1000

    # English thresholds for every language: the stop-word rule removes the Japanese articles, and
    # explain says that it removes far more Japanese than anything else.
    invoke("run", "--config", "configs/sample-multilingual.yaml", "--workdir", str(workdir), "--until", "filter",
           "--set", "acquire.planted_per_case=12", "--set", "acquire.sample_articles=40",
           "--set", "filter.language_defaults=none")  # fmt: skip
    article = next(r["url"] for r in truth if r.get("lang") == "ja" and r["case"] == "original")
    (history,) = json.loads(invoke("explain", article, "--workdir", str(workdir), "--json"))
    removed = history["stages"][-1]["removed"]
    assert removed["by_language"]["flag"] and removed["by_language"]["share"] > 0.5, removed
    assert "flagged" in invoke("explain", article, "--workdir", str(workdir))


def test_hindi_vowel_signs_stay_in_their_words():
    from tasks.filter.rules.gopher import repetition_words
    from tasks.text_keys import normalize

    text = "किताब में लिखी हुई कहानी"
    assert repetition_words(text, "hi") == ["किताब", "में", "लिखी", "हुई", "कहानी"]
    assert normalize(text, "hi") == text


def test_thai_letters_keep_their_vowel_signs():
    from tasks.languages.segmenters import letters

    assert letters("ที่นี่") == ["ที่", "นี่"]


def test_an_unknown_sample_language_is_one_clear_error():
    from typer.testing import CliRunner

    from flows.cli import app

    result = CliRunner().invoke(app, ["run", "--set", "acquire.sample_languages=[en,xx]", "--workdir", "/tmp/none"])
    assert result.exit_code == 2
    assert "error:" in result.output and "sample_languages" in result.output and "Traceback" not in result.output


def test_token_estimates_before_the_tokenizer_count_a_chinese_character_as_three_english_ones():
    from tasks.documents import estimated_tokens

    english = estimated_tokens({"lang": "en", "n_chars": 1200})
    assert english == 300
    assert estimated_tokens({"lang": "zh", "n_chars": 400}) == english
    assert estimated_tokens({"lang": "ko", "n_chars": 600}) == english


@pytest.mark.slow
def test_language_budgets_bring_the_shares_toward_each_other(scored):
    import json

    workdir = scored[0]
    invoke("run", "--config", "configs/sample-multilingual.yaml", "--workdir", str(workdir), "--until", "mix",
           "--set", "acquire.planted_per_case=12", "--set", "acquire.sample_articles=40",
           "--set", "dedup.quality_check_docs=0")  # fmt: skip
    [manifest] = glob.glob(f"{workdir}/artifacts/mix/*/manifest.json")
    languages = json.loads(open(manifest).read())["info"]["languages"]
    assert set(LANGUAGES) <= set(languages)
    before = [languages[lang]["share_before"] for lang in LANGUAGES]
    after = [languages[lang]["share_after"] for lang in LANGUAGES]
    assert max(after) / min(after) < max(before) / min(before)  # alpha 0.3 narrows the spread
    assert all(languages[lang]["epochs"] <= 4.0 + 1e-9 for lang in LANGUAGES)


@pytest.mark.slow
def test_tokenizer_fertility_per_language_and_hf_export_ids_for_cjk_thai_arabic(scored, tmp_path):
    """tokenize learns from a language-balanced sample and reports each language's fertility; the
    Hugging Face tokenizer export encodes every Chinese, Japanese, Thai and Arabic page to the same ids."""
    import json

    import sentencepiece as spm

    from tasks.export.hf import hf_tokenizer

    workdir = scored[0]
    invoke("run", "--config", "configs/sample-multilingual.yaml", "--workdir", str(workdir), "--until", "tokenize",
           "--set", "acquire.planted_per_case=12", "--set", "acquire.sample_articles=40",
           "--set", "dedup.quality_check_docs=0", "--set", "tokenize.vocab_size=2000")  # fmt: skip
    [manifest] = glob.glob(f"{workdir}/artifacts/tokenize/*/manifest.json")
    fertility = json.loads(open(manifest).read())["info"]["fertility"]
    assert set(LANGUAGES) <= set(fertility) and fertility["en"]["vs_english"] == 1.0
    assert all(row["tokens_per_word"] > 0 and row["bytes_per_token"] > 0 for row in fertility.values())
    model = glob.glob(f"{workdir}/artifacts/tokenize/*/tokenizer.model")[0]
    sp, hf = spm.SentencePieceProcessor(model_file=model), hf_tokenizer(model)
    import pyarrow.parquet as pq

    pages = [r for p in glob.glob(f"{workdir}/artifacts/extract/*/docs/*.parquet")
             for r in pq.read_table(p, columns=["text", "lang"]).to_pylist()]  # fmt: skip
    for lang in ("zh", "ja", "th", "ar"):
        texts = [r["text"] for r in pages if r["lang"] == lang]
        assert len(texts) >= 20, lang
        assert all(hf(t, add_special_tokens=False)["input_ids"] == sp.encode(t) for t in texts), lang
