import pytest

from tasks.config import FilterConfig, GopherQualityConfig, GopherRepetitionConfig
from tasks.filter_stage import build_url_filter
from tasks.filters.gopher import GopherQuality, GopherRepetition, top_ngram_char_ratio
from tasks.filters.url import read_blocklist
from tasks.pii import redact
from tests.conftest import prose


def test_reference_prose_passes_gopher_rules():
    text = prose(6)
    assert GopherQuality(GopherQualityConfig()).check(text) is None
    assert GopherRepetition(GopherRepetitionConfig()).check(text) is None


@pytest.mark.parametrize(
    ("text", "rule"),
    [
        ("too few words here", "gopher_min_words"),
        ("# " * 40 + prose(1), "gopher_symbol_word_ratio"),
        ("\n".join(f"- item {w}" for w in prose(2).split()[:80]), "gopher_bullet_lines_ratio"),
        (" ".join(["cheap", "casino", "bonus"] * 60), "gopher_stop_words"),
        (" ".join(["1234"] * 80), "gopher_alpha_words_ratio"),
    ],
)
def test_gopher_quality_rules_name_the_failure(text, rule):
    verdict = GopherQuality(GopherQualityConfig()).check(text)
    assert verdict is not None and verdict[0] == rule


def test_disabled_rule_is_skipped():
    cfg = GopherQualityConfig(min_words=None)
    assert GopherQuality(cfg).check("the and of to be that with have it") != ("gopher_min_words", 10)


def test_repetition_rules():
    para = prose(1)
    repeated = "\n\n".join([para] * 4)
    verdict = GopherRepetition(GopherRepetitionConfig()).check(repeated)
    assert verdict is not None and verdict[0].startswith("gopher_dup_para")
    words = "buy cheap pills now buy cheap pills now".split() * 10
    assert top_ngram_char_ratio(words, 2) > 0.2


def test_url_blocklist_matches_subdomains_and_ut1_files(tmp_path):
    blocklist = tmp_path / "domains"
    blocklist.write_text("# UT1 adult list\nbad-site.example\n\n.other.example\n")
    assert read_blocklist(blocklist) == {"bad-site.example", "other.example"}
    f = build_url_filter(FilterConfig(blocklist_domains=[], blocklist_file=str(blocklist), banned_url_words=["porn"]))
    assert f.check("https://www.bad-site.example/x", "www.bad-site.example") == ("url_blocklist", None)
    assert f.check("https://a.b.other.example/", "a.b.other.example") == ("url_blocklist", None)
    assert f.check("https://notbad-site.example/", "notbad-site.example") is None
    assert f.check("https://good.example/free-porn-videos", "good.example") == ("url_banned_word", None)
    assert f.check("https://good.example/pornography-research", "good.example") is None


def test_pii_redaction_replaces_typed_placeholders():
    text = (
        "Mail jane.doe12@mailhost.example.com or call +1 (555) 555-1234 or 020 7946 0018. "
        "Server 203.0.113.7, v6 2001:db8:0:0:1::7. Keep 127.0.0.1, x[1::2], version 3.11.7, year 2024."
    )
    out, counts = redact(text)
    assert counts == {"email": 1, "phone": 2, "ip": 2}
    for secret in ("jane.doe12", "555-1234", "7946", "203.0.113.7", "2001:db8"):
        assert secret not in out
    for kept in ("127.0.0.1", "x[1::2]", "3.11.7", "2024"):
        assert kept in out
    assert "<EMAIL>" in out and "<PHONE>" in out and "<IP_ADDRESS>" in out


def test_quality_classifier_retries_at_a_lower_rate_when_training_diverges(tmp_path, monkeypatch):
    import fasttext
    import pyarrow as pa
    import pyarrow.parquet as pq

    from tasks.config import QualityClassifierConfig
    from tasks.quality import train_classifier

    real_train = fasttext.train_supervised
    rates: list[float] = []

    def diverging_above_a_quarter(path, **kwargs):
        rates.append(kwargs["lr"])
        if kwargs["lr"] > 0.25:
            raise RuntimeError("Encountered NaN.")
        return real_train(path, **kwargs)

    monkeypatch.setattr(fasttext, "train_supervised", diverging_above_a_quarter)
    shard = str(tmp_path / "docs.parquet")
    rows = [{"doc_id": f"d{i}", "text": prose(2, offset=i)} for i in range(40)]
    pq.write_table(pa.Table.from_pylist(rows), shard)
    info = train_classifier([shard], QualityClassifierConfig(negatives=20, epochs=2), tmp_path / "q.bin")
    assert rates == [0.5, 0.25]
    assert info["quality_lr"] == 0.25
    assert (tmp_path / "q.bin").is_file()

    rates.clear()
    with pytest.raises(RuntimeError, match="diverged at lr=0.5 after 1 tries"):
        train_classifier([shard], QualityClassifierConfig(negatives=20, epochs=2, lr_retries=0), tmp_path / "r.bin")


def test_quality_classifier_is_identical_when_retrained_on_a_dirty_heap(tmp_path):
    """fasttext-numpy2 leaves most of its input matrix unzeroed: the same seed used to give a different model."""
    import hashlib

    import pyarrow as pa
    import pyarrow.parquet as pq

    from tasks.config import QualityClassifierConfig
    from tasks.quality import train_classifier

    shard = str(tmp_path / "docs.parquet")
    rows = [{"doc_id": f"d{i}", "text": " ".join(f"w{(i * 7 + j) % 997}" for j in range(80))} for i in range(200)]
    pq.write_table(pa.Table.from_pylist(rows), shard)
    digests = set()
    for attempt in range(3):
        garbage = [bytearray(b"\xff" * (20 << 20)) for _ in range(3)]  # freed memory full of 0xff bytes
        del garbage
        model = tmp_path / f"q{attempt}.bin"
        train_classifier([shard], QualityClassifierConfig(negatives=200, epochs=2), model)
        digests.add(hashlib.sha256(model.read_bytes()).hexdigest())
    assert len(digests) == 1
