"""One measurement, run by `benchmarks/run.py` in a process of its own (so its peak RSS is its own):

    python benchmarks/measure.py NAME JSON_ARGS   ->   prints one JSON line

Ours and datatrove do the same work on the same files with the same thresholds:
- extract+filter: WARC -> HTML responses -> trafilatura (precision) -> Gopher repetition, Gopher
  quality, C4 quality filters -> kept documents written out. Ours also runs language id (datatrove's
  pipeline here does not), so ours does strictly more per document.
- minhash: 5-word shingles, 14 buckets x 8 hashes, 64-bit hashes on datatrove's side, over the same
  documents; both write the surviving documents. Ours also verifies candidate pairs by exact Jaccard.
"""

from __future__ import annotations

import gzip
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any


def ours_extract_filter(warcs: list[str], work: str, workers: int, reader: str = "warcio") -> dict[str, Any]:
    from tasks.extract.config import ExtractConfig
    from tasks.extract.stage import ExtractShard
    from tasks.extract.stage import process_shard as extract_shard
    from tasks.filter.config import FilterConfig
    from tasks.filter.stage import FilterShard
    from tasks.filter.stage import process_shard as filter_shard
    from tasks.stage import map_shards, sum_stats

    out = Path(work)
    params = ExtractShard(ExtractConfig(reader=reader), "")
    extracted = sum_stats(map_shards(extract_shard, warcs, out / "extract", params, workers=workers, label="extract"))
    docs = [str(p) for p in sorted((out / "extract" / "docs").glob("*.parquet"))]
    cfg = FilterConfig(quality={"enabled": False}, redact_pii=False, c4={"enabled": True}, blocklist_file=None)
    kept = sum_stats(
        map_shards(filter_shard, docs, out / "filter", FilterShard(cfg, []), workers=workers, label="filter")
    )
    return {"records": extracted["docs_in"], "docs_extracted": extracted["docs_out"], "docs_out": kept["docs_out"]}


def _count_jsonl(folder: Path) -> int:
    return sum(sum(1 for _ in gzip.open(p, "rt")) for p in folder.rglob("*.jsonl.gz"))


def datatrove_extract_filter(warc_dir: str, work: str, workers: int, files: int) -> dict[str, Any]:
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.extractors import Trafilatura
    from datatrove.pipeline.filters import C4QualityFilter, GopherQualityFilter, GopherRepetitionFilter
    from datatrove.pipeline.readers import WarcReader
    from datatrove.pipeline.writers import JsonlWriter

    out = Path(work)
    pipeline = [
        WarcReader(warc_dir, glob_pattern="*.warc.gz"),
        Trafilatura(favour_precision=True, timeout=10.0),
        GopherRepetitionFilter(),
        GopherQualityFilter(),
        C4QualityFilter(),
        JsonlWriter(str(out / "kept")),
    ]
    LocalPipelineExecutor(pipeline, tasks=files, workers=workers, logging_dir=str(out / "logs")).run()
    return {"docs_out": _count_jsonl(out / "kept")}


def ours_minhash(shards: list[str], work: str, workers: int) -> dict[str, Any]:
    from tasks.dedup.config import DedupConfig
    from tasks.dedup.phases import cluster_documents
    from tasks.dedup.stage import OutputShard, output_shard
    from tasks.stage import map_shards, sum_stats

    out = Path(work)
    cfg = DedupConfig(workers=workers, quality_check_docs=0)
    stats = cluster_documents(shards, cfg, out / "minhash")
    clusters = OutputShard(str(out / "minhash" / "clusters.parquet"))
    kept = sum_stats(map_shards(output_shard, shards, out, clusters, workers, "out"))
    return {"docs_in": kept["docs_in"], "docs_out": kept["docs_out"], "clusters": stats["clusters"]}


def datatrove_minhash(jsonl_dir: str, work: str, workers: int, files: int) -> dict[str, Any]:
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.dedup import MinhashDedupCluster, MinhashDedupFilter, MinhashDedupSignature
    from datatrove.pipeline.dedup.minhash import MinhashConfig, MinhashDedupBuckets
    from datatrove.pipeline.readers import JsonlReader
    from datatrove.pipeline.writers import JsonlWriter
    from datatrove.utils.hashing import HashConfig

    out = Path(work)
    cfg = MinhashConfig(n_grams=5, num_buckets=14, hashes_per_bucket=8, hash_config=HashConfig(precision=64))

    def run(pipeline: list, tasks: int, name: str) -> None:
        LocalPipelineExecutor(pipeline, tasks=tasks, workers=min(workers, tasks),
                              logging_dir=str(out / "logs" / name)).run()  # fmt: skip

    run([JsonlReader(jsonl_dir), MinhashDedupSignature(output_folder=str(out / "sigs"), config=cfg)], files, "sigs")
    run([MinhashDedupBuckets(input_folder=str(out / "sigs"), output_folder=str(out / "buckets"), config=cfg)],
        cfg.num_buckets, "buckets")  # fmt: skip
    run([MinhashDedupCluster(input_folder=str(out / "buckets"), output_folder=str(out / "remove"), config=cfg)],
        1, "cluster")  # fmt: skip
    run([JsonlReader(jsonl_dir), MinhashDedupFilter(input_folder=str(out / "remove")),
         JsonlWriter(str(out / "kept"))], files, "filter")  # fmt: skip
    return {"docs_out": _count_jsonl(out / "kept")}


