"""Keep the benchmark scripts working on a tiny input (their timings are not asserted)."""

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # each runs a benchmark script end to end: CI, not the fast tier

ROOT = Path(__file__).resolve().parents[1]


def test_train_throughput_benchmark_runs(tmp_path):
    subprocess.run([sys.executable, "benchmarks/train_throughput.py", "--presets", "tiny", "--steps", "4",
                    "--log-every", "2", "--repeats", "1", "--seq-len", "16", "--vocab-size", "64",
                    "--out", str(tmp_path)], cwd=ROOT, check=True, capture_output=True)  # fmt: skip
    [result] = tmp_path.glob("*-train-cpu.json")
    report = json.loads(result.read_text())
    assert report["results"][0]["preset"] == "tiny" and report["results"][0]["tokens_per_s"] > 0


def test_timed_throughput_drops_warm_up_and_weights_the_window_by_steps():
    from benchmarks.measure import timed_throughput

    # CPU: every step logged; the first 2 (warm-up) are dropped, the median step remains.
    per_step = [{"step": s, "loss": 1.0, "tokens_per_s": tps} for s, tps in enumerate([1, 2, 100, 90, 110], 1)]
    cpu = timed_throughput(per_step, warm=2)
    assert cpu["tokens_per_s"] == 100 and cpu["tokens_per_s_window"] == pytest.approx(3 / (1 / 100 + 1 / 90 + 1 / 110))
    # CUDA: intervals of 4 steps and a last one of 1; the first holds the 3 warm-up steps.
    intervals = [{"step": 4, "tokens_per_s": 5.0}, {"step": 8, "tokens_per_s": 100.0},
                 {"step": 12, "tokens_per_s": 200.0}, {"step": 13, "tokens_per_s": 1.0}]  # fmt: skip
    cuda = timed_throughput(intervals, warm=3)
    assert "mfu" not in cuda
    assert cuda["tokens_per_s"] == 100 and cuda["tokens_per_s_window"] == pytest.approx(9 / (4 / 100 + 4 / 200 + 1))
    # MFU, where the trainer logs it, over the same intervals.
    with_mfu = [h | {"mfu": h["tokens_per_s"] / 1000} for h in intervals]
    assert timed_throughput(with_mfu, warm=3)["mfu"] == pytest.approx(0.1)
    with pytest.raises(ValueError, match="warm-up"):
        timed_throughput(intervals[:1], warm=3)


def test_tokenize_throughput_benchmark_runs(tmp_path):
    cmd = [sys.executable, "benchmarks/tokenize_throughput.py", "--docs", "60", "--repeats", "1", "--vocab-size", "400",
           "--out", str(tmp_path)]  # fmt: skip
    subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True)
    [result] = tmp_path.glob("*-tokenize.json")
    results = json.loads(result.read_text())["results"]
    assert len(results) == 6 and all(r["tokens_per_s"] > 0 for r in results.values())
    # tiktoken runs the HF-trained vocabulary: the two must split the text into the same tokens.
    counts = {name.split(" ")[0]: r["tokens"] for name, r in results.items()}
    assert counts["HF"] == counts["tiktoken"]


def test_eval_throughput_benchmark_runs(tmp_path):
    cmd = [sys.executable, "benchmarks/eval_throughput.py", "--preset", "tiny", "--items", "6", "--out", str(tmp_path)]
    subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True)
    [result] = tmp_path.glob("*-eval.json")
    report = json.loads(result.read_text())
    assert set(report["tasks"]) == {"mmlu", "hellaswag"} and report["mmlu_14042_items_minutes"] > 0
    assert all(t["batched_items_per_s"] > 0 and t["one_at_a_time_items_per_s"] > 0 for t in report["tasks"].values())


