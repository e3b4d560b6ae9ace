import json

import pyarrow.parquet as pq
import pytest
import sentencepiece as spm

from tasks.benchmarks import BenchmarkConfig
from tasks.documents import MIX_COLUMNS, write_docs
from tasks.stage import StageInput
from tasks.tokenize.config import TokenizeConfig
from tasks.tokenize.stage import EOS_ID, run
from tests.conftest import prose

BENCH_ITEM = "Which statement about the evaluation order of Python expressions is correct according to the manual"


def _mix_input(tmp_path, contaminated: bool = True, extra: str = "") -> StageInput:
    docs = []
    for i in range(60):
        text = prose(3, offset=3 * i) + f"\n\nline with  double  spaces and a tab\there {i}" + extra[i::60]
        docs.append({"doc_id": f"{i:04d}", "url": f"https://x.example/{i}", "host": "x.example", "crawl": "c",
                     "warc_path": "w", "fetch_time": "t", "lang": "en", "lang_score": 1.0, "text": text,
                     "n_chars": len(text), "n_words": len(text.split()), "quality_score": 0.5,
                     "dup_cluster": f"{i:04d}", "dup_cluster_size": 1, "domain": ["docs", "web"][i % 2],
                     "sample_weight": 1.0, "repeats": 1 + i % 2})  # fmt: skip
    if contaminated:
        docs[7]["text"] = prose(2, offset=200) + " Quiz: " + BENCH_ITEM + " ? the answer follows."
    write_docs(docs, tmp_path / "mix" / "docs" / "part-00000.parquet", MIX_COLUMNS)
    manifest = {"files": [{"path": "docs/part-00000.parquet", "kind": "docs"}]}
    return StageInput("mix", "fp", tmp_path / "mix", manifest)


def _bench(tmp_path) -> BenchmarkConfig:
    path = tmp_path / "bench.jsonl"
    path.write_text(json.dumps({"id": "q7", "context": BENCH_ITEM, "choices": ["?", "!"], "label": 0}) + "\n")
    return BenchmarkConfig(name="quiz", format="generic", path=str(path))


def _cfg(tmp_path, **kw) -> TokenizeConfig:
    # Built-in items off unless a test asks: the reference manual repeats paragraphs across topics.
    settings = {"vocab_size": 400, "builtin_eval_items": 0, **kw}
    return TokenizeConfig(seq_len=32, val_fraction=0.2, workers=2, eval_benchmarks=[_bench(tmp_path)], **settings)


def test_planted_contaminated_page_is_removed_with_its_item(tmp_path):
    out = tmp_path / "out"
    outcome = run({"mix": _mix_input(tmp_path)}, _cfg(tmp_path), out)
    removed = pq.read_table(out / "removed").to_pylist()
    assert [(r["doc_id"], r["rule"], r["detail"]) for r in removed] == [("0007", "decontaminated", "quiz:q7")]
    assert (outcome.docs_in, outcome.docs_out, outcome.docs_removed) == (60, 59, 1)
    token_docs = {d for p in (out / "tokens").glob("*.parquet") for ids in pq.read_table(p)["doc_ids"].to_pylist()
                  for d in ids}  # fmt: skip
    assert "0007" not in token_docs


def test_flag_mode_keeps_and_records(tmp_path):
    out = tmp_path / "out"
    outcome = run({"mix": _mix_input(tmp_path)}, _cfg(tmp_path, decontaminate="flag"), out)
    assert outcome.docs_removed == 0
    assert [r["doc_id"] for r in pq.read_table(out / "flagged").to_pylist()] == ["0007"]


def test_shards_round_trip_to_the_documents_and_splits_are_disjoint(tmp_path):
    mix = _mix_input(tmp_path, contaminated=False)
    out = tmp_path / "out"
    outcome = run({"mix": mix}, _cfg(tmp_path), out)
    sp = spm.SentencePieceProcessor(model_file=str(out / "tokenizer.model"))
    texts = {d["doc_id"]: d["text"] for d in pq.read_table(mix.output_dir / "docs").to_pylist()}
    seen = {}
    for split in ("train", "val"):
        table = pq.read_table(out / "tokens" / f"{split}-00000.parquet")
        stream = [t for row in table["tokens"].to_pylist() for t in row]
        order = []  # one entry per document copy, in stream order
        for ids, offset in zip(table["doc_ids"].to_pylist(), table["first_doc_offset"].to_pylist(), strict=True):
            order += ids[1:] if offset > 0 else ids  # a row starting mid-document continues its first id
        segments = [[]]
        for t in stream:
            if t == EOS_ID:
                segments.append([])
            else:
                segments[-1].append(t)
        complete = segments[:-1]  # the stream ends inside a document
        assert len(complete) >= 5
        for doc_id, tokens in zip(order, complete, strict=False):
            assert sp.decode(tokens) == texts[doc_id]  # exact: identity normalization keeps whitespace
        seen[split] = set(order)
    assert not seen["train"] & seen["val"]
    metrics = {m["name"] for m in outcome.metrics}
    assert {"tokens.train.docs", "tokens.train.web", "train_tokens", "val_tokens"} <= metrics


