"""Tokenization throughput: our SentencePiece encoding (1 process and all cores) and the whole tokenize
stage, against HF tokenizers and tiktoken on the same text, same vocabulary size, median of repeats.

    python benchmarks/tokenize_throughput.py [--docs 2000] [--vocab-size 4096] [--repeats 3]

tiktoken's GPT-2 encoding is fetched from the network on first use, which this project's machines
cannot do; so tiktoken runs with a byte-level BPE of the same vocabulary size trained here (with
HF tokenizers) and GPT-2's pre-tokenization pattern: the same engine, a local vocabulary.
Needs the `bench` extra (tiktoken, tokenizers). Results: benchmarks/results/<date>-<host>-tokenize.json/.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

# These run as scripts, so their own folder is on sys.path.
from output import RESULTS, write_results

GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""


def sample_texts(n_docs: int) -> list[str]:
    from tasks.sample.planted import chunk_pages
    from tasks.sample.sources import distribution_readmes, language_reference, stdlib_docstrings

    pages = chunk_pages(language_reference() + stdlib_docstrings() + distribution_readmes())
    return ["\n\n".join(p.paragraphs) for p in pages[:n_docs]]


def timed(fn, repeats: int) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(repeats):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's byte -> printable character table, which byte-level BPE vocabularies are written in."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs), strict=True))


def hf_and_tiktoken(texts: list[str], vocab_size: int):
    import tiktoken
    from tokenizers import ByteLevelBPETokenizer

    hf = ByteLevelBPETokenizer()
    hf.train_from_iterator(texts, vocab_size=vocab_size, min_frequency=2, show_progress=False)
    decoder = {c: b for b, c in _bytes_to_unicode().items()}
    ranks = {bytes(decoder[ch] for ch in token): rank for token, rank in hf.get_vocab().items()}
    enc = tiktoken.Encoding("local-bytelevel-bpe", pat_str=GPT2_PATTERN, mergeable_ranks=ranks, special_tokens={})
    return hf, enc


def time_whole_stage(docs: list[dict[str, str]], cfg: Any, work: Path, repeats: int) -> float:
    """The whole tokenize stage: train the tokenizer, encode, split, pack and write shards."""
    from tasks.documents import MIX_COLUMNS, write_docs
    from tasks.stage import StageInput
    from tasks.tokenize.stage import run

    rows = [{"doc_id": d["doc_id"], "url": "", "host": "", "crawl": "", "warc_path": "", "fetch_time": "",
             "lang": "en", "lang_score": 1.0, "text": d["text"], "n_chars": len(d["text"]),
             "n_words": len(d["text"].split()), "quality_score": 1.0, "dup_cluster": d["doc_id"],
             "dup_cluster_size": 1, "domain": "docs", "sample_weight": 1.0, "repeats": 1}
            for d in docs]  # fmt: skip
    write_docs(rows, work / "mix" / "docs" / "part-00000.parquet", MIX_COLUMNS)
    mix = StageInput("mix", "bench", work / "mix", {"files": [{"path": "docs/part-00000.parquet", "kind": "docs"}]})
    counter = iter(range(10**6))
    stage_time, _ = timed(lambda: run({"mix": mix}, cfg, work / f"stage-{next(counter)}"), repeats)
    return stage_time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=2000)
    parser.add_argument("--vocab-size", type=int, default=4096)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    import sentencepiece as spm

    from tasks.tokenize.config import TokenizeConfig
    from tasks.tokenize.stage import encode_parallel, train_tokenizer

    cores = os.cpu_count() or 1
    texts = sample_texts(args.docs)
    n_bytes = sum(len(t.encode()) for t in texts)
    docs = [{"doc_id": f"{i:06d}", "text": t} for i, t in enumerate(texts)]
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        cfg = TokenizeConfig(vocab_size=args.vocab_size, sample_docs=len(docs))
        model = str(train_tokenizer(docs, cfg, work / "spm"))
        sp = spm.SentencePieceProcessor(model_file=model)
        one, ids = timed(lambda: sp.encode(texts, num_threads=1), args.repeats)
        n_tokens = sum(len(x) for x in ids)
        results["sentencepiece (ours), 1 thread"] = {"seconds": one, "cores": 1, "tokens": n_tokens}
        allc, _ = timed(lambda: encode_parallel(model, texts, cores), args.repeats)
        results[f"sentencepiece (ours), {cores} threads"] = {"seconds": allc, "cores": cores, "tokens": n_tokens}

        hf, enc = hf_and_tiktoken(texts, args.vocab_size)
        hf_time, hf_out = timed(lambda: hf.encode_batch(texts), args.repeats)
        results[f"HF tokenizers byte-level BPE, encode_batch ({cores} threads)"] = {
            "seconds": hf_time, "cores": cores, "tokens": sum(len(e.ids) for e in hf_out)}  # fmt: skip
        tk1, tk_out = timed(lambda: enc.encode_ordinary_batch(texts, num_threads=1), args.repeats)
        results["tiktoken (local byte-level BPE, GPT-2 pattern), 1 thread"] = {
            "seconds": tk1, "cores": 1, "tokens": sum(len(x) for x in tk_out)}  # fmt: skip
        tkn, _ = timed(lambda: enc.encode_ordinary_batch(texts, num_threads=cores), args.repeats)
        results[f"tiktoken (local byte-level BPE, GPT-2 pattern), {cores} threads"] = {
            "seconds": tkn, "cores": cores, "tokens": sum(len(x) for x in tk_out)}  # fmt: skip

        stage_time = time_whole_stage(docs, cfg, work, args.repeats)
        results[f"tokenize stage (train + encode + pack + write), {cores} threads"] = {
            "seconds": stage_time, "cores": cores, "tokens": n_tokens}  # fmt: skip
    for r in results.values():
        r["tokens_per_s"] = r["tokens"] / r["seconds"]
        r["tokens_per_s_per_core"] = r["tokens_per_s"] / r["cores"]
        r["mb_per_s"] = n_bytes / r["seconds"] / 1e6
    report = {"cores": cores, "docs": len(texts), "bytes": n_bytes, "vocab_size": args.vocab_size,
              "repeats": args.repeats, "results": results}  # fmt: skip
    rows = [[name, f"{r['tokens']:,}", f"{r['seconds']:.3f}", f"{r['tokens_per_s']:,.0f}",
             f"{r['tokens_per_s_per_core']:,.0f}", f"{r['mb_per_s']:.2f}"] for name, r in results.items()]  # fmt: skip
    print(write_results(
        args.out, "tokenize", report,
        f"Tokenization throughput ({len(texts)} documents, {n_bytes / 1e6:.1f} MB, vocab {args.vocab_size}, "
        f"{cores} cores, median of {args.repeats})",
        ["tokenizer", "tokens", "seconds", "tokens/s", "tokens/s per core", "MB/s"], rows,
    ))  # fmt: skip


if __name__ == "__main__":
    main()