def test_host_syncs_benchmark_charges_reads_to_the_flush_steps_only(tmp_path):
    cmd = [sys.executable, "benchmarks/host_syncs.py", "--steps", "7", "--log-every", "3", "--seq-len", "16",
           "--vocab-size", "64", "--out", str(tmp_path)]  # fmt: skip
    subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True)
    [result] = tmp_path.glob("*-host-syncs-cpu.json")
    report = json.loads(result.read_text())
    assert report["flush_steps"] == [3, 6, 7]
    assert report["syncs_outside_flushes"] == 0
    assert all(report["per_step"][str(s)] > 0 for s in (3, 6, 7))  # the counter sees the reads that do happen


def test_extract_throughput_benchmark_runs(tmp_path):
    cmd = [sys.executable, "benchmarks/extract_throughput.py", "--pages", "60", "--files", "2", "--repeats", "1",
           "--workers", "2", "--out", str(tmp_path)]  # fmt: skip
    subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True)
    [result] = tmp_path.glob("*-extract.json")
    results = json.loads(result.read_text())["results"]
    runs = [("read", ""), *(("extract", f" x{w}{e}") for w in (1, 2) for e in ("", " resiliparse"))]
    assert set(results) == {f"{kind} {reader}{suffix}" for reader in ("warcio", "fastwarc") for kind, suffix in runs}
    # Both readers read every record, and extraction quality does not depend on the reader.
    assert len({r["records"] for r in results.values()}) == 1
    assert (
        results["extract warcio x1"]["extract_word_recall"]
        == results["extract fastwarc x2"]["extract_word_recall"]
        > 0.9
    )
    assert results["extract warcio x1 resiliparse"]["extract_word_recall"] > 0.9  # the other extractor, measured too


def test_dedup_throughput_benchmark_runs(tmp_path):
    cmd = [sys.executable, "benchmarks/dedup_throughput.py", "--docs", "400", "800", "--workers", "2",
           "--partitions", "3", "--out", str(tmp_path)]  # fmt: skip
    subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True)
    [result] = tmp_path.glob("*-dedup.json")
    sizes = json.loads(result.read_text())["sizes"]
    assert [s["docs"] for s in sizes] == [400, 800]
    for size in sizes:
        assert size["global"]["docs"] == size["docs"] and size["global"]["near_duplicates"] > 0
        for phase in ("signatures", "global"):
            assert size[phase]["seconds"] > 0 and size[phase]["peak_rss_flow_mb"] > 0 and size[phase]["disk_mb"] > 0
            rss = size[phase]  # sampled every 0.1 s: a task of a tiny run may end unseen
            assert rss["peak_rss_all_mb"] > 0 and rss["peak_rss_all_mb"] > rss["peak_rss_task_mb"] >= 0
    assert sizes[1]["global"]["time_per_doc_growth"] > 0
    assert list(tmp_path.glob("*-dedup.png"))  # the curve


def test_url_prefilter_benchmark_runs(tmp_path):
    cmd = [sys.executable, "benchmarks/url_prefilter.py", "--pages", "120", "--repeats", "1", "--out", str(tmp_path)]
    subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True)
    [result] = tmp_path.glob("*-url-prefilter.json")
    report = json.loads(result.read_text())
    assert report["not_extracted"] > 0 and report["kept_documents_subset"]
    assert report["kept_documents"]["with"] < report["kept_documents"]["without"]


def test_crawl_cost_benchmark_runs(tmp_path):
    # A dedup curve whose time per document grows 1.1x per tenfold from 1M to 10M documents.
    curve = {
        "workers": 2,
        "sizes": [
            {"docs": 10**6, "signatures": {"seconds": 50}, "global": {"seconds": 50}},
            {"docs": 10**7, "signatures": {"seconds": 500}, "global": {"seconds": 600}},
        ],
    }
    (tmp_path / "curve.json").write_text(json.dumps(curve))
    cmd = [sys.executable, "benchmarks/crawl_cost.py", "--size-mb", "4", "--out", str(tmp_path),
           "--dedup-curve", str(tmp_path / "curve.json")]  # fmt: skip
    subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True)
    [result] = tmp_path.glob("*-crawl-cost.json")
    report = json.loads(result.read_text())
    assert set(report["stages"]) == {"extract", "filter", "dedup", "tokenize"}
    assert all(s["core_seconds_per_gb"] > 0 and s["crawl_core_hours"] > 0 for s in report["stages"].values())
    assert report["stages"]["extract"]["crawl_docs_in"] == report["crawl"]["pages"]
    dedup = report["stages"]["dedup"]
    assert dedup["from_curve"]["growth_per_tenfold"] == 1.1 and dedup["from_curve"]["core_us_per_doc"] == 220.0
    docs = dedup["crawl_docs_in"]
    expected = 220e-6 * 1.1 ** math.log10(docs / 10**7) * docs / 3600
    assert dedup["crawl_core_hours"] == round(expected)


