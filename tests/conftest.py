from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_EXTRA_LOGGERS", "crawl2model")
# Prefect logs to the console after CliRunner has closed its captured stream; keep tests quiet.
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
os.environ.setdefault("PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW", "ignore")


# A tiny pipeline (300 pages, a one-layer model) for tests that run it many times; they add the training length.
TINY_PIPELINE = [
    "acquire.sample_pages=300",
    "acquire.planted_per_case=4",
    "acquire.seed=11",
    "dedup.quality_check_docs=0",
    "tokenize.vocab_size=600",
    "tokenize.seq_len=32",
    "train.n_layer=1",
    "train.n_head=2",
    "train.n_embd=32",
    "train.batch_size=16",
    "train.warmup_steps=5",
    "train.log_every=20",
    # 32-token rows hold too few of the sample's conversations: post-training has tests of its own.
    "sft.enabled=false",
]


# TINY_PIPELINE trained briefly, as --set arguments: the experiment tests' runs.
TINY_RUN = [*TINY_PIPELINE, "train.max_steps=120", "train.checkpoint_every=60", "evaluate.max_new_tokens=4"]
TINY_RUN_SETS = [a for s in TINY_RUN for a in ("--set", s)]


def invoke(*args: str) -> str:
    """The CLI in-process; its output, after asserting it exited 0."""
    from typer.testing import CliRunner

    from flows.cli import app

    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result.output


@pytest.fixture(scope="session")
def small_sample(tmp_path_factory) -> Path:
    """A reduced embedded sample (400 pages, 8 planted per case) shared by the tests."""
    from tasks.sample.warc import write_sample

    out = tmp_path_factory.mktemp("sample")
    write_sample(out, n_pages=400, planted=8, seed=3, n_files=2)
    return out


def write_warc(path: Path, pages: list[tuple], wet: list[tuple[str, str]] = ()) -> Path:
    """pages: (url, status line, content type, body[, extra headers]) -> a gzipped WARC of responses.

    wet: (url, text) pairs written as WET `conversion` records after the responses.
    """
    with open(path, "wb") as f:
        writer = WARCWriter(f, gzip=True)
        for url, status, ctype, body, *extra in pages:
            fields = [("Content-Type", ctype), ("Content-Length", str(len(body))), *(extra[0] if extra else [])]
            headers = StatusAndHeaders(status, fields, protocol="HTTP/1.1")
            writer.write_record(
                writer.create_warc_record(url, "response", payload=io.BytesIO(body), http_headers=headers)
            )
        for url, text in wet:
            record = writer.create_warc_record(
                url, "conversion", payload=io.BytesIO(text.encode()), warc_content_type="text/plain"
            )
            writer.write_record(record)
    return path


def prose(n_paragraphs: int = 6, offset: int = 0) -> str:
    """Human-written English from the Python language reference."""
    from pydoc_data.topics import topics

    paras = [
        p.strip()
        for name in sorted(topics)
        for p in topics[name].split("\n\n")
        if len(p.split()) > 30 and not p.startswith(" ")
    ]
    return "\n\n".join(paras[offset : offset + n_paragraphs])


def write_arc(path: Path, pages: list[tuple[str, bytes]], gz: bool = True) -> Path:
    """An ARC v1 file (the format of the oldest crawls): a filedesc record, then one per page; each
    record gzipped on its own when `gz`. pages: (url, HTML body)."""
    import gzip

    desc = b"1 0 crawl2model-test\nURL IP-address Archive-date Content-type Archive-length\n"
    records = [f"filedesc://{path.name} 0.0.0.0 20080101000000 text/plain {len(desc)}\n".encode() + desc + b"\n"]
    for url, body in pages:
        http = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: %d\r\n\r\n" % len(body) + body
        records.append(f"{url} 10.0.0.1 20080101000000 text/html {len(http)}\n".encode() + http + b"\n")
    with open(path, "wb") as f:
        for record in records:
            f.write(gzip.compress(record) if gz else record)
    return path


def html_page(text: str, charset: str = "utf-8") -> bytes:
    paras = "".join(f"<p>{p}</p>" for p in text.split("\n\n"))
    html = (
        f'<html><head><meta charset="{charset}"><title>t</title></head><body><nav><a href="/">Home</a></nav>'
        f"<main><article><h1>Title</h1>{paras}</article></main><footer>(c) site</footer></body></html>"
    )
    return html.encode(charset, "replace")


def _source_tree_state() -> set[str]:
    """Untracked or changed paths in the repository, ignored files left out (None outside git)."""
    import subprocess

    root = Path(__file__).resolve().parents[1]
    done = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"], cwd=root,
                          capture_output=True, text=True)  # fmt: skip
    return set(done.stdout.splitlines()) if done.returncode == 0 else set()


@pytest.fixture(scope="session", autouse=True)
def no_test_writes_into_the_source_tree():
    """Every test writes under its tmp_path: the source tree is the same after the session as before."""
    before = _source_tree_state()
    yield
    written = sorted(_source_tree_state() - before)
    assert not written, f"tests wrote into the source tree: {written[:10]}"


def native_text(lang: str, min_chars: int, offset: int = 0) -> str:
    """Text written in `lang` by people, from what installed packages ship (gettext catalogs, and the
    standard library's CJK encoding tests for ja and zh), made into sentences and paragraphs."""
    import sysconfig

    from tasks.sample.sources import translation_texts

    end = {"ja": "。", "zh": "。", "th": ""}.get(lang, ".")  # Thai ends a sentence with a space alone
    messages = [m.strip().rstrip(".。") for m in translation_texts()[lang] if len(m.strip()) > 3][offset:]
    sentences = []
    cjk = {"ja": "euc_jp", "zh": "gb18030"}.get(lang)
    if cjk and offset == 0:
        path = Path(sysconfig.get_paths()["stdlib"]) / "test" / "cjkencodings" / f"{cjk}-utf8.txt"
        sentences.append(path.read_text(encoding="utf-8").strip())
    for message in messages:
        sentences.append(message + end)
        if sum(len(s) for s in sentences) >= min_chars:
            break
    joiner = "" if end == "。" else " "
    return "\n\n".join(joiner.join(sentences[i : i + 6]) for i in range(0, len(sentences), 6))
