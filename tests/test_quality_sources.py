"""Reference corpora and published fastText classifiers by URL, served from 127.0.0.1: fetched once,
pinned by sha256, read as text, JSONL or Parquet; a published model's positive label found or asked for."""

from __future__ import annotations

import functools
import gzip
import hashlib
import json
import threading
from collections import Counter
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tasks.fasttext_training import train_and_save
from tasks.filter.classifiers import prepare_classifier
from tasks.filter.config import QualityClassifierConfig
from tasks.filter.quality import reference_texts, score_text
from tasks.filter.remote import PinMismatch
from tests.conftest import prose

FAST = {"retries": 1, "backoff_s": 0.01, "backoff_max_s": 0.05}


class FileHost:
    """A static file server on 127.0.0.1 that counts GETs per path."""

    def __init__(self, root: Path):
        self.gets: Counter[str] = Counter()
        host = self

        class Handler(SimpleHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                host.gets[self.path] += 1
                super().do_GET()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(root)))
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def host(tmp_path):
    root = tmp_path / "served"
    root.mkdir()
    server = FileHost(root)
    yield root, server
    server.close()


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_reference_corpora_by_url_in_jsonl_gz_and_parquet_are_fetched_once_and_pinned(host, tmp_path):
    root, server = host
    paragraphs = prose(40).split("\n\n")
    with gzip.open(root / "ref.jsonl.gz", "wt") as f:
        for p in paragraphs[:20]:
            f.write(json.dumps({"content": p}) + "\n")
    pq.write_table(pa.table({"text": paragraphs[20:]}), root / "ref.parquet")
    cfg = QualityClassifierConfig.model_validate({"download": FAST, "reference_paths": [
        {"path": f"{server.url}/ref.jsonl.gz", "sha256": sha(root / "ref.jsonl.gz"), "text_key": "content"},
        f"{server.url}/ref.parquet",
    ]})  # fmt: skip
    texts = reference_texts(cfg, tmp_path / "cache")
    joined = "\n\n".join(texts)
    assert paragraphs[0][:80] in joined and paragraphs[-1][:80] in joined
    assert reference_texts(cfg, tmp_path / "cache") == texts
    assert server.gets["/ref.jsonl.gz"] == 1 and server.gets["/ref.parquet"] == 1  # cached after the first
    wrong = cfg.model_copy(update={"reference_paths": [
        cfg.reference_paths[0].model_copy(update={"sha256": "0" * 64})]})  # fmt: skip
    with pytest.raises(PinMismatch, match="pins 0000"):
        reference_texts(wrong, tmp_path / "cache")


def test_a_missing_local_reference_file_is_a_config_error(tmp_path):
    with pytest.raises(ValueError, match="no such file"):
        QualityClassifierConfig(reference_paths=[str(tmp_path / "nope.txt")])


def published_model(tmp_path: Path, labels: tuple[str, str]) -> Path:
    """A DCLM-shaped fastText model: labels[0] on reference prose, labels[1] on shop text."""
    good = prose(60).split("\n\n")
    bad = [" ".join(f"buy item{(i * j) % 40} cheap deal click" for j in range(15)) for i in range(60)]
    lines = [f"{labels[0]} {' '.join(t.lower().split())}" for t in good]
    lines += [f"{labels[1]} {t}" for t in bad]
    train = tmp_path / f"{labels[0]}.train.txt"
    train.write_text("\n".join(lines) + "\n")
    model = tmp_path / f"model-{labels[0].removeprefix('__label__')}.bin"
    train_and_save(train, model, 0.5, epoch=10, wordNgrams=2, bucket=1 << 16, dim=16, minCount=1, seed=0)
    return model


def _docs(tmp_path: Path) -> str:
    rows = [{"doc_id": f"d{i}", "text": p} for i, p in enumerate(prose(30, offset=100).split("\n\n"))]
    rows += [
        {"doc_id": f"s{i}", "text": " ".join(f"buy item{i} cheap deal click" for _ in range(20))} for i in range(30)
    ]
    path = tmp_path / "docs.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path)
    return str(path)


def test_published_classifier_by_url_is_fetched_once_with_its_positive_label_found(host, tmp_path):
    root, server = host
    model = published_model(root, ("__label__hq", "__label__cc"))
    url = f"{server.url}/{model.name}"
    cfg = QualityClassifierConfig.model_validate({"model_url": url, "sha256": sha(model), "download": FAST})
    outputs = tmp_path / "work" / "artifacts" / "filter"  # two filter outputs of one workdir: one cache
    for name in "abc":
        (outputs / name).mkdir(parents=True)
    model_path, info = prepare_classifier([_docs(tmp_path)], cfg, outputs / "a")
    assert info["quality_model"] == "url" and info["quality_positive_label"] == "__label__hq"
    shop = " ".join("buy item cheap deal click" for _ in range(20))
    assert score_text(model_path, prose(3, offset=200), cfg) > score_text(model_path, shop, cfg)
    prepare_classifier([_docs(tmp_path)], cfg.model_copy(update={"min_score": 0.2}), outputs / "b")
    assert server.gets[f"/{model.name}"] == 1 and (tmp_path / "work" / "cache" / "downloads").is_dir()
    with pytest.raises(PinMismatch):
        bad = cfg.model_copy(update={"sha256": "f" * 64})
        prepare_classifier([_docs(tmp_path)], bad, outputs / "c")


def test_ambiguous_labels_are_a_clear_error_unless_the_label_is_named(host, tmp_path):
    root, server = host
    model = published_model(root, ("__label__keep", "__label__drop"))
    base = {"model_url": f"{server.url}/{model.name}", "download": FAST}
    with pytest.raises(ValueError, match=r"\['__label__keep', '__label__drop'\]|\['__label__drop', '__label__keep'\]"):
        prepare_classifier([_docs(tmp_path)], QualityClassifierConfig.model_validate(base), tmp_path / "a")
    named = QualityClassifierConfig.model_validate({**base, "positive_label": "__label__keep"})
    _, info = prepare_classifier([_docs(tmp_path)], named, tmp_path / "b")
    assert info["quality_positive_label"] == "__label__keep"
    with pytest.raises(ValueError, match="model_path and model_url"):
        QualityClassifierConfig(model_path=str(model), model_url="https://example.org/m.bin")