@pytest.mark.slow
def test_crawl_cost_measures_a_users_warc(tmp_path):
    """--warc: the user's own pages (24 English, 12 Japanese ones the sample config's languages drop,
    and a non-page record), not generated ones."""
    from tests.conftest import html_page, native_text, prose, write_warc

    english = [html_page(prose(4, offset=4 * i)) for i in range(24)]
    japanese = [html_page(native_text("ja", 1500, offset=i)) for i in range(12)]
    pages = [(f"https://site.example/{i}", "200 OK", "text/html; charset=utf-8", body)
             for i, body in enumerate(english + japanese)]  # fmt: skip
    pages.append(("https://site.example/logo.png", "200 OK", "image/png", b"\x89PNG not a page"))
    warc = write_warc(tmp_path / "mine.warc.gz", pages)
    cmd = [sys.executable, "benchmarks/crawl_cost.py", "--warc", str(warc), "--out", str(tmp_path / "out")]
    subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True)
    [result] = (tmp_path / "out").glob("*-crawl-cost.json")
    report = json.loads(result.read_text())
    assert report["warc"] == str(warc) and report["records"] == 37
    assert report["stages"]["extract"]["docs_in"] == 37 and 0 < report["stages"]["filter"]["docs_in"] <= 24


@pytest.mark.slow
def test_side_by_side_benchmarks_run(tmp_path):
    """benchmarks/run.py --quick: every comparison (datatrove, plain PyTorch, tokenizers, scaling) on tiny inputs."""
    subprocess.run([sys.executable, "benchmarks/run.py", "--quick", "--out", str(tmp_path)], cwd=ROOT, check=True,
                   capture_output=True)  # fmt: skip
    [result] = [p for p in tmp_path.glob("*.json")]
    report = json.loads(result.read_text())
    results = report["results"]
    assert {
        "extract+filter sample datatrove x1",
        "extract+filter sample ours-warcio x1",
        "minhash ours x2",
        "minhash datatrove x2",
        "train tiny ours",
        "train tiny plain-pytorch",
        "scaling pipeline 4x",
        "signatures before x1",
        "signatures ours x1",
        "signatures rensa x1",
        "signatures datatrove x1",
        "prefilter extract sample url-rules-first x1",
    } <= set(results)
    assert results["prefilter extract sample url-rules-first x1"]["not_extracted"] > 0
    # Every signature implementation ran over the same documents; the quality check ran with both.
    assert len({results[f"signatures {impl} x1"]["docs"] for impl in ("before", "ours", "rensa", "datatrove")}) == 1
    assert results["dedup quality check ours"]["recall_ge_0.8"] > 0.9
    # Same input, same stage semantics: both sides keep documents, and the ratios are computed.
    assert results["extract+filter sample datatrove x1"]["docs_out"] > 0
    assert results["extract+filter sample ours-warcio x1"]["docs_out"] > 0
    assert all(s["ratio"] > 0 for s in report["summary"].values()) and len(report["summary"]) >= 8
    assert results["minhash ours x2"]["docs_out"] < 400  # the generated near-duplicates were removed
    assert (tmp_path / result.name.replace(".json", ".md")).read_text().count("|") > 50


