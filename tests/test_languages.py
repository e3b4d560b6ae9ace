"""Every language on the web: words, filter thresholds, length minimums and dedup per language, on
text written by people in that language (what installed packages ship)."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest

from tasks.dedup.config import DedupConfig
from tasks.dedup.stage import run as dedup
from tasks.documents import FILTER_COLUMNS, write_docs
from tasks.filter.config import FilterConfig
from tasks.filter.rules import first_failure
from tasks.filter.rules.c4 import C4Config, C4Filter
from tasks.filter.rules.gopher import GopherQuality, GopherQualityConfig, GopherRepetition, GopherRepetitionConfig
from tasks.filter.stage import build_rules
from tasks.languages import known_languages, language, words
from tasks.stage import StageInput
from tests.conftest import native_text, prose


def test_a_thousand_character_japanese_article_counts_hundreds_of_words():
    article = native_text("ja", 1000)
    assert len(article) >= 1000
    assert len(article.split()) < 80  # whitespace sees clauses, not words
    counted = words(article, "ja")
    assert len(counted) >= 300 and "開発" in counted


@pytest.mark.parametrize("lang", ["zh", "th"])
def test_chinese_and_thai_text_is_segmented_into_words(lang):
    text = native_text(lang, 800)
    counted = words(text, lang)
    assert len(counted) > 2 * len(text.split()) and all(w.strip() for w in counted)
    assert sum(len(w) for w in counted) / len(counted) < 6  # words, not clauses


def test_korean_words_are_morphemes_not_space_separated_phrases():
    text = native_text("ko", 800)
    counted = words(text, "ko")
    assert len(counted) > len(text.split()) and "필요" in counted and "필요합니다." not in counted


def test_english_words_stay_whitespace_words_and_gopher_stop_words():
    text = prose(2)
    assert words(text, "en") == text.split() == words(text, None)
    assert language("en").stop_words == {"the", "be", "to", "of", "and", "that", "have", "with"}


def test_a_russian_article_passes_the_stop_word_rule_in_russian_and_not_in_english():
    article = native_text("ru", 1500)
    rule = GopherQuality(GopherQualityConfig())
    in_russian = {m.rule: m for m in rule.measure_text(article, "ru")}
    as_english = {m.rule: m for m in rule.measure_text(article, "en")}
    assert in_russian["gopher_stop_words"].passed and in_russian["gopher_stop_words"].value >= 2
    assert not as_english["gopher_stop_words"].passed


def test_thresholds_are_fineweb2s_for_the_document_language_and_the_users_over_them():
    """A Japanese page is measured against FineWeb-2's Japanese settings (mean word length 1-6,
    not English's 3-10); `filter.per_language` goes over them; English keeps the config's."""
    cfg = FilterConfig(per_language={"ja": {"gopher_quality": {"min_words": 500}}})
    quality = next(r for r in build_rules(cfg) if isinstance(r, GopherQuality))
    ja, en = quality.cfg_for("ja"), quality.cfg_for("en")
    assert (ja.min_mean_word_length, ja.max_mean_word_length, ja.min_words) == (1, 6, 500)
    assert (en.min_mean_word_length, en.max_mean_word_length, en.min_words) == (3.0, 10.0, 50)
    repetition = next(r for r in build_rules(cfg) if isinstance(r, GopherRepetition))
    assert repetition.cfg_for("ja").max_top_2gram_char_ratio == pytest.approx(0.239)
    plain = next(r for r in build_rules(FilterConfig(language_defaults="none")) if isinstance(r, GopherQuality))
    assert plain.cfg_for("ja").max_mean_word_length == 10.0


def test_a_per_language_threshold_that_is_not_one_is_refused_at_validation():
    with pytest.raises(ValueError, match="per_language.ja.quality: not a rule set with thresholds"):
        FilterConfig(per_language={"ja": {"quality": {"min_score": 0.5}}})
    with pytest.raises(ValueError, match="min_words"):
        FilterConfig(per_language={"ja": {"gopher_quality": {"min_words": -1}}})


def test_japanese_and_chinese_articles_pass_the_gopher_rules_that_removed_them_before():
    """Before: a 2,500-character Chinese article was 45 "words" with a mean length of 56."""
    quality, repetition = GopherQuality(GopherQualityConfig()), GopherRepetition(GopherRepetitionConfig())
    for lang in ("ja", "zh"):
        article = native_text(lang, 2500)
        failure = first_failure([*quality.measure_text(article, lang), *repetition.measure_text(article, lang)])
        assert failure is None or failure.rule not in ("gopher_min_words", "gopher_max_mean_word_length"), failure


def test_c4_rules_apply_to_english_unless_asked():
    rule = C4Filter(C4Config(enabled=True))
    japanese = {"text": native_text("ja", 600), "lang": "ja"}
    assert rule.edit(dict(japanese)) == {} and list(rule.measure(japanese)) == []
    asked = C4Filter(C4Config(enabled=True, languages=["en", "ja"]))
    assert list(asked.measure(japanese))
    # Asked for Japanese, C4 counts a line's words and its full stops as Japanese has them: the lines of
    # an article stay (by whitespace each line was one "word", every line dropped as too short).
    edited = dict(japanese)
    dropped = asked.edit(edited)
    assert len(edited["text"]) > 0.8 * len(japanese["text"]), dropped
    assert all(m.passed for m in asked.measure(edited) if m.rule == "c4_min_sentences")


def test_a_short_japanese_page_is_long_enough_where_the_same_english_length_is_not():
    from tasks.extract.config import ExtractConfig

    minimum = ExtractConfig().min_text_chars
    page = native_text("ja", 120)[:120]
    assert language("ja").text_length(page) >= minimum > language("en").text_length(page)


def _doc(doc_id: str, text: str, lang: str) -> dict:
    return {"doc_id": doc_id, "url": f"https://{lang}.example/{doc_id}", "host": f"{lang}.example", "crawl": "c",
            "warc_path": "w", "fetch_time": "t", "lang": lang, "lang_score": 1.0, "text": text,
            "n_chars": len(text), "n_words": len(words(text, lang)), "quality_score": 0.5}  # fmt: skip


def _one_percent_changed(text: str) -> str:
    """Every hundredth letter replaced (a typo fixed, a date changed): 1% of the characters."""
    chars = list(text)
    letters = [i for i, ch in enumerate(chars) if ch.isalpha()]
    for i in letters[::100]:
        chars[i] = "ア" if chars[i] != "ア" else "イ"
    return "".join(chars)


def test_a_japanese_near_duplicate_with_one_percent_of_its_characters_changed_is_removed(tmp_path):
    original = native_text("ja", 2000)
    copy = _one_percent_changed(original)
    other = native_text("ja", 2000, offset=150)
    rows = [_doc("a-original", original, "ja"), _doc("b-copy", copy, "ja"), _doc("c-other", other, "ja"),
            _doc("d-english", prose(4), "en")]  # fmt: skip
    write_docs(rows, tmp_path / "in" / "part-0.parquet", FILTER_COLUMNS)
    inputs = {"filter": StageInput("filter", "fp", tmp_path / "in", {"files": [{"path": "part-0.parquet",
                                                                              "kind": "docs"}]})}  # fmt: skip
    dedup(inputs, DedupConfig(quality_check_docs=0), tmp_path / "out")
    removed = pq.read_table(tmp_path / "out" / "removed").to_pylist()
    assert [(r["doc_id"], r["rule"]) for r in removed] == [("b-copy", "near_duplicate")]
    kept = {r["doc_id"] for r in pq.read_table(tmp_path / "out" / "docs").to_pylist()}
    assert kept == {"a-original", "c-other", "d-english"}


def test_the_registry_covers_every_lid176_language_fineweb2_publishes():
    known = known_languages()
    assert {"en", "ja", "zh", "ko", "th", "ru", "ar", "hi"} <= set(known) and len(known) >= 170
    assert language("ar").settings["fineweb2"] == "arb_Arab" and language("xx").segmenter == "whitespace"


def test_a_classifier_never_removes_a_language_it_was_not_trained_for():
    """The built-in classifier learns English reference text: a Japanese page passes it unscored and
    is counted, instead of being removed by a score that means nothing (23 of 23 before)."""
    from collections import Counter

    from tasks.filter.config import QualityClassifierConfig
    from tasks.filter.ensemble import PreparedClassifier
    from tasks.filter.rules import measure_all
    from tasks.filter.rules.quality import QualityClassifier

    classifier = PreparedClassifier(QualityClassifierConfig(), "/no/model/needed.bin", 0.5, ())
    page = {"doc_id": "ja-1", "text": native_text("ja", 500), "lang": "ja"}
    stats = Counter()
    assert measure_all(page, [QualityClassifier(classifier)], stats) == []
    assert stats == {"quality_classifier.unscored.ja": 1} and page.get("quality_score") is None
    everywhere = QualityClassifierConfig(languages="all")
    assert everywhere.scores("ja") and not QualityClassifierConfig().scores("ja")


def test_the_report_flags_a_rule_that_removes_one_language_far_more_than_the_others(tmp_path):
    from tasks.documents import removed_row, write_removed
    from tasks.evaluate.languages import language_funnel

    docs = [_doc(f"en-{i}", prose(1, offset=i), "en") for i in range(20)]
    docs += [_doc(f"ja-{i}", native_text("ja", 300, offset=i * 10), "ja") for i in range(20)]
    write_docs(docs, tmp_path / "extract" / "docs" / "part-0.parquet")
    gone = {f"ja-{i}" for i in range(15)} | {"en-0"}
    write_docs([d for d in docs if d["doc_id"] not in gone], tmp_path / "filter" / "docs" / "part-0.parquet",
               FILTER_COLUMNS)  # fmt: skip
    write_removed([removed_row(d, "filter", "gopher_min_words", 10) for d in docs if d["doc_id"] in gone],
                  tmp_path / "filter" / "removed" / "part-0.parquet")  # fmt: skip

    def output(stage: str, kinds: tuple[str, ...]) -> StageInput:
        files = [{"path": f"{kind}/part-0.parquet", "kind": kind} for kind in kinds]
        return StageInput(stage, "fp", tmp_path / stage, {"files": files})

    inputs = {"extract": output("extract", ("docs",)), "filter": output("filter", ("docs", "removed"))}
    funnel = language_funnel(inputs, ["extract", "filter"])
    filtered = funnel["stages"][1]
    assert filtered["in"] == {"en": 20, "ja": 20} and filtered["removed"]["gopher_min_words"] == {"ja": 15, "en": 1}
    assert funnel["flags"] == ["filter.gopher_min_words removes 75% of ja documents (15/20) against 5% of the others"]


def test_a_chinese_benchmark_item_decontaminates_the_document_that_contains_it():
    """Benchmark n-grams in the benchmark's script: a Chinese item had no [a-z0-9] words at all, so it
    was "too short" and every document containing it trained."""
    from tasks.contamination import ContaminationIndex

    item = "这种语言具有非常简捷而清晰的语法特点，适合完成各种高层任务"
    index = ContaminationIndex(13)
    index.add("cmmlu:7", item)
    assert index.items == 1 and index.too_short == 0
    page = native_text("zh", 600) + "\n\n" + item + "。"
    assert index.match(page)[1] == "cmmlu:7"
    assert index.match(native_text("zh", 600, offset=50)) is None
    # Thai: 13 letters are two or three words, which unrelated Thai pages share; 13 words' worth are not.
    thai = native_text("th", 3000)
    sentence = max(thai.split(" "), key=len)
    thai_item = ContaminationIndex(13)
    thai_item.add("xnli_th:3", sentence)
    assert thai_item.items == 1, sentence
    unrelated = native_text("th", 600, offset=80)
    assert thai_item.match(unrelated + " " + sentence)[1] == "xnli_th:3"
    phrase = sentence[:14]  # the item's first 14 letters, inside an unrelated page
    assert thai_item.match(unrelated + " " + phrase + " " + native_text("th", 300, offset=200)) is None
    english = ContaminationIndex(13)
    english.add("q:1", "which statement about the evaluation order of python expressions is correct here in practice")
    assert english.match(
        "Quiz: Which statement about the evaluation order of Python expressions is correct here in practice?"
    )


@pytest.mark.slow
def test_dedup_recall_on_generated_near_duplicates_in_eight_languages(tmp_path):
    """Generated near-duplicates over each language's own vocabulary (gettext catalogs), shingled as
    the language is: recall >= 0.95 on the pairs with Jaccard >= 0.8, no unjustified removal."""
    from tasks.dedup.quality_check import language_quality, measure_quality

    cfg = DedupConfig(quality_check_docs_per_language=600)
    for lang in ("en", "zh", "ja", "ko", "th", "ru", "ar", "hi"):
        result = language_quality(lang, cfg, tmp_path / lang)
        assert result["pairs_ge_0.8"] >= 100, (lang, result)
        assert result["recall_ge_0.8"] >= 0.95 and result["precision"] >= 0.95, (lang, result)
    both = measure_quality([], DedupConfig(quality_check_docs=300, quality_check_languages=["ja"],
                                           quality_check_docs_per_language=300), tmp_path / "both")  # fmt: skip
    assert set(both["languages"]) == {"ja"} and both["languages"]["ja"]["docs"] == 300


def test_language_id_thresholds_per_language_from_the_runs_own_distribution(tmp_path):
    """FineWeb-2's rule on the run's documents where a language has enough of them (English here),
    FineWeb-2's published threshold where it has not (Japanese), nothing for a language with neither."""
    import numpy as np

    from tasks.filter.rules.language_score import LanguageScore, fineweb2_threshold, thresholds

    rng = np.random.default_rng(0)
    english = np.clip(rng.normal(0.8, 0.1, 300), 0, 1)
    rows = [{**_doc(f"en-{i}", "text", "en"), "lang_score": float(s)} for i, s in enumerate(english)]
    rows += [{**_doc(f"ja-{i}", "テキスト", "ja"), "lang_score": 0.95} for i in range(20)]
    rows += [{**_doc(f"xx-{i}", "text", "xx"), "lang_score": 0.5} for i in range(5)]
    write_docs(rows, tmp_path / "docs.parquet")
    found = thresholds([str(tmp_path / "docs.parquet")], min_docs=200)
    assert found["en"]["source"] == "run" and found["en"]["docs"] == 300
    assert found["en"]["threshold"] == pytest.approx(fineweb2_threshold(list(english)))
    assert 0.6 < found["en"]["threshold"] < 0.8
    assert found["ja"] == {"threshold": pytest.approx(0.886), "source": "fineweb2", "docs": 20} and "xx" not in found
    rule = LanguageScore(found)
    low, high = {"lang": "en", "lang_score": 0.5}, {"lang": "en", "lang_score": 0.95}
    assert not next(rule.measure(low)).passed and next(rule.measure(high)).passed
    assert list(rule.measure({"lang": "xx", "lang_score": 0.1})) == []
    assert fineweb2_threshold([0.99] * 10) == 0.9 and fineweb2_threshold([0.1, 0.2, 0.3]) == 0.3


