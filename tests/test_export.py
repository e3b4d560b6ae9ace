"""`crawl2model export`: every format read back by the tool that consumes it (datatrove, datasets,
megatron-core, numpy, litdata, transformers), compared with our own artifacts."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import sentencepiece as spm
import torch
from typer.testing import CliRunner

from flows.cli import app
from flows.export import run_export
from model.packing import EOS_ID
from model.trainer import load_model
from storage.catalog import Catalog
from tasks.config import load_config
from tasks.export.config import ExportConfig, ExportError
from tasks.export.run import EXPORT_MANIFEST
from tests.conftest import TINY_RUN_SETS, invoke

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    """One tiny pipeline run (about 30 s) that every export reads."""
    root = tmp_path_factory.mktemp("export-work")
    invoke("run", "--workdir", str(root), *TINY_RUN_SETS)
    return root


def _output(work: Path, stage: str) -> Path:
    (out,) = [p.parent for p in (work / "artifacts" / stage).glob("*/manifest.json")]
    return out


def _export(work: Path, stage: str, fmt: str, out: Path, *extra: str) -> str:
    return invoke("export", "--workdir", str(work), *TINY_RUN_SETS, "--stage", stage, "--format", fmt,
                  "--out", str(out), *extra)  # fmt: skip


def _docs(work: Path, stage: str) -> dict[str, dict]:
    files = sorted((_output(work, stage) / "docs").glob("*.parquet"))
    return {r["doc_id"]: r for f in files for r in pq.read_table(f).to_pylist()}


def _rows(work: Path, split: str) -> np.ndarray:
    files = sorted((_output(work, "tokenize") / "tokens").glob(f"{split}-*.parquet"))
    return np.concatenate([np.asarray(pq.read_table(f).column("tokens").to_pylist()).reshape(-1) for f in files])


def _processor(work: Path) -> spm.SentencePieceProcessor:
    return spm.SentencePieceProcessor(model_file=str(_output(work, "tokenize") / "tokenizer.model"))


def test_jsonl_is_read_by_datatrove_with_the_same_documents_and_metadata(work, tmp_path):
    from datatrove.pipeline.readers import JsonlReader

    out = tmp_path / "jsonl"
    _export(work, "mix", "jsonl", out, "--shard-bytes", "20000")
    ours = _docs(work, "mix")
    read = list(JsonlReader(str(out / "documents"))())
    assert len(list((out / "documents").glob("*.jsonl.gz"))) > 1  # sharded by size
    assert sorted(d.id for d in read) == sorted(ours)
    for doc in read:
        row = ours[doc.id]
        assert doc.text == row["text"]
        assert doc.metadata["url"] == row["url"] and doc.metadata["language"] == row["lang"]
        assert doc.metadata["domain"] == row["domain"] and doc.metadata["source"] == "crawl2model/mix"
        assert doc.metadata["quality_score"] == pytest.approx(row["quality_score"])
        assert doc.metadata["quality_scores"] == dict(row["quality_scores"])  # the map column as an object


def test_hf_datasets_parquet_loads_with_datasets(work, tmp_path):
    import datasets

    out = tmp_path / "hf-datasets"
    _export(work, "dedup", "hf-datasets", out, "--shard-bytes", "20000")
    loaded = datasets.load_dataset("parquet", data_dir=str(out / "data"), split="train", cache_dir=str(tmp_path / "c"))
    ours = _docs(work, "dedup")
    assert sorted(loaded["id"]) == sorted(ours)
    by_id = {r["id"]: r for r in loaded}
    assert all(by_id[i]["text"] == row["text"] and by_id[i]["crawl"] == row["crawl"] for i, row in ours.items())
    assert all({p["key"]: p["value"] for p in by_id[i]["quality_scores"]} == dict(row["quality_scores"])
               for i, row in ours.items())  # fmt: skip


def test_megatron_indexed_dataset_matches_our_tokens_and_documents(work, tmp_path):
    from megatron.core.datasets.indexed_dataset import IndexedDataset

    out = tmp_path / "megatron"
    _export(work, "tokenize", "megatron", out)
    for split in ("train", "val"):
        dataset = IndexedDataset(str(out / f"{split}_text_document"))
        sequences = [dataset[i] for i in range(len(dataset))]
        # Token for token the stream the trainer reads, one document per sequence, each ending in EOS.
        assert np.array_equal(np.concatenate(sequences), _rows(work, split))
        assert list(dataset.document_indices) == list(range(len(dataset) + 1))
        assert all(s[-1] == EOS_ID for s in sequences[:-1]) and all(EOS_ID not in s[:-1] for s in sequences)
    # Document boundaries are the documents: each train document's own encoding is one sequence
    # (all but the one cut where the shard's last partial row was dropped).
    sp, dataset = _processor(work), IndexedDataset(str(out / "train_text_document"))
    sequences = {tuple(dataset[i].tolist()) for i in range(len(dataset))}
    counts = pq.read_table(next((_output(work, "tokenize") / "token_counts").glob("*.parquet"))).to_pylist()
    train_ids, docs = {r["doc_id"] for r in counts if r["split"] == "train"}, _docs(work, "mix")
    whole = sum(tuple([*sp.encode(docs[d]["text"]), EOS_ID]) in sequences for d in train_ids)
    assert whole >= len(train_ids) - 1 and len(train_ids) > 50


def test_nanogpt_bins_are_the_token_stream(work, tmp_path):
    out = tmp_path / "nanogpt"
    _export(work, "tokenize", "nanogpt", out)
    meta = pickle.loads((out / "meta.pkl").read_bytes())
    assert meta == {"vocab_size": 600}
    for split in ("train", "val"):
        assert np.array_equal(np.memmap(out / f"{split}.bin", dtype=np.uint16, mode="r"), _rows(work, split))


def test_litdata_streams_our_rows(work, tmp_path):
    from litdata import StreamingDataset, TokensLoader

    out = tmp_path / "litdata"
    _export(work, "tokenize", "litdata", out)
    width = 32 + 1
    dataset = StreamingDataset(str(out / "train"), item_loader=TokensLoader(block_size=width), shuffle=False)
    rows = _rows(work, "train").reshape(-1, width)
    assert len(dataset) == len(rows)
    assert np.array_equal(np.stack([np.asarray(dataset[i]) for i in range(len(dataset))]), rows)


def test_hf_llama_matches_our_model_logits_greedy_tokens_and_tokenizer(work, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM, PreTrainedTokenizerFast

    out = tmp_path / "hf"
    _export(work, "train", "hf", out)
    hf = AutoModelForCausalLM.from_pretrained(out).eval()
    assert isinstance(hf, LlamaForCausalLM)
    ours = load_model(_output(work, "train") / "model.pt")
    sp = _processor(work)
    # The tokenizer, loaded both ways, encodes every sample document exactly as SentencePiece does.
    texts = [d["text"] for d in _docs(work, "extract").values()]
    for tokenizer in (AutoTokenizer.from_pretrained(out), PreTrainedTokenizerFast.from_pretrained(out)):
        assert all(tokenizer(t, add_special_tokens=False)["input_ids"] == sp.encode(t) for t in texts)
    ids = torch.tensor([sp.encode(texts[0])[:32], sp.encode(texts[1])[:32]])
    with torch.no_grad():
        assert torch.allclose(hf(ids).logits, ours(ids)[0], atol=1e-4, rtol=0)
    prompt = ids[:1, :8]
    expected = ours.generate(prompt, 16, temperature=0)
    got = hf.generate(prompt, max_new_tokens=16, do_sample=False, eos_token_id=None, pad_token_id=0)
    assert got.tolist() == expected.tolist()


def test_tokenizer_alone_from_the_tokenize_stage(work, tmp_path):
    from transformers import AutoTokenizer

    out = tmp_path / "tok"
    _export(work, "tokenize", "hf", out)
    assert not list(out.glob("*.safetensors"))
    text = "Ünïcode, tabs\tand  spaces\nnew lines 12345 — ok"
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert tokenizer(text, add_special_tokens=False)["input_ids"] == _processor(work).encode(text)


def _cfg():
    return load_config(None, [a for a in TINY_RUN_SETS if a != "--set"])


def test_export_is_cataloged_reused_and_resumed_to_identical_files(work, tmp_path, monkeypatch):
    from tasks.export import documents

    out = tmp_path / "resumed"
    options = ExportConfig(stage="mix", format="jsonl", out=out, shard_bytes=20000)
    clean = run_export(_cfg(), work, options.model_copy(update={"out": tmp_path / "clean"}))
    # Interrupted in the second input shard: the first stays done (its ledger entry), the rest is redone.
    first_shard = [f for f in clean["files"] if f["path"].startswith("documents/mix-00000-")]
    real, calls, interrupted = documents.write_jsonl_gz, [], []

    def dies_in_the_second_shard(table, source, path):
        calls.append(path.name)
        if len(calls) == len(first_shard) + 1 and not interrupted:
            interrupted.append(path.name)
            raise KeyboardInterrupt
        real(table, source, path)

    monkeypatch.setitem(documents.LAYOUTS, "jsonl", (dies_in_the_second_shard, documents.LAYOUTS["jsonl"][1]))
    with pytest.raises(KeyboardInterrupt):
        run_export(_cfg(), work, options)
    assert not (out / EXPORT_MANIFEST).exists() and (out / "_state" / "shard-00000.json").exists()
    calls.clear()
    resumed = run_export(_cfg(), work, options)
    assert calls and not [c for c in calls if c.startswith("mix-00000-")]  # the finished shard is not rewritten
    assert [(f["path"], f["sha256"]) for f in resumed["files"]] == [(f["path"], f["sha256"]) for f in clean["files"]]
    assert run_export(_cfg(), work, options)["reused"] is True
    with Catalog(work).connect(read_only=True) as con:
        exports = con.execute("select format, stage, files from exports where out_dir = ?", [str(out)]).fetchall()
        parents = con.execute("select parent_stage, parent_fingerprint from lineage where child_fingerprint = ?",
                              [resumed["key"]]).fetchall()  # fmt: skip
    assert exports == [("jsonl", "mix", len(resumed["files"]))]
    assert parents == [("mix", json.loads((_output(work, "mix") / "manifest.json").read_text())["fingerprint"])]


def test_wrong_stage_other_export_and_missing_outputs_are_clear_errors(work, tmp_path):
    runner = CliRunner()
    base = ["export", "--workdir", str(work), *TINY_RUN_SETS]
    wrong = runner.invoke(app, [*base, "--stage", "extract", "--format", "megatron", "--out", str(tmp_path / "a")])
    assert wrong.exit_code == 1 and "exports the output of tokenize, not extract" in wrong.output
    _export(work, "tokenize", "nanogpt", tmp_path / "b")
    other = runner.invoke(app, [*base, "--stage", "mix", "--format", "jsonl", "--out", str(tmp_path / "b")])
    assert other.exit_code == 1 and "holds another export" in other.output
    missing = runner.invoke(app, [*base, "--set", "tokenize.vocab_size=700", "--stage", "tokenize",
                                  "--format", "nanogpt", "--out", str(tmp_path / "c")])  # fmt: skip
    assert missing.exit_code == 1 and "tokenize has no output for this config" in missing.output
    bad = runner.invoke(app, [*base, "--stage", "mix", "--format", "parquet", "--out", str(tmp_path / "d")])
    assert bad.exit_code == 2 and "format" in bad.output
    with pytest.raises(ExportError):
        run_export(_cfg(), work, ExportConfig(stage="train", format="jsonl", out=tmp_path / "e"))


def test_export_flow_runs_under_prefect_like_the_cli(work, tmp_path):
    from flows.export import export_flow

    config = _cfg().model_dump(mode="json")
    out = tmp_path / "flow-nanogpt"
    manifest = export_flow(stage="tokenize", format="nanogpt", out=str(out), config=config, workdir=str(work))
    assert manifest["reused"] is False and (out / EXPORT_MANIFEST).exists()
    assert np.array_equal(np.memmap(out / "val.bin", dtype=np.uint16, mode="r"), _rows(work, "val"))
