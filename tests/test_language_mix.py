"""Language budgets in mix: temperature sampling over languages lifts a small language, a cap on epochs
bounds its repeats, target shares are met, and domains keep their weights inside each language."""

from __future__ import annotations

import pytest

from tasks.mix.config import LanguageMixConfig, MixConfig
from tasks.mix.languages import language_budgets
from tasks.mix.stage import copies, group_rates


def _docs(lang: str, n: int, domain: str = "web", chars: int = 4000) -> list[dict]:
    return [{"doc_id": f"{lang}-{domain}-{i}", "lang": lang, "domain": domain, "n_chars": chars} for i in range(n)]


def _tokens_after(docs: list[dict], cfg: MixConfig) -> dict[str, float]:
    from tasks.documents import estimated_tokens

    tokens = {}
    for d in docs:
        tokens[d["domain"]] = tokens.get(d["domain"], 0.0) + estimated_tokens(d)
    rates = group_rates(docs, tokens, cfg)
    out: dict[str, float] = {}
    for d in docs:
        n = copies(rates[(d["lang"], d["domain"])], cfg.seed, d["doc_id"])
        out[d["lang"]] = out.get(d["lang"], 0.0) + n * estimated_tokens(d)
    return out


def test_temperature_lifts_a_small_language_and_epochs_cap_it():
    natural = {"en": 9000.0, "th": 100.0}
    budgets = language_budgets(natural, 9100.0, LanguageMixConfig(alpha=0.3, max_epochs=64))
    share_th = budgets["th"] / sum(budgets.values())
    assert share_th == pytest.approx(100**0.3 / (100**0.3 + 9000**0.3))  # p ~ n^0.3: about 21%, not 1%
    capped = language_budgets(natural, 9100.0, LanguageMixConfig(alpha=0.3, max_epochs=4))
    assert capped["th"] == 400.0 and capped["en"] == budgets["en"]  # 4 passes over Thai's own tokens at most
    assert language_budgets(natural, 9100.0, LanguageMixConfig(alpha=1.0))["th"] == pytest.approx(100.0)


def test_shares_are_met_and_domains_keep_their_weights_inside_each_language():
    docs = _docs("en", 300, "docs") + _docs("en", 300, "web") + _docs("ja", 60, "docs") + _docs("ja", 60, "web")
    cfg = MixConfig(mode="weights", weights={"docs": 0.75, "web": 0.25}, max_repeats=16,
                    languages=LanguageMixConfig(shares={"en": 0.5, "ja": 0.5}, max_epochs=16))  # fmt: skip
    after = _tokens_after(docs, cfg)
    assert after["ja"] / sum(after.values()) == pytest.approx(0.5, abs=0.05)
    rates = group_rates(docs, {"docs": 1.0, "web": 1.0}, cfg)
    for lang in ("en", "ja"):  # three parts docs to one part web, in each language
        assert rates[(lang, "docs")] / rates[(lang, "web")] == pytest.approx(3.0)


def test_a_language_left_out_of_the_shares_gets_nothing_and_bad_shares_are_refused():
    docs = _docs("en", 50) + _docs("fr", 50)
    cfg = MixConfig(mode="natural", languages=LanguageMixConfig(shares={"en": 1.0}))
    assert _tokens_after(docs, cfg).get("fr", 0.0) == 0.0
    with pytest.raises(ValueError, match="shares"):
        LanguageMixConfig(shares={"en": 0.0})


def test_the_tokenizer_sample_gives_a_small_language_its_share():
    from tasks.tokenize.fertility import balanced_sample

    english = [{"doc_id": f"en{i}", "lang": "en"} for i in range(5000)]
    docs = english + [{"doc_id": f"th{i}", "lang": "th"} for i in range(1000)]
    natural = balanced_sample(docs, 1000, None, seed=0)
    balanced = balanced_sample(docs, 1000, 0.3, seed=0)
    share = lambda picked: sum(d["lang"] == "th" for d in picked) / len(picked)  # noqa: E731
    assert share(natural) < 0.2 and len(balanced) == 1000
    assert share(balanced) == pytest.approx(1000**0.3 / (1000**0.3 + 5000**0.3), abs=0.01)  # about 38%
    assert balanced_sample(docs, 1000, 0.3, seed=0) == balanced  # seeded: the same sample every time
    few = balanced_sample(english + docs[-50:], 1000, 0.3, seed=0)  # a language smaller than its share: all of it
    assert sum(d["lang"] == "th" for d in few) == 50 and len(few) == 1000


def test_the_yardstick_pins_at_least_n_documents_of_each_language():
    from tasks.yardstick.stage import at_least_per_language

    ranked = [{"doc_id": f"d{i}", "lang": lang} for i, lang in enumerate("eeeeteeeteeh")]
    assert [d["lang"] for d in at_least_per_language(ranked, 3, 0)] == ["e", "e", "e"]
    chosen = at_least_per_language(ranked, 3, 2)  # the draw gave English 3; Thai and Hindi get theirs
    assert sorted(d["doc_id"] for d in chosen) == ["d0", "d1", "d11", "d2", "d4", "d8"]


def test_compare_gives_a_verdict_per_language_beside_the_overall_one():
    import random

    from tasks.comparison import Scores, compare

    rng = random.Random(0)
    docs = [(f"d{i}", "ja" if i % 2 else "th") for i in range(200)]

    def scores(thai_cost: float) -> Scores:
        costs = {d: ("web", (thai_cost if lang == "th" else 1.0) * rng.uniform(900, 1100), 1000.0, lang)
                 for d, lang in docs}  # fmt: skip
        return Scores("y", costs, {}, {}, {})

    rows = {r["metric"]: r for r in compare([scores(1.0)], [scores(1.2)])}  # B is worse on Thai only
    assert rows["yardstick.language.th.bits_per_byte"]["verdict"] == "worse"
    assert rows["yardstick.language.ja.bits_per_byte"]["verdict"] == "not distinguishable"
    assert rows["yardstick.language.th.bits_per_byte"]["units"] == 100