def ours_train_step(preset: str, seq_len: int, vocab: int, batch: int, steps: int, work: str, device: str = "cpu",
                    compile: bool = False) -> dict[str, Any]:  # fmt: skip
    from train_throughput import synthetic_tokens

    from model.config import MODEL_PRESETS, TrainConfig
    from model.gpt import GPTConfig
    from model.trainer import train

    files = synthetic_tokens(Path(work) / "train-00000.parquet", 4096, seq_len, vocab)
    n_layer, n_head, n_embd = MODEL_PRESETS[preset]
    model_cfg = GPTConfig(vocab_size=vocab, seq_len=seq_len, n_layer=n_layer, n_head=n_head, n_embd=n_embd)
    # Warm-up steps (compilation included) are not counted. On CPU every step is logged with its own
    # tokens/s and the median step is the figure, as on the plain side; on CUDA the median interval.
    warm = 5 if compile else 2
    log_every = 1 if device == "cpu" else max(1, steps // 4)
    cfg = TrainConfig(preset=preset, batch_size=batch, max_steps=steps + warm, warmup_steps=2, device=device,
                      compile="on" if compile else "off", log_every=log_every, checkpoint_every=10**9)  # fmt: skip
    result = train(files, model_cfg, cfg, Path(work) / "run")
    return {**timed_throughput(result["history"], warm), "params": result["params"]}


def timed_throughput(history: list[dict[str, float]], warm: int) -> dict[str, float]:
    """Median tokens/s (and MFU, where logged) over the logged intervals that began after the first
    `warm` steps, and the whole window's tokens/s (total tokens over total time: intervals weighted by
    their steps)."""
    logged = [h for h in history if "tokens_per_s" in h]
    begins = [0] + [int(h["step"]) for h in logged[:-1]]
    timed = [(int(h["step"]) - begun, h) for begun, h in zip(begins, logged, strict=True) if begun >= warm]
    if not timed:
        raise ValueError(f"no logged interval after the {warm} warm-up steps")
    out = {
        "tokens_per_s": statistics.median(h["tokens_per_s"] for _, h in timed),
        "tokens_per_s_window": sum(n for n, _ in timed) / sum(n / h["tokens_per_s"] for n, h in timed),
    }
    if "mfu" in timed[0][1]:
        out["mfu"] = statistics.median(h["mfu"] for _, h in timed)
    return out


def plain_train_step(preset: str, seq_len: int, vocab: int, batch: int, steps: int, work: str, device: str = "cpu",
                     compile: bool = False) -> dict[str, Any]:  # fmt: skip
    from plain_gpt import tokens_per_second

    from model.config import MODEL_PRESETS

    n_layer, n_head, n_embd = MODEL_PRESETS[preset]
    return tokens_per_second(vocab, seq_len, n_layer, n_head, n_embd, batch, steps, device, compile)


def pipeline_until_tokenize(warcs: list[str], work: str) -> dict[str, Any]:
    """The real CLI (Prefect included) on local WARC files, acquire through tokenize."""
    from typer.testing import CliRunner

    from flows.cli import app

    sets = [f"acquire.paths={json.dumps(warcs)}", "dedup.quality_check_docs=0"]
    args = ["run", "--workdir", work, "--until", "tokenize", *[a for s in sets for a in ("--set", s)]]
    result = CliRunner().invoke(app, args)
    if result.exit_code != 0:
        raise RuntimeError(result.output[-3000:])
    return {}


def url_prefilter_extract(warcs: list[str], hosts: list[str], work: str, prefilter: bool) -> dict[str, Any]:
    """Extract with filter's URL rules before trafilatura (a blocklist of `hosts`) or without them."""
    from url_prefilter import extract_once

    from tasks.config import load_config

    cfg = load_config(None, [f"filter.blocklist_domains={json.dumps(hosts)}"]).stage("extract")
    _, stats, kept = extract_once(warcs, cfg if prefilter else cfg.model_copy(update={"url_rules": None}), Path(work))
    return {"docs_out": len(kept), "not_extracted": sum(v for k, v in stats.items() if k.startswith("deferred."))}


def minhash_signatures(shards: list[str], work: str, impl: str) -> dict[str, Any]:
    from minhash_signatures import signatures_of_shards

    return signatures_of_shards(shards, impl)


def minhash_quality(impl: str, docs: int, work: str) -> dict[str, Any]:
    from minhash_signatures import quality

    return quality(impl, docs, work)


MEASUREMENTS = {f.__name__: f for f in (ours_extract_filter, datatrove_extract_filter, ours_minhash,
                                         datatrove_minhash, minhash_signatures, minhash_quality,
                                         url_prefilter_extract, ours_train_step,
                                         plain_train_step, pipeline_until_tokenize)}  # fmt: skip

if __name__ == "__main__":
    name, kwargs = sys.argv[1], json.loads(sys.argv[2])
    started = time.perf_counter()
    result = MEASUREMENTS[name](**kwargs)
    print(json.dumps({"seconds": time.perf_counter() - started, **result}))
