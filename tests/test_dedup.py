import itertools
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

import tasks.dedup.minhash as minhash
from tasks.dedup.config import DedupConfig
from tasks.dedup.minhash import band_buckets, jaccard, normalize, shingle_hashes, shingles, signatures
from tasks.dedup.quality_check import measure_quality, similar_pairs, synthetic_documents
from tasks.dedup.stage import run
from tasks.documents import FILTER_COLUMNS, write_docs
from tasks.stage import StageInput
from tests.conftest import prose

ROOT = Path(__file__).resolve().parents[1]
NO_CHECK = DedupConfig(quality_check_docs=0)


def _doc(doc_id: str, text: str, quality: float = 0.5) -> dict:
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
        "quality_score": quality,
    }


def _near_copy(text: str) -> str:
    words = text.split(" ")
    for i in range(0, len(words), 90):
        words[i] = "changed"
    return "Other site header. " + " ".join(words)


def _stage_input(tmp_path: Path, shards: list[list[dict]]) -> StageInput:
    files = []
    for i, rows in enumerate(shards):
        path = tmp_path / "in" / f"part-{i}.parquet"
        write_docs(rows, path, FILTER_COLUMNS)
        files.append({"path": f"part-{i}.parquet", "kind": "docs"})
    return StageInput("filter", "fp", tmp_path / "in", {"files": files})


def _dedup(tmp_path: Path, shards: list[list[dict]], cfg: DedupConfig = NO_CHECK):
    outcome = run({"filter": _stage_input(tmp_path, shards)}, cfg, tmp_path / "out")
    kept = pq.read_table(tmp_path / "out" / "docs").to_pylist()
    removed = pq.read_table(tmp_path / "out" / "removed").to_pylist()
    return outcome, kept, removed


def test_exact_and_near_duplicates_removed_with_rule_similarity_and_cluster(tmp_path):
    a, b = prose(5, offset=0), prose(5, offset=10)
    docs = [_doc("a", a), _doc("b", b), _doc("c", a.upper() + " !!"), _doc("d", _near_copy(b)), _doc("e", prose(5, 20))]
    outcome, kept, removed = _dedup(tmp_path, [docs])
    why = {r["doc_id"]: r for r in removed}
    assert set(why) == {"c", "d"}
    assert why["c"]["rule"] == "exact_duplicate" and why["c"]["value"] == 1.0  # case and punctuation normalized
    assert why["d"]["rule"] == "near_duplicate" and 0.7 <= why["d"]["value"] < 1.0
    assert why["d"]["detail"] == "cluster=b"
    clusters = {d["doc_id"]: (d["dup_cluster"], d["dup_cluster_size"]) for d in kept}
    assert clusters == {"a": ("a", 2), "b": ("b", 2), "e": ("e", 1)}
    assert outcome.info["exact_duplicates"] == 1 and outcome.info["near_duplicates"] == 1
    assert outcome.docs_in == 5 and outcome.docs_out == 3 and outcome.docs_removed == 2
    # The LSH buckets are (bucket, doc_id) Parquet rows in a folder per band: 14 bands per document.
    bands = sorted((tmp_path / "out" / "_state" / "minhash" / "buckets").iterdir())
    assert [b.name for b in bands] == [f"band-{b:05d}" for b in range(14)]
    buckets = [pq.read_table(b) for b in bands]
    assert all(t.column_names == ["bucket", "doc_id"] and t.num_rows == 5 for t in buckets)


def test_result_is_independent_of_sharding(tmp_path):
    docs = [_doc(f"{i:02d}", prose(4, offset=4 * i)) for i in range(6)]
    docs += [_doc("90", _near_copy(docs[1]["text"])), _doc("91", docs[4]["text"])]
    one, kept_one, _ = _dedup(tmp_path / "one", [docs])
    two, kept_two, _ = _dedup(tmp_path / "two", [docs[::2], docs[1::2]])
    assert {r["doc_id"] for r in kept_one} == {r["doc_id"] for r in kept_two} == {f"{i:02d}" for i in range(6)}
    assert one.docs_removed == two.docs_removed == 2


