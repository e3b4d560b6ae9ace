"""Where benchmark results go: `<out>/<date>-<host>-<name>.json` plus a Markdown table beside it."""

from __future__ import annotations

import json
import socket
from datetime import date
from pathlib import Path
from typing import Any

from tasks.figures import markdown_table

RESULTS = Path(__file__).parent / "results"


def write_results(out: Path, name: str, report: dict[str, Any], title: str, headers: list[str],
                  rows: list[list[Any]]) -> str:  # fmt: skip
    """Write the JSON report (date and host added) and its Markdown table; return the Markdown."""
    report = {"date": str(date.today()), "host": socket.gethostname(), **report}
    out.mkdir(parents=True, exist_ok=True)
    stem = out / "-".join(filter(None, [report["date"], report["host"], name]))
    stem.with_suffix(".json").write_text(json.dumps(report, indent=2, default=str))
    text = f"# {title}\n\n{markdown_table(headers, rows)}\n"
    stem.with_suffix(".md").write_text(text)
    return text
