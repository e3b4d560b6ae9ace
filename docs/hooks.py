"""MkDocs hook: adds the generated pages (config, stages and CLI reference from the code; results from
benchmarks/results) to the build. Nothing generated is written into docs/."""

from __future__ import annotations

import sys
from pathlib import Path

from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def on_files(files: Files, config) -> Files:
    from benchmarks.pages import results_figures, results_pages
    from flows.reference import PAGES

    generated = {path: make() for path, make in PAGES.items()} | results_pages()
    for path, text in generated.items():
        files.append(File.generated(config, path, content=text))
    for figure in results_figures():
        files.append(File.generated(config, f"results/{figure.name}", abs_src_path=str(figure)))
    return files
