"""The architecture, enforced from the source: dependencies point one way and nothing cycles.

flows -> tasks -> model -> storage: `storage` imports none of the others, `model` nothing from
`tasks` or `flows`, `tasks` nothing from `flows`; a stage package imports no other stage package
(hand-offs go through the registry's declared inputs); no import cycles; no private name is
imported across modules. Imports inside functions count too.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from tasks.registry import BUILTIN_STAGES

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ("flows", "tasks", "model", "storage")  # each may import only those after it
STAGE_PACKAGES = {f"tasks.{spec.name}" for spec in BUILTIN_STAGES}


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_modules(root: Path = ROOT) -> dict[str, Path]:
    return {module_name(p, root): p for layer in LAYERS for p in sorted((root / layer).rglob("*.py"))}


def imports_of(path: Path, modules: dict[str, Path]) -> list[tuple[str, list[str]]]:
    """(imported project module, names taken from it) for every import statement in the file."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(a.name, []) for a in node.names if a.name.split(".")[0] in LAYERS]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.split(".")[0] in LAYERS:
                # `from tasks.filter import stage` imports the submodule tasks.filter.stage
                subs = [f"{node.module}.{a.name}" for a in node.names if f"{node.module}.{a.name}" in modules]
                found.append((node.module, [a.name for a in node.names]))
                found += [(s, []) for s in subs]
    return found


def stage_package(module: str) -> str | None:
    return next((p for p in STAGE_PACKAGES if module == p or module.startswith(p + ".")), None)


def layer_problems(root: Path = ROOT) -> list[str]:
    modules = project_modules(root)
    problems = []
    for name, path in modules.items():
        layer = LAYERS.index(name.split(".")[0])
        for target, _ in imports_of(path, modules):
            if LAYERS.index(target.split(".")[0]) < layer:
                problems.append(f"{name} imports {target} (against flows -> tasks -> model -> storage)")
            mine, theirs = stage_package(name), stage_package(target)
            if mine and theirs and mine != theirs:
                problems.append(f"stage package {mine} imports stage package {theirs} ({name} -> {target})")
    return problems


def private_import_problems(root: Path = ROOT) -> list[str]:
    modules = project_modules(root)
    return [
        f"{name} imports {target}.{taken}"
        for name, path in modules.items()
        for target, names in imports_of(path, modules)
        for taken in names
        if taken.startswith("_") and target != name
    ]


def test_dependencies_point_one_way_and_stage_packages_stay_apart():
    problems = layer_problems()
    assert not problems, "\n".join(problems)


def test_no_private_name_is_imported_across_modules():
    problems = private_import_problems()
    assert not problems, "\n".join(problems)


def test_no_import_cycles():
    modules = project_modules()
    graph = {
        name: {t for t, _ in imports_of(path, modules) if t in modules and t != name} for name, path in modules.items()
    }
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    cycles = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append(" -> ".join([*path[path.index(nxt) :], nxt]))
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    assert not cycles, "\n".join(cycles)


def test_the_layout_rules_catch_a_violation(tmp_path):
    """The checker itself, on a small tree of its own (no test writes into the source tree): a model
    module importing a stage config, and a private name, are reported."""
    for module in ("model/__init__.py", "tasks/__init__.py", "tasks/stage.py", "tasks/filter/__init__.py",
                   "tasks/filter/config.py", "tasks/dedup/__init__.py"):  # fmt: skip
        (tmp_path / module).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / module).write_text("")
    (tmp_path / "model" / "_layout_probe.py").write_text(
        "from tasks.filter.config import FilterConfig\nfrom tasks.stage import _private\n"
    )
    (tmp_path / "tasks" / "dedup" / "stage.py").write_text("from tasks.filter import config\n")
    layers = "\n".join(layer_problems(tmp_path))
    assert "model._layout_probe imports tasks.filter.config" in layers
    assert "stage package tasks.dedup imports stage package tasks.filter" in layers
    assert "model._layout_probe imports tasks.stage._private" in private_import_problems(tmp_path)
    assert layer_problems() == [] and private_import_problems() == []