def test_long_crawl_benchmark_runs(tmp_path):
    subprocess.run([sys.executable, "benchmarks/long_crawl.py", "--sizes-mb", "1,2", "--out", str(tmp_path)], cwd=ROOT,
                   check=True, capture_output=True)  # fmt: skip
    [result] = tmp_path.glob("*-long-crawl.json")
    rows = json.loads(result.read_text())["results"]
    assert [r["size_mb"] for r in rows] == [1, 2]
    assert all(r["records"] > 20 and r["docs"] > 0 and r["peak_rss_mb"] > 0 for r in rows)
    assert rows[1]["records"] > rows[0]["records"]


def test_judge_benchmark_runs_and_its_rerun_is_all_cache(tmp_path):
    cmd = [sys.executable, "benchmarks/judge_sample.py", "--sample", "60", "--pages", "200", "--out", str(tmp_path)]
    subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True)
    [result] = tmp_path.glob("*-judge.json")
    report = json.loads(result.read_text())
    assert report["annotations"] == 60 and report["rerun_calls"] == 0 and report["rerun_cache_hits"] == 60
    assert 0 <= report["judge_f1"] <= 1 and report["docs_kept"] <= report["docs_in"]


def test_sample_run_benchmark_records_the_funnel_and_the_yardstick(tmp_path):
    from tests.conftest import TINY_RUN

    sets = [a for s in TINY_RUN for a in ("--set", s)]
    subprocess.run([sys.executable, "benchmarks/sample_run.py", "--out", str(tmp_path), *sets], cwd=ROOT, check=True,
                   capture_output=True)  # fmt: skip
    [result] = tmp_path.glob("*-sample-run-custom.json")
    report = json.loads(result.read_text())
    stages = {s["stage"]: s for s in report["stages"]}
    assert set(stages) >= {"acquire", "extract", "filter", "dedup", "tokenize", "train", "evaluate"}
    assert stages["extract"]["docs_in"] == stages["extract"]["docs_out"] + stages["extract"]["docs_removed"]
    low, high = report["yardstick_bits_per_byte"]["ci"]
    assert low < report["yardstick_bits_per_byte"]["value"] < high
    assert report["cached_run_s"] < report["first_run_s"]


def test_post_training_benchmark_measures_sft_and_both_dpo_variants(tmp_path):
    from tests.conftest import TINY_PIPELINE

    sets = [*TINY_PIPELINE, "tokenize.seq_len=64", "train.max_steps=20", "sft.enabled=true", "sft.max_steps=6",
            "sft.batch_size=8", "dpo.max_steps=4", "dpo.batch_size=8", "dpo.val_every=2",
            "evaluate.chat_prompts=6", "evaluate.chat_max_new_tokens=6", "evaluate.max_new_tokens=4"]  # fmt: skip
    args = [
        sys.executable,
        "benchmarks/post_training.py",
        "--out",
        str(tmp_path),
        *[a for s in sets for a in ("--set", s)],
    ]
    done = subprocess.run(args, cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    [result] = tmp_path.glob("*-post-training-custom.json")
    variants = json.loads(result.read_text())["variants"]
    assert set(variants) == {"rpo", "plain"}
    for v in variants.values():
        assert set(v["chat"]) == {"base", "sft", "dpo"} and v["preference"]["before"]["pref_accuracy"] == 0.5
        low, high = v["preference"]["after"]["ci"]
        assert low <= v["preference"]["after"]["pref_accuracy"] <= high
    assert set(variants["plain"]["seconds"]) == {"dpo", "evaluate"}  # only what the variant changes reruns
    assert "| sft |" in next(tmp_path.glob("*-post-training-custom.md")).read_text()


def test_segmenters_benchmark_measures_each_language(tmp_path):
    subprocess.run([sys.executable, "benchmarks/segmenters.py", "--docs", "5", "--chars", "300", "--languages",
                    "en,ja,th", "--out", str(tmp_path)], cwd=ROOT, check=True, capture_output=True)  # fmt: skip
    [result] = tmp_path.glob("*-segmenters.json")
    report = json.loads(result.read_text())["results"]
    assert report["ja"]["segmenter"] == "sudachi" and report["ja"]["words_per_doc"] > report["en"]["words_per_doc"] / 3
    assert all(r["docs_per_s"] > 0 for r in report.values())