def test_the_filter_stage_removes_low_confidence_pages_by_their_languages_threshold(tmp_path):
    from tasks.filter.stage import run as filter_run

    rows = [{**_doc(f"en-{i:02d}", prose(3, offset=i), "en"), "lang_score": 0.2 if i < 5 else 0.9} for i in range(40)]
    write_docs(rows, tmp_path / "extract" / "docs" / "part-0.parquet")
    extract = StageInput("extract", "fp", tmp_path / "extract", {"files": [{"path": "docs/part-0.parquet",
                                                                          "kind": "docs"}]})  # fmt: skip
    cfg = FilterConfig(language_score="per_language", language_score_min_docs=10, redact_pii=False,
                       quality={"enabled": False}, gopher_repetition={"max_dup_5gram_char_ratio": None})  # fmt: skip
    outcome = filter_run({"extract": extract}, cfg, tmp_path / "out")
    removed = pq.read_table(tmp_path / "out" / "removed").to_pylist()
    by_threshold = sorted(r["doc_id"] for r in removed if r["rule"] == "lang_score_per_language")
    assert by_threshold == [f"en-{i:02d}" for i in range(5)]
    assert outcome.info["language_scores"]["en"]["source"] == "run"


def test_extracts_language_removals_count_in_their_language(tmp_path):
    """A page removed for its language or its length after language id counts in that language; one
    removed before language id (not HTML) has none."""
    from tasks.documents import removed_row, write_removed
    from tasks.evaluate.languages import language_funnel

    write_docs([_doc("en-1", prose(1), "en")], tmp_path / "extract" / "docs" / "part-0.parquet")
    removed = [removed_row({"doc_id": "de-1"}, "extract", "lang", 0.9, "de"),
               removed_row({"doc_id": "ja-1"}, "extract", "too_short", 40, "ja"),
               removed_row({"doc_id": "pdf-1"}, "extract", "non_html", None, "application/pdf")]  # fmt: skip
    write_removed(removed, tmp_path / "extract" / "removed" / "part-0.parquet")
    files = [{"path": f"{k}/part-0.parquet", "kind": k} for k in ("docs", "removed")]
    funnel = language_funnel({"extract": StageInput("extract", "fp", tmp_path / "extract", {"files": files})},
                             ["extract"])  # fmt: skip
    assert funnel["stages"][0]["in"] == {"en": 1, "de": 1, "ja": 1, "none": 1}


