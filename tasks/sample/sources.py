"""Text sources of the embedded sample: human-written text every Python install has.

Real prose comes from the Python language reference (pydoc_data.topics), the docstrings of the
standard library, and the README texts in installed distributions' metadata. Non-English pages come
from gettext translation catalogs (.mo) shipped by installed packages, and the CJK texts of the
standard library's test suite when present.
"""

from __future__ import annotations

import contextlib
import gettext
import glob
import importlib
import importlib.metadata
import inspect
import io
import json
import os
import re
import subprocess
import sys
import sysconfig
import tempfile
import warnings
from pathlib import Path

SKIP_MODULES = {
    "antigravity",
    "this",
    "idlelib",
    "tkinter",
    "turtle",
    "turtledemo",
    "__phello__",
    "msvcrt",
    "winreg",
    "winsound",
    "nt",
    "lib2to3",
    "ensurepip",
    "venv",
    "pydoc",
}
ROOT = Path(__file__).resolve().parents[2]


def paragraphs_of(text: str) -> list[str]:
    paras = [re.sub(r"[ \t]+", " ", p).strip() for p in re.split(r"\n\s*\n", text)]
    return [p for p in paras if len(p) >= 40]


def language_reference() -> list[tuple[str, list[str]]]:
    from pydoc_data.topics import topics

    return [(f"Python reference: {name}", paragraphs_of(topics[name])) for name in sorted(topics)]


def stdlib_docstrings() -> list[tuple[str, list[str]]]:
    """The standard library's docstrings, collected in a fresh interpreter.

    Collected here they would depend on what this process imported before: a library that wraps a
    stdlib function (so its `__module__` changes) silently removed that docstring, and the same seed
    gave a different sample under pytest, in a Prefect worker, or in the CLI.
    """
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "docstrings.json"
        code = (
            "import sys; from tasks.sample.sources import write_stdlib_docstrings; write_stdlib_docstrings(sys.argv[1])"
        )
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
        done = subprocess.run([sys.executable, "-c", code, str(out)], cwd=ROOT, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"collecting standard library docstrings failed:\n{done.stderr[-2000:]}")
        return [(name, paras) for name, paras in json.loads(out.read_text())]


def write_stdlib_docstrings(path: str) -> None:
    Path(path).write_text(json.dumps(collect_stdlib_docstrings()))


def collect_stdlib_docstrings() -> list[tuple[str, list[str]]]:
    docs = []
    for name in sorted(sys.stdlib_module_names):
        if name.startswith("_") or name in SKIP_MODULES:
            continue
        try:
            with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
                warnings.simplefilter("ignore")
                module = importlib.import_module(name)
        except Exception:  # noqa: BLE001 - platform-specific modules simply do not contribute
            continue
        members = [module]
        for key, value in sorted(vars(module).items()):
            if key.startswith("_") or getattr(value, "__module__", None) != name:
                continue
            if inspect.isclass(value) or inspect.isfunction(value):
                members.append(value)
                if inspect.isclass(value):
                    members += [
                        m for k, m in sorted(vars(value).items()) if not k.startswith("_") and inspect.isfunction(m)
                    ]
        paras = []
        for obj in members:
            doc = inspect.getdoc(obj) or ""
            paras += paragraphs_of(doc)
        if paras:
            docs.append((f"{name} module documentation", paras))
    return docs


def installed(name: str) -> importlib.metadata.Distribution | None:
    """The installed distribution, looked up on sys.path without vendored trees: importing setuptools
    (torch's C++ extension helpers do) appends `setuptools/_vendor`, whose bundled copies (tomli,
    ...) would otherwise join the sample after such an import and not before."""
    path = [p for p in sys.path if "_vendor" not in Path(p).parts]
    return next(iter(importlib.metadata.distributions(name=name, path=path)), None)


def dependency_closure(root: str = "crawl2model") -> list[str]:
    """The distributions `root` needs (transitively, extras left out, environment markers evaluated):
    on every install of the project. Using only these keeps the sample from changing when unrelated
    packages are installed or imported."""
    from packaging.requirements import Requirement

    seen: set[str] = set()
    todo = [root]
    while todo:
        dist = installed(todo.pop())
        for req in (dist.requires or []) if dist else []:
            marker = Requirement(req).marker
            if "extra ==" in req or (marker is not None and not marker.evaluate({"extra": ""})):
                continue
            dep = re.split(r"[\s;<>=!~\[(]", req, maxsplit=1)[0].lower().replace("_", "-")
            if dep and dep not in seen:
                seen.add(dep)
                todo.append(dep)
    return sorted(seen)


def distribution_readmes() -> list[tuple[str, list[str]]]:
    docs = []
    for name in dependency_closure():
        if (dist := installed(name)) is None:
            continue
        text = dist.metadata.get_payload() or dist.metadata.get("Description") or ""
        paras = [p for p in paragraphs_of(text) if not p.startswith((".. ", "[![", "|", "<"))]
        if paras:
            docs.append((f"{dist.metadata['Name']}: project description", paras))
    return docs


def _catalogs() -> list[tuple[str, dict]]:
    """(language, message id -> translation) of every gettext catalog on sys.path but English's."""
    found = []
    paths = sorted({p for base in sys.path if base for p in glob.glob(f"{base}/**/LC_MESSAGES/*.mo", recursive=True)})
    for path in paths:
        lang = Path(path).parts[-3]
        if lang.lower().startswith("en"):
            continue
        try:
            with open(path, "rb") as f:
                found.append((lang, gettext.GNUTranslations(f)._catalog))
        except Exception:  # noqa: BLE001 - a broken catalog contributes nothing
            continue
    return found


def source_messages() -> list[str]:
    """The English originals (message ids) of the catalogs' translations, each once."""
    return sorted({k for _, catalog in _catalogs() for k in catalog if isinstance(k, str) and len(k) > 3})


def translation_texts() -> dict[str, list[str]]:
    """language -> translated messages, from every gettext catalog on sys.path."""
    texts: dict[str, list[str]] = {}
    for lang, catalog in _catalogs():
        messages = [
            v for k, v in sorted(catalog.items(), key=lambda kv: str(kv[0])) if k and isinstance(v, str) and len(v) > 3
        ]
        texts.setdefault(lang, []).extend(m.replace("%d", "3").replace("%s", "") for m in messages)
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    for path in sorted(glob.glob(str(stdlib / "test" / "cjkencodings" / "*-utf8.txt"))):
        texts.setdefault(Path(path).stem.split("-")[0], []).extend(
            paragraphs_of(Path(path).read_text(encoding="utf-8", errors="ignore"))
        )
    return {k: v for k, v in texts.items() if len(" ".join(v)) > 300}


# --- page rendering ----------------------------------------------------------------------------