def test_an_existing_tokenizer_can_be_used(tmp_path):
    first = tmp_path / "first"
    run({"mix": _mix_input(tmp_path)}, _cfg(tmp_path), first)
    second = tmp_path / "second"
    run({"mix": _mix_input(tmp_path)}, _cfg(tmp_path, model_path=str(first / "tokenizer.model")), second)
    assert (second / "tokenizer.model").read_bytes() == (first / "tokenizer.model").read_bytes()
    with pytest.raises(ValueError, match="file not found"):
        TokenizeConfig(model_path=str(tmp_path / "missing.model"))


def test_train_documents_are_decontaminated_against_the_builtin_items(tmp_path):
    from storage.fingerprint import unit_interval

    mix = _mix_input(tmp_path, contaminated=False)
    table = pq.read_table(mix.output_dir / "docs").to_pylist()
    cfg = _cfg(tmp_path, builtin_eval_items=1000)  # every candidate becomes an item
    split = {d["doc_id"]: unit_interval(cfg.seed, "split", d["doc_id"]) < cfg.val_fraction for d in table}
    val_id = next(d for d, is_val in split.items() if is_val)
    train_id = next(d for d, is_val in split.items() if not is_val)
    # A train page that copies a held-out page: the held-out page's cloze items are in its text.
    for d in table:
        if d["doc_id"] == train_id:
            d["text"] = next(x["text"] for x in table if x["doc_id"] == val_id)
    write_docs(table, mix.output_dir / "docs" / "part-00000.parquet", MIX_COLUMNS)
    out = tmp_path / "out"
    run({"mix": mix}, cfg, out)
    removed = pq.read_table(out / "removed").to_pylist()
    assert train_id in {r["doc_id"] for r in removed}
    assert val_id not in {r["doc_id"] for r in removed}  # the source stays held out
    detail = next(r["detail"] for r in removed if r["doc_id"] == train_id)
    assert detail.split(":")[0] in ("cloze", "last_word") and detail.split(":")[1] == val_id
    items = [json.loads(line) for line in (out / "builtin_items.jsonl").read_text().splitlines()]
    assert items and all(i["item_id"].split(":")[0] in split and split[i["item_id"].split(":")[0]] for i in items)


def test_more_characters_than_the_vocabulary_is_one_clear_error(tmp_path):
    """Chinese text brings thousands of characters: a vocabulary smaller than them is a config error
    naming both numbers and the two ways out, not SentencePiece's traceback."""
    from storage.errors import UserError

    hanzi = "".join(chr(0x4E00 + k) for k in range(0, 3000, 3)) * 2  # 1,000 characters, each twice
    with pytest.raises(UserError, match=r"tokenize.vocab_size=400 is smaller than the \d+ characters") as e:
        run({"mix": _mix_input(tmp_path, extra=hanzi)}, _cfg(tmp_path, character_coverage=1.0), tmp_path / "out")
    assert e.value.exit_code == 2 and "character_coverage" in e.value.hint


def test_a_corpus_too_small_for_the_vocabulary_shrinks_it_with_a_warning_or_stops_with_an_error(tmp_path):
    """A small crawl cannot give 20,000 pieces: by default the largest vocabulary it can give, said as a
    warning; with vocab_fallback=error one clear error (no SentencePiece traceback)."""
    from storage.errors import UserError

    outcome = run({"mix": _mix_input(tmp_path)}, _cfg(tmp_path, vocab_size=20_000), tmp_path / "out")
    pieces = spm.SentencePieceProcessor(model_file=str(tmp_path / "out" / "tokenizer.model")).get_piece_size()
    assert pieces < 20_000 and outcome.info["vocab_size"] == pieces
    assert any(f"trained with {pieces} instead of tokenize.vocab_size=20000" in w for w in outcome.info["warnings"])
    with pytest.raises(UserError, match="tokenize.vocab_size=20000 is more than this corpus can give") as e:
        run({"mix": _mix_input(tmp_path)}, _cfg(tmp_path, vocab_size=20_000, vocab_fallback="error"), tmp_path / "o2")
    assert e.value.exit_code == 2 and "vocab_fallback=shrink" in e.value.hint