@pytest.mark.slow
def test_a_classifier_per_language_from_reference_files_in_that_language(tmp_path):
    """English pages scored by the built-in English classifier, Japanese ones by a classifier trained
    on Japanese reference text; a Thai page by neither (passes both unscored, counted)."""
    import json

    import duckdb

    from tests.conftest import html_page, invoke, native_text, prose, write_warc

    reference = tmp_path / "ja-reference.jsonl"
    reference.write_text("".join(json.dumps({"text": native_text("ja", 400, offset=i * 6)}) + "\n"
                                 for i in range(40)))  # fmt: skip
    pages = [(f"https://en.example/{i}", "200 OK", "text/html", html_page(prose(3, offset=i * 3))) for i in range(12)]
    pages += [(f"https://ja.example/{i}", "200 OK", "text/html", html_page(native_text("ja", 500, offset=i * 7)))
              for i in range(12)]  # fmt: skip
    pages += [(f"https://th.example/{i}", "200 OK", "text/html", html_page(native_text("th", 900, offset=i * 9)))
              for i in range(3)]  # fmt: skip
    warc = write_warc(tmp_path / "pages.warc.gz", pages)
    japanese = json.dumps([{"name": "quality_ja", "languages": ["ja"], "min_score": 0.0,
                            "reference_paths": [str(reference)]}])  # fmt: skip
    work = tmp_path / "work"
    invoke("run", "--workdir", str(work), "--until", "filter", "--set", f"acquire.paths=[{warc}]",
           "--set", "extract.languages=[en,ja,th]", "--set", "filter.quality.min_score=0.0",
           "--set", f"filter.more_classifiers={japanese}", "--set", "filter.gopher_quality.min_words=10")  # fmt: skip
    rows = duckdb.sql(f"select lang, map_keys(quality_scores) from read_parquet('{work}/artifacts/filter/*/docs/"
                      "*.parquet')").fetchall()  # fmt: skip
    scored_by = {lang: set() for lang, _ in rows}
    for lang, keys in rows:
        scored_by[lang] |= set(keys or [])
    assert scored_by["en"] == {"quality"} and scored_by["ja"] == {"quality_ja"}, scored_by
    assert scored_by.get("th", set()) == set()
    manifest = json.loads(next(work.glob("artifacts/filter/*/manifest.json")).read_text())
    metrics = {m["name"]: m["value"] for m in manifest["metrics"]}
    assert (
        metrics["quality_classifier.quality_ja.unscored.en"] == 12 and metrics["quality_classifier.unscored.ja"] == 12
    )
    assert metrics["quality_classifier.quality_ja.unscored.th"] == metrics["quality_classifier.unscored.th"] == 3


def test_spaced_languages_spacy_covers_split_punctuation_and_clitics_english_stays_whitespace():
    assert words("L'homme n'est pas là, aujourd'hui.", "fr") == ["L'", "homme", "n'", "est", "pas", "là", "aujourd'hui"]
    assert words("Привет, мир! Это тест.", "ru") == ["Привет", "мир", "Это", "тест"]
    assert words("Hello, world! It's fine.", "en") == ["Hello,", "world!", "It's", "fine."]
    assert words("Xin chào, thế giới.", "vi") == ["Xin", "chào,", "thế", "giới."]  # no spaCy rules: whitespace


def test_a_word_has_a_letter_or_a_digit_by_unicode_category_for_every_code_point():
    import sys
    import unicodedata

    from tasks.languages.segmenters import _is_word

    differ = [c for c in range(sys.maxunicode + 1) if _is_word(chr(c)) != (unicodedata.category(chr(c))[0] in "LN")]
    assert differ == []
    assert _is_word("—2024»") and not _is_word("_—»…") and _is_word("日") and _is_word("٣")
