"""Inputs as real crawls hand them over, through every stage: files that are not WARCs, empty and
all-dropped shards first, in the middle and alone, bodies stored decoded under their
Content-Encoding, non-English pages, ARC files. Runs complete, bad files are named, counts reconcile."""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
from pathlib import Path

import pytest

from storage.catalog import Catalog
from tests.conftest import TINY_PIPELINE, html_page, prose, write_arc, write_warc

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]
SETTINGS = [*TINY_PIPELINE, "train.max_steps=6", "filter.quality.enabled=false", "tokenize.vocab_size=400"]
GERMAN = (
    "Die Stadt liegt an einem breiten Fluss, und im Sommer fahren viele Boote zwischen den beiden Ufern hin und her. "
    "Am Markt gibt es jeden Morgen frisches Brot, Obst aus den umliegenden Dörfern und Blumen in allen Farben. "
    "Die alte Brücke wurde vor mehr als dreihundert Jahren gebaut und ist heute das bekannteste Bauwerk der Gegend. "
    "Wer die Geschichte des Ortes kennenlernen möchte, besucht das kleine Museum neben der Kirche am Hauptplatz."
)


def _pages(n: int, offset: int, host: str) -> list[tuple]:
    return [(f"https://{host}/p{i}", "200 OK", "text/html; charset=utf-8", html_page(prose(4, offset=offset + 4 * i)))
            for i in range(n)]  # fmt: skip


def _mixed_inputs(folder: Path) -> dict[str, Path]:
    folder.mkdir()
    files = {
        "good": write_warc(folder / "good.warc.gz", _pages(12, 0, "docs.example")),
        "text": folder / "readme.txt",
        "empty": folder / "empty.warc",
        "not_gzip": folder / "page.warc.gz",
        "non_html": write_warc(folder / "0-assets.warc.gz", [(f"https://cdn.example/{i}.pdf", "200 OK",
                                                            "application/pdf", b"%PDF-1.4 " + bytes(400))
                                                            for i in range(4)]),
        "foreign": write_warc(folder / "de.warc.gz", [(f"https://de.example/{i}", "200 OK", "text/html; charset=utf-8",
                                                       html_page(f"{GERMAN}\n\n{GERMAN} ({i})")) for i in range(4)]),
        "mislabeled": write_warc(folder / "archived.warc.gz", [
            (url, status, ctype, body, [("Content-Encoding", enc)])
            for (url, status, ctype, body), enc in zip(_pages(6, 60, "blog.example"), ["gzip", "br", "deflate"] * 2,
                                                       strict=True)]),
        "arc": write_arc(folder / "old.arc.gz", [(u, b) for u, _, _, b in _pages(5, 90, "forum.example")]),
    }  # fmt: skip
    files["text"].write_text("These are my notes about the crawl, not a WARC file at all.\n" * 20)
    files["empty"].write_bytes(b"")
    files["not_gzip"].write_bytes(html_page(prose(3)))
    return files


def _crawl2model(work: Path, *args: str) -> subprocess.CompletedProcess:
    sets = [a for s in SETTINGS for a in ("--set", s)]
    cmd = [sys.executable, "-m", "flows.cli", "run", "--workdir", str(work), *sets, *args]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=900, env={**os.environ})


def _paths(files) -> str:
    return "acquire.paths=[" + ",".join(f'"{p}"' for p in files) + "]"


def _stage_rows(work: Path) -> dict[str, tuple]:
    _, rows = Catalog(work).query(
        "select stage, cache_hit, docs_in, docs_out, docs_removed from stage_runs "
        "where run_id = (select run_id from runs order by started_at desc limit 1)"
    )
    return {r[0]: r[1:] for r in rows}


def _assert_counts_reconcile(stages: dict[str, tuple]) -> None:
    chain = ["extract", "filter", "dedup", "mix", "tokenize"]
    for name in chain:
        _, docs_in, docs_out, removed = stages[name]
        assert docs_in == docs_out + removed, name
    for before, after in zip(chain, chain[1:], strict=False):
        assert stages[before][2] == stages[after][1], (before, after)


@pytest.fixture(scope="module")
def mixed(tmp_path_factory) -> tuple[Path, dict[str, Path], subprocess.CompletedProcess]:
    root = tmp_path_factory.mktemp("crawls")
    files = _mixed_inputs(root / "in")
    work = root / "work"
    return work, files, _crawl2model(work, "--set", _paths(files.values()))