def test_module_cli_lists_every_command():
    """`python -m flows.cli --help` and the console script register the same commands."""
    from flows.cli import app

    names = {c.name or c.callback.__name__ for c in app.registered_commands} | {g.name for g in app.registered_groups}
    out = subprocess.run([sys.executable, "-m", "flows.cli", "--help"], cwd=ROOT, capture_output=True, text=True,
                         env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"})  # fmt: skip
    assert out.returncode == 0, out.stderr
    missing = [n for n in names if n not in out.stdout]
    assert len(names) >= 11 and not missing, missing


@pytest.mark.slow
def test_the_wheel_holds_every_module_and_runs_without_the_source_tree(tmp_path):
    """A wheel built from pyproject.toml, installed without -e into a fresh venv, imports every module."""
    dist, source = tmp_path / "dist", tmp_path / "source"  # a copy: setuptools writes build/ beside the source
    source.mkdir()
    for item in ("pyproject.toml", "README.md", *LAYERS):
        copy = shutil.copytree if (ROOT / item).is_dir() else shutil.copyfile
        copy(
            ROOT / item,
            source / item,
            **({"ignore": shutil.ignore_patterns("__pycache__")} if copy is shutil.copytree else {}),
        )
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(dist),
                    str(source)], check=True, cwd=tmp_path)  # fmt: skip
    [wheel] = dist.glob("crawl2model-*.whl")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    py = venv / "bin" / "python"
    site = Path(subprocess.run([py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())  # fmt: skip
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "-q", "--target", str(site),
                    str(wheel)], check=True)  # fmt: skip
    # Dependencies come from the test's environment; its project (editable) finder is not loaded,
    # because a directory named in a .pth file is added to sys.path without running its .pth files.
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    names = sorted(project_modules())
    check = ("import importlib, sys; names = sys.argv[1:]; mods = [importlib.import_module(n) for n in names]; "
             f"outside = [m.__name__ for m in mods if not m.__file__.startswith({str(site)!r})]; "
             "assert not outside, outside; print(len(mods))")  # fmt: skip
    done = subprocess.run([py, "-c", check, *names], cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    assert int(done.stdout.strip()) == len(names)
    # The console script as installed: its entry point from the wheel's metadata.
    script = ("import importlib.metadata as m, sys; "
              "ep = next(e for e in m.distribution('crawl2model').entry_points if e.name == 'crawl2model'); "
              "sys.argv = ['crawl2model', '--help']; ep.load()()")  # fmt: skip
    cli = subprocess.run([py, "-c", script], cwd=tmp_path, capture_output=True, text=True, env={"COLUMNS": "200"})
    assert cli.returncode == 0 and "explain" in cli.stdout and "experiment" in cli.stdout, cli.stderr[-2000:]


MAX_FUNCTION_LINES = 60
# The one waiver: the training loop reads top-down in one function, as nanoGPT's train.py does (set-up,
# resume, then the step loop with its phases named); splitting it would hide the order that matters.
LONG_ON_PURPOSE = {("model/trainer.py", "train")}


def test_functions_stay_short():
    """Functions read top-down in steps: none longer than 60 lines (benchmarks included), but the
    training loop."""
    long = []
    for layer in (*LAYERS, "benchmarks"):
        for path in sorted((ROOT / layer).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    if (str(path.relative_to(ROOT)), node.name) in LONG_ON_PURPOSE:
                        continue
                    if (n := node.end_lineno - node.lineno + 1) > MAX_FUNCTION_LINES:
                        long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({n} lines)")
    assert not long, "\n".join(long)


def stage_name_uses(path: Path, root: Path = ROOT) -> list[str]:
    """Places where a module special-cases a stage: imports a stage package, reads a section as an
    attribute (`cfg.train`), or uses a stage's name as a value (`stage == "evaluate"`,
    `outputs["train"]`). A result document's keys and a CLI command's name are not uses."""
    from tasks.registry import STAGES

    tree = ast.parse(path.read_text())
    exempt: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict):
            exempt |= {id(k) for k in node.keys if k is not None}
        if isinstance(node, ast.FunctionDef):
            exempt |= {id(n) for d in node.decorator_list for n in ast.walk(d)}
    found = []
    for node in ast.walk(tree):
        where = f"{path.relative_to(root)}:{getattr(node, 'lineno', '?')}"
        if isinstance(node, ast.ImportFrom | ast.Import):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
            found += [f"{where} imports {n}" for n in names if stage_package(n)]
        elif isinstance(node, ast.Attribute) and node.attr in STAGES:
            found.append(f"{where} reads .{node.attr}")
        elif isinstance(node, ast.Constant) and node.value in STAGES and id(node) not in exempt:
            found.append(f"{where} names {node.value!r}")
    return found


def test_flows_name_no_stage_the_registry_is_the_dag():
    """flows/ runs whatever the registry declares (preflight, derived settings, streaming, reports):
    no stage name appears in it."""
    found = [use for path in sorted((ROOT / "flows").glob("*.py")) for use in stage_name_uses(path)]
    assert not found, "\n".join(found)


def test_the_stage_name_check_finds_a_special_case(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text('import tasks.filter.stage\nif stage == "evaluate":\n    x = cfg.train\ny = {"train": 1}\n')
    found = stage_name_uses(probe, tmp_path)
    assert any("imports tasks.filter.stage" in f for f in found) and any("names 'evaluate'" in f for f in found)
    assert any("reads .train" in f for f in found) and not any("names 'train'" in f for f in found)
