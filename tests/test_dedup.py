from pathlib import Path

import pyarrow.parquet as pq

from tasks.config import DedupConfig
from tasks.dedup_stage import find_clusters, run
from tasks.documents import FILTER_COLUMNS, write_docs
from tasks.stage import StageInput
from tests.conftest import prose


def _doc(doc_id: str, text: str) -> dict:
    return {
        "doc_id": doc_id,
        "url": f"https://x.example/{doc_id}",
        "host": "x.example",
        "crawl": "c",
        "warc_path": "w",
        "fetch_time": "t",
        "lang": "en",
        "lang_score": 1.0,
        "text": text,
        "n_chars": len(text),
        "n_words": len(text.split()),
        "quality_score": 0.5,
    }


def _near_copy(text: str) -> str:
    words = text.split(" ")
    for i in range(0, len(words), 90):
        words[i] = "changed"
    return "Other site header. " + " ".join(words)


def test_clusters_exact_and_near_duplicates(tmp_path):
    a, b = prose(5, offset=0), prose(5, offset=10)
    docs = [_doc("a", a), _doc("b", b), _doc("c", a.upper() + " !!"), _doc("d", _near_copy(b))]
    uf, why = find_clusters(docs, DedupConfig(), tmp_path)
    assert uf.find(2) == uf.find(0) and why[2][0] == "exact_duplicate"  # case and punctuation normalized
    assert uf.find(3) == uf.find(1) and why[3][0] == "near_duplicate" and why[3][1] >= 0.7
    assert uf.find(0) != uf.find(1)


def _stage_input(tmp_path: Path, shards: list[list[dict]]) -> StageInput:
    files = []
    for i, rows in enumerate(shards):
        path = tmp_path / "in" / f"part-{i}.parquet"
        write_docs(rows, path, FILTER_COLUMNS)
        files.append({"path": f"part-{i}.parquet", "kind": "docs"})
    return StageInput("filter", "fp", tmp_path / "in", {"files": files})


def test_result_is_independent_of_sharding(tmp_path):
    docs = [_doc(f"{i:02d}", prose(4, offset=4 * i)) for i in range(6)]
    docs += [_doc("90", _near_copy(docs[1]["text"])), _doc("91", docs[4]["text"])]
    one = run({"filter": _stage_input(tmp_path / "one", [docs])}, DedupConfig(), tmp_path / "one" / "out")
    two = run(
        {"filter": _stage_input(tmp_path / "two", [docs[::2], docs[1::2]])}, DedupConfig(), tmp_path / "two" / "out"
    )
    kept_one = {r["doc_id"] for r in pq.read_table(tmp_path / "one" / "out" / "docs").to_pylist()}
    kept_two = {r["doc_id"] for r in pq.read_table(tmp_path / "two" / "out" / "docs").to_pylist()}
    assert kept_one == kept_two == {"00", "01", "02", "03", "04", "05"}
    assert one.docs_removed == two.docs_removed == 2