def test_a_mixed_crawl_completes_and_names_the_bad_files(mixed):
    work, files, done = mixed
    assert done.returncode == 0, done.stderr[-4000:]
    warnings = [line for line in done.stderr.splitlines() if line.startswith("warning: ")]
    for bad in ("text", "empty", "not_gzip"):
        assert any(files[bad].name in w and "no readable record" in w for w in warnings), (bad, warnings)
    assert not any(files[ok].name in w for ok in ("good", "arc", "mislabeled", "foreign") for w in warnings)
    _, verdicts = Catalog(work).query("select file, format, records, records_response, records_warcinfo, documents "
                                      "from extract_files")  # fmt: skip
    by_file = {v[0]: v[1:] for v in verdicts}
    assert by_file["readme.txt"][:2] == ("not an archive", 0)
    assert by_file["empty.warc"][:2] == ("empty", 0)
    assert by_file["page.warc.gz"][:2] == ("html, not an archive", 0)
    assert by_file["old.arc.gz"][0] == "arc.gz" and by_file["old.arc.gz"][2:] == (5, 1, 5)
    assert by_file["good.warc.gz"] == ("warc.gz", 12, 12, 0, 12)


def test_every_stage_reconciles_with_empty_shards_first_and_in_the_middle(mixed):
    work, _, done = mixed
    assert done.returncode == 0, done.stderr[-4000:]
    stages = _stage_rows(work)
    _assert_counts_reconcile(stages)
    # Shards follow the sorted file names: 0-assets (non-HTML only) first, then archived, de (German
    # only) and empty.warc in the middle, good, old.arc.gz, and two unreadable files last.
    first_run = "(select run_id from runs order by started_at limit 1)"
    for stage in ("extract", "filter", "dedup"):
        _, rows = Catalog(work).query(
            "select a.rows from artifacts a join stage_runs s using (fingerprint) where a.stage = ? "
            f"and a.kind = 'docs' and s.run_id = {first_run} order by a.path", [stage])  # fmt: skip
        sizes = [r[0] for r in rows]
        assert len(sizes) == 8 and all(sizes[i] == 0 for i in (0, 2, 3, 6, 7)), (stage, sizes)
        assert all(sizes[i] > 0 for i in (1, 4, 5)), (stage, sizes)
    _, removed = Catalog(work).query("select rule, count(*) from extract_removed group by 1")
    rules = dict(removed)
    assert rules["non_html"] == 4 and rules["lang"] + rules.get("lang_score", 0) == 4
    _, kept = Catalog(work).query("select host, count(*) from extract_docs group by 1")
    assert dict(kept) == {
        "docs.example": 12,
        "blog.example": 6,
        "forum.example": 5,
    }  # ARC pages and mislabeled bodies read
    _, mislabeled = Catalog(work).query(
        "select value from metrics where stage = 'extract' and name = 'encoding_mislabeled'"
    )
    assert mislabeled[-1][0] == 6


def test_the_rerun_of_a_mixed_crawl_is_all_cache_hits(mixed):
    work, files, done = mixed
    assert done.returncode == 0
    again = _crawl2model(work, "--set", _paths(files.values()))
    assert again.returncode == 0, again.stderr[-3000:]
    assert all(row[0] for row in _stage_rows(work).values())
    assert "no readable record" in again.stderr  # the warnings come back with the cached outputs
    # and the catalog keeps them for each run, the cached one too
    _, rows = Catalog(work).query("select run_id, count(*) from warnings where message like '%no readable record%' "
                                  "group by 1")  # fmt: skip
    assert len(rows) == 2 and rows[0][1] == rows[1][1] > 0, rows


def test_strict_mode_fails_before_extract_naming_the_files(mixed, tmp_path):
    _, files, _ = mixed
    done = _crawl2model(tmp_path / "work", "--set", _paths(files.values()), "--set", "acquire.strict=true")
    assert done.returncode == 1
    error = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert len(error) == 1 and all(files[b].name in error[0] for b in ("text", "empty", "not_gzip")), done.stderr[
        -2000:
    ]
    assert set(_stage_rows(tmp_path / "work")) == {"acquire"}  # extract never ran


def test_an_input_where_every_record_leaves_in_extract_still_completes(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    only = write_warc(folder / "assets.warc.gz", [(f"https://cdn.example/{i}.png", "200 OK", "image/png",
                                                  b"\x89PNG\r\n\x1a\n" + bytes(300)) for i in range(3)])  # fmt: skip
    work = tmp_path / "work"
    done = _crawl2model(work, "--set", _paths([only]), "--set", "dedup.quality_check_docs=200")
    assert done.returncode == 0, done.stderr[-4000:]
    stages = _stage_rows(work)
    _assert_counts_reconcile(stages)
    assert stages["extract"][1:] == (3, 0, 3) and stages["tokenize"][1:] == (0, 0, 0)
    report = next(work.glob("artifacts/evaluate/*/report.md")).read_text()
    assert "no training tokens" in report and "| extract | 3 | 0 | 3 |" in report
    gzip.decompress(only.read_bytes())  # the input itself is intact