@pytest.mark.parametrize(("keep", "survivor"), [("smallest_doc_id", "a"), ("highest_quality", "c"), ("longest", "b")])
def test_survivor_rule(tmp_path, keep, survivor):
    text = prose(5, offset=3)
    docs = [_doc("a", text, 0.2), _doc("b", text + " one more closing sentence here.", 0.5), _doc("c", text, 0.9)]
    _, kept, removed = _dedup(tmp_path, [docs], DedupConfig(keep=keep, quality_check_docs=0))
    assert [d["doc_id"] for d in kept] == [survivor] and len(removed) == 2


def test_verification_rejects_candidates_below_threshold(tmp_path):
    """With one band of one row, every pair sharing a minimum is a candidate: verification must
    keep the dissimilar ones apart, and switching it off must merge them."""
    base = prose(6, offset=30)
    words = base.split()
    half = " ".join(words[: len(words) // 2] + prose(3, offset=60).split())  # Jaccard well under 0.7
    docs = [_doc("a", base), _doc("b", half)]
    assert jaccard(shingles(normalize(base), 5), shingles(normalize(half), 5)) < 0.5
    # A seed under which they share the one band's one row: a candidate pair (chance ~ Jaccard per seed).
    seed = next(s for s in range(1, 100) if len({*signatures([normalize(base), normalize(half)], 16, 5, s)[:, 0]}) == 1)
    loose = {"num_perm": 16, "bands": 1, "rows": 1, "quality_check_docs": 0, "seed": seed}
    for verify, removed_n in (("jaccard", 0), ("signature", 0), ("none", 1)):
        _, _, removed = _dedup(tmp_path / verify, [docs], DedupConfig(verify=verify, **loose))
        assert len(removed) == removed_n, verify


@pytest.mark.parametrize("verify", ["jaccard", "signature", "none"])
def test_clusters_do_not_depend_on_partitions_or_workers(tmp_path, verify):
    """The global phase's partitioned steps (pairs by band, verification by pair partition, values
    routed from each shard) give the same clusters with 1 partition in one process as with 5 in two."""
    from tasks.dedup.phases import cluster_documents
    from tasks.dedup.quality_check import write_synthetic_shards

    shards = write_synthetic_shards(3000, 5, tmp_path / "in")
    results = []
    for name, partitions, workers in (("one", 1, 1), ("five", 5, 2)):
        cfg = DedupConfig(verify=verify, partitions=partitions, workers=workers, quality_check_docs=0)
        stats = cluster_documents(shards, cfg, tmp_path / name)
        results.append((pq.read_table(tmp_path / name / "clusters.parquet").to_pylist(),
                        {k: v for k, v in stats.items() if not k.endswith("seconds")}))  # fmt: skip
    assert results[0] == results[1]
    clusters, stats = results[0]
    assert stats["near_duplicates"] > 100 and stats["exact_duplicates"] > 10
    assert stats["exact_duplicates"] + stats["near_duplicates"] == sum(r["rule"] is not None for r in clusters)


def test_components_of_a_long_shuffled_chain_take_a_few_passes():
    """A 1,000-link chain given in random order (min-label propagation alone would need ~1,000
    passes) and two small components: each labelled with its smallest member, in a few passes."""
    import duckdb

    from tasks.dedup.components import label_components

    rng = np.random.default_rng(0)
    nodes = rng.permutation(np.arange(10, 1011))
    links = [(int(a), int(b)) for a, b in zip(nodes[:-1], nodes[1:], strict=True)] + [(3, 1), (1, 2), (5, 7)]
    rng.shuffle(links)
    con = duckdb.connect()
    con.execute("create table links (a bigint, b bigint)")
    con.executemany("insert into links values (?, ?)", links)
    passes = label_components(con)
    labels = dict(con.execute("select x, l from label").fetchall())
    assert labels == {**{int(n): 10 for n in nodes}, 1: 1, 2: 1, 3: 1, 5: 5, 7: 5}
    assert passes <= 25


WEB_TEXTS = [
    "",
    "one",
    "four words only here",
    "exactly five words in this",
    "Grüße aus Köln: naïve café, 東京の天気は晴れです。 Ünïcödé words repeat repeat repeat repeat repeat",
    prose(8, offset=3),
    prose(2, offset=11) + " " + prose(2, offset=11),  # repeated shingles count once
]


def test_ascii_fast_path_normalizes_as_the_unicode_path():
    """ASCII text skips NFKC and the regex; every ASCII character must map as the regex maps it."""
    import random
    import re
    import unicodedata

    def by_regex(text: str) -> str:
        return " ".join(re.sub(r"[^\w\s]", " ", unicodedata.normalize("NFKC", text).lower()).split())

    rng = random.Random(0)
    for _ in range(3000):
        text = "".join(chr(rng.randrange(128)) for _ in range(rng.randrange(60)))
        assert normalize(text) == by_regex(text), repr(text)
    assert normalize("Ünïcödé, ﬁne") == by_regex("Ünïcödé, ﬁne") == "ünïcödé fine"


def test_shingle_hashes_are_the_shingle_sets():
    """One hash per distinct word 5-gram (the bytes `shingles` makes), the same whatever else is in
    the batch or where in the buffer the document sits."""
    for text in map(normalize, WEB_TEXTS):
        hashes = shingle_hashes(text, 5)
        assert len(hashes) == len(shingles(text, 5)), text[:40]
        assert len(np.unique(hashes)) == len(hashes)
    a, b = normalize(prose(3, offset=5)), normalize(prose(3, offset=9))
    shared = " ".join(b.split()[:5])  # the one 5-gram at the start of b, also placed inside a
    ha = shingle_hashes(a + " " + shared, 5)
    assert shingle_hashes(shared, 5)[0] in ha and shingle_hashes(shared, 5)[0] in shingle_hashes(b, 5)


def test_signatures_equal_datasketch_on_the_same_shingle_hashes():
    """Vectorised, but datasketch's values: affine32 scheme, its seeded permutations."""
    from datasketch import MinHash

    texts = [normalize(t) for t in WEB_TEXTS]
    sigs = signatures(texts, 64, 5, seed=7)
    for text, row in zip(texts, sigs, strict=True):
        expected = MinHash(num_perm=64, seed=7, hashfunc=int)
        expected.update_batch(shingle_hashes(text, 5).tolist())
        assert np.array_equal(expected.hashvalues, row)


def test_signatures_do_not_depend_on_batching_or_windows(monkeypatch):
    """Documents cut by a permutation window or spread over byte batches get the same signatures."""
    texts = [normalize(prose(4, offset=i)) for i in range(40)] + [normalize(t) for t in WEB_TEXTS]
    whole = signatures(texts, 32, 5, seed=1)
    monkeypatch.setattr(minhash, "_WINDOW", 37)
    monkeypatch.setattr(minhash, "_BATCH_BYTES", 900)
    assert np.array_equal(signatures(texts, 32, 5, seed=1), whole)
    assert signatures([], 32, 5, seed=1).shape == (0, 32)


def test_signature_agreement_estimates_jaccard():
    """The share of equal signature rows tracks the true shingle Jaccard (binomial error at 256 rows)."""
    base = normalize(prose(30, offset=2))
    words = base.split()
    rng = np.random.default_rng(0)
    for rate in (0.02, 0.1, 0.3):
        edited = " ".join(w if rng.random() > rate else "zq" + w for w in words)
        true = jaccard(shingles(base, 5), shingles(edited, 5))
        sigs = signatures([base, edited], 256, 5, seed=3)
        estimate = float(np.mean(sigs[0] == sigs[1]))
        assert abs(estimate - true) < 4 * np.sqrt(true * (1 - true) / 256) + 0.01, (rate, true, estimate)


def test_band_buckets_equal_exactly_when_band_rows_equal():
    rng = np.random.default_rng(0)
    sigs = rng.integers(0, 2**32, size=(3, 16), dtype=np.uint64).astype(np.uint32)
    sigs[1, :8] = sigs[0, :8]  # docs 0 and 1 share band 0 only
    buckets = band_buckets(sigs, bands=2, rows=8)
    assert buckets[0, 0] == buckets[1, 0] and buckets[0, 1] != buckets[1, 1]
    assert len({*buckets[:, 0].tolist(), *buckets[:, 1].tolist()}) == 5  # band index is part of the hash
    assert buckets.dtype == np.int64


def test_repeated_doc_id_is_a_clear_error(tmp_path):
    docs = [_doc("a", prose(3)), _doc("a", prose(3, offset=5))]
    with pytest.raises(ValueError, match="repeated doc_id"):
        _dedup(tmp_path, [docs])


def test_bands_times_rows_must_fit_the_permutations():
    with pytest.raises(ValueError, match="exceeds num_perm"):
        DedupConfig(num_perm=64, bands=14, rows=8)


def test_prefix_filter_ground_truth_equals_brute_force():
    texts = [d["text"] for d in synthetic_documents(300, seed=4)]
    sets = [shingles(normalize(t), 5) for t in texts]
    brute = {
        (a, b): jaccard(sets[a], sets[b])
        for a, b in itertools.combinations(range(len(texts)), 2)
        if jaccard(sets[a], sets[b]) >= 0.6
    }
    fast = similar_pairs(texts, 5, 0.6)
    assert len(brute) > 30  # the generator makes near-duplicates across the range
    assert set(fast) == set(brute)
    assert all(abs(fast[p] - brute[p]) < 1e-9 for p in brute)


def test_quality_check_small_scale(tmp_path):
    """The measurement itself, at a size the fast suite affords; the 20,000-doc run is below."""
    cfg = DedupConfig(quality_check_docs=2000)
    strict = measure_quality([], cfg, tmp_path / "jaccard")
    loose = measure_quality([], DedupConfig(quality_check_docs=2000, verify="none"), tmp_path / "none")
    assert strict["pairs_ge_0.8"] > 100 and strict["recall_ge_0.8"] >= 0.95 and strict["precision"] >= 0.98
    assert loose["removed"] > strict["removed"] and loose["precision"] < strict["precision"]


@pytest.mark.slow
def test_quality_on_20000_documents_meets_targets(tmp_path):
    result = measure_quality([], DedupConfig(quality_check_docs=20000), tmp_path)
    assert result["docs"] == 20000 and result["pairs_ge_0.8"] > 3000
    assert result["recall_ge_0.8"] >= 0.95, result
    assert result["precision"] >= 0.98, result


MEMORY_PROBE = """
import json, resource, sys
from pathlib import Path
from tasks.dedup.config import DedupConfig
from tasks.dedup.phases import cluster_documents
if __name__ == "__main__":
    shards, work = json.loads(sys.argv[1]), Path(sys.argv[2])
    cfg = DedupConfig(memory_limit_mb=64, workers=1, quality_check_docs=0)
    import duckdb, numpy, pyarrow.parquet, datasketch  # baseline after imports
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    stats = cluster_documents(shards, cfg, work)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"growth_kb": peak - base, **stats}))
"""


@pytest.mark.slow
def test_memory_stays_bounded_as_input_grows(tmp_path):
    """Dedup with DuckDB capped at 64 MB, in one process: 4x the documents (same shard size) must
    not raise peak memory by more than half the extra text. The earlier all-in-memory dedup held
    every document and signature, several times the text."""
    docs = synthetic_documents(32000, seed=9)
    docs = [docs[i] for i in np.random.default_rng(0).permutation(len(docs))]  # duplicates in every shard
    shard_paths = []
    for i in range(0, len(docs), 2000):
        path = tmp_path / "in" / f"part-{i // 2000:02d}.parquet"
        write_docs([_doc(d["doc_id"], d["text"]) for d in docs[i : i + 2000]], path, FILTER_COLUMNS)
        shard_paths.append(str(path))
    script = tmp_path / "probe.py"
    script.write_text(MEMORY_PROBE)

    def probe(paths: list[str], name: str) -> dict:
        out = subprocess.run(
            [sys.executable, str(script), json.dumps(paths), str(tmp_path / name)],
            cwd=ROOT, capture_output=True, text=True, timeout=900,
        )  # fmt: skip
        assert out.returncode == 0, out.stderr[-3000:]
        return json.loads(out.stdout.strip().splitlines()[-1])

    small, large = probe(shard_paths[:4], "small"), probe(shard_paths, "large")
    extra_text_kb = sum(len(d["text"].encode()) for d in docs[8000:]) // 1024
    assert large["docs"] == 32000 and large["near_duplicates"] > 4000 and extra_text_kb > 30_000
    assert large["growth_kb"] - small["growth_kb"] < extra_text_kb / 2, (small, large, extra_text_kb)
