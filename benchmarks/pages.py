"""The manual's results pages, generated from `benchmarks/results/*.json`: no figure is copied by hand.

Each results file becomes one page: the table its benchmark wrote beside it (`<stem>.md`, made from
the same run), the figure (`<stem>.png`) when there is one, and every value of the JSON as tables.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from benchmarks.output import RESULTS


def _scalar(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


def _text(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, str) else value
    return text.replace("|", "\\|").replace("\n", " ")


def _table(headers: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(_text(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def json_markdown(value: dict[str, Any], level: int = 2) -> str:
    """Scalars as one key/value table; a mapping of flat records as one table; anything deeper as its
    own heading, recursively; what is neither (lists of lists, ...) as JSON."""
    scalars = [[k, v] for k, v in value.items() if _scalar(v)]
    parts = [_table(["key", "value"], scalars)] if scalars else []
    for key, inner in value.items():
        if _scalar(inner):
            continue
        parts.append(f"{'#' * level} {key}")
        if isinstance(inner, dict) and inner and all(isinstance(v, dict) and all(map(_scalar, v.values()))
                                                     for v in inner.values()):  # fmt: skip
            columns = list(dict.fromkeys(c for v in inner.values() for c in v))
            parts.append(_table(["", *columns], [[k, *(v.get(c, "") for c in columns)] for k, v in inner.items()]))
        elif isinstance(inner, list) and inner and all(isinstance(v, dict) and all(map(_scalar, v.values()))
                                                       for v in inner):  # fmt: skip
            columns = list(dict.fromkeys(c for v in inner for c in v))
            parts.append(_table(columns, [[v.get(c, "") for c in columns] for v in inner]))
        elif isinstance(inner, dict) and level < 4:
            parts.append(json_markdown(inner, level + 1))
        else:
            parts.append(f"```json\n{json.dumps(inner, indent=1)}\n```")
    return "\n\n".join(parts)


def title_of(json_path: Path) -> str:
    table = json_path.with_suffix(".md")
    if table.exists() and (first := table.read_text().splitlines()[:1]) and first[0].startswith("# "):
        return first[0][2:].strip()
    return json_path.stem


def results_page(json_path: Path) -> str:
    """One results file as a page (figure paths relative to the page, which sits beside the figure)."""
    data = json.loads(json_path.read_text())
    table = json_path.with_suffix(".md")
    parts = [f"# {title_of(json_path)}", f"`benchmarks/results/{json_path.name}`"]
    if table.exists():
        text = table.read_text()
        body = text.split("\n", 1)[1] if text.startswith("# ") else text
        # The benchmark's own headings sit under this page's title.
        parts.append("\n".join("#" + line if line.startswith("#") else line for line in body.splitlines()))
    if json_path.with_suffix(".png").exists():
        parts.append(f"![{json_path.stem}]({json_path.stem}.png)")
    parts += ["## Every recorded value", json_markdown(data, level=3)]
    return "\n\n".join(parts) + "\n"


def results_pages(results: Path = RESULTS) -> dict[str, str]:
    """{page path under docs/: Markdown}: an index (newest first) and one page per results file."""
    files = sorted(results.glob("*.json"), reverse=True)
    pages = {f"results/{f.stem}.md": results_page(f) for f in files}
    index = ["# Measurements", "",
             "Every benchmark writes a JSON results file (and a Markdown table) under `benchmarks/results/`;",
             "these pages are generated from them. `findings.md` reads them together.", "",
             "| date | host | results |", "|---|---|---|"]  # fmt: skip
    for f in files:
        date, host = f.stem[:10], f.stem[11:].split("-", 1)[0]
        index.append(f"| {date} | {host} | [{title_of(f)}]({f.stem}.md) |")
    pages["results/index.md"] = "\n".join(index) + "\n"
    # The newest file of each measurement also under its plain name (results/sample-run.md), so prose
    # can link "the latest" without naming a date. Files are sorted newest first.
    for f in files:
        pages.setdefault(f"results/{measurement_name(f)}.md", pages[f"results/{f.stem}.md"])
    return pages


def measurement_name(json_path: Path) -> str:
    """`2026-12-02-vm-dedup.json` -> `dedup`: the name without its date and host."""
    return json_path.stem[11:].split("-", 1)[1] if json_path.stem[11:].count("-") else json_path.stem


def results_figures(results: Path = RESULTS) -> list[Path]:
    return sorted(results.glob("*.png"))
