"""The `crawl2model` command line: run the pipeline, write the sample, inspect the catalog."""

from __future__ import annotations

import contextlib
import csv
import errno
import io
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table
from typer.core import TyperGroup

from storage.errors import Crawl2ModelError, Interrupted, UserError
from tasks.config import PipelineConfig, load_config
from tasks.registry import STAGES

# Storage failures a user fixes outside the program (disk full, read-only, no permission, quota).
STORAGE_ERRNOS = {errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EPERM, errno.EDQUOT}

# Tables are wide; off a terminal rich would wrap them at 80 columns.
console = Console() if sys.stdout.isatty() else Console(width=160)
# soft_wrap: an error or warning line is never cut at 80 columns when stderr is a file or a pipe.
err = Console(stderr=True, soft_wrap=True)


class ReportingGroup(TyperGroup):
    """The one place errors are caught: a `Crawl2ModelError` (or a storage failure the user fixes
    outside the program) becomes one `error:` line, a `hint:` line when there is one, and its exit
    code; `--debug` (or CRAWL2MODEL_DEBUG=1) lets the traceback through instead."""

    def invoke(self, ctx: typer.Context):
        try:
            return super().invoke(ctx)
        except (Crawl2ModelError, OSError) as e:
            if _debugging(ctx) or (isinstance(e, OSError) and e.errno not in STORAGE_ERRNOS):
                raise
            error = e if isinstance(e, Crawl2ModelError) else _storage_error(e)
            err.print(f"[bold red]error:[/] {error}", highlight=False)
            if error.hint:
                err.print(f"[bold]hint:[/] {error.hint}", highlight=False)
            raise typer.Exit(error.exit_code) from None


def _debugging(ctx: typer.Context) -> bool:
    return ctx.meta.get("debug", False) or os.environ.get("CRAWL2MODEL_DEBUG", "") not in ("", "0")


def _storage_error(e: object) -> Crawl2ModelError:
    return Crawl2ModelError(
        f"cannot write to the workdir: {e}",
        hint="stages that finished are kept and registered; the interrupted one registered nothing. "
        "Free space (or make the workdir writable) and rerun: finished work is reused.",
    )


app = typer.Typer(cls=ReportingGroup, add_completion=False, no_args_is_help=True, help=__doc__)


@app.callback()
def _options(
    ctx: typer.Context,
    debug: Annotated[bool, typer.Option("--debug", help="show the traceback of an error instead of one line")] = False,
) -> None:
    ctx.meta["debug"] = debug  # shared with every sub-command's context


WorkdirOpt = Annotated[
    Path, typer.Option("--workdir", "-w", envvar="CRAWL2MODEL_WORKDIR", help="where artifacts and the catalog live")
]


def _prefect_env(workdir: Path) -> None:
    # No network here or on many clusters: telemetry would only fill the log with errors.
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_LOGGING_EXTRA_LOGGERS", "crawl2model")
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    os.environ.setdefault("PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW", "ignore")


class Format(StrEnum):
    table = "table"
    csv = "csv"
    json = "json"


class MixtureOver(StrEnum):
    domains = "domains"
    languages = "languages"


def _print_rows(columns: list[str], rows: list[tuple], fmt: Format = Format.table, title: str | None = None) -> None:
    if fmt is Format.json:
        console.print_json(json.dumps([dict(zip(columns, r, strict=True)) for r in rows], default=str))
    elif fmt is Format.csv:
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows(rows)
        sys.stdout.write(buf.getvalue())
    else:
        table = Table(*columns, title=title)
        for r in rows:
            table.add_row(*["" if v is None else (f"{v:.4g}" if isinstance(v, float) else str(v)) for v in r])
        console.print(table)


@app.command(help=f"Run the pipeline under Prefect: {' -> '.join(STAGES)}.")
def run(
    config: Annotated[Path | None, typer.Option("--config", "-c", help="YAML config (default: the sample)")] = None,
    workdir: WorkdirOpt = Path("work"),
    only: Annotated[str | None, typer.Option(help="run just this stage (upstream from cache)")] = None,
    start: Annotated[str | None, typer.Option("--from", help="start at this stage (upstream from cache)")] = None,
    until: Annotated[str | None, typer.Option(help="stop after this stage")] = None,
    force: Annotated[list[str] | None, typer.Option(help="rerun this stage and everything after it")] = None,
    overrides: Annotated[
        list[str] | None, typer.Option("--set", help="override a config value: dotted.key=value")
    ] = None,
) -> None:
    cfg = load_config(config, overrides or [])
    _check_before_prefect(cfg, workdir, only, start, until, force or [])
    _prefect_env(workdir)
    started = time.perf_counter()
    with _watched():
        summary = _run_pipeline(cfg, workdir, only=only, start=start, until=until, force=force or [])
    _print_summary(summary, workdir, time.perf_counter() - started)


@contextlib.contextmanager
def _watched() -> Iterator[None]:
    """While a run lasts: if this process is killed, a detached watcher ends the temporary server and
    workers it started (one watcher per process: it watches for as long as the process lives), and
    Ctrl-C stops the run at once with one line (`_stop_on_interrupt`; the previous handler comes back
    after the run, so a process that calls the CLI in-process keeps its own)."""
    from flows.reaper import start_reaper

    global _watcher
    if _watcher is None:
        _watcher = start_reaper()
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, _stop_on_interrupt) if main_thread else None
    try:
        yield
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)


def _stop_on_interrupt(signum: int, frame: object) -> None:
    """SIGINT (a terminal's Ctrl-C reaches the whole process group: the temporary Prefect server and
    the shard workers too): one line, every process this run started ended, exit 130. Finished shards
    and stages are on disk (each is renamed into place whole, the manifest last), so a rerun resumes;
    waiting for Prefect to notice its server is gone would take minutes and print pages of traceback."""
    import psutil

    from flows.reaper import reap

    err.print(Interrupted.line, highlight=False)
    sys.stdout.flush()
    sys.stderr.flush()
    reap(psutil.Process().children(recursive=True))
    os._exit(Interrupted.exit_code)


_watcher = None


def _check_before_prefect(
    cfg: PipelineConfig, workdir: Path, only: str | None, start: str | None, until: str | None, force: list[str]
) -> None:
    """Mistakes a user can fix, reported in one line before the temporary Prefect server starts."""
    from storage.lock import busy_reason
    from tasks.plan import check_upstream, plan, select

    selected, _ = select(only, start, until, force)
    planned = plan(cfg, workdir.resolve())
    check_upstream(planned, selected)
    if reason := busy_reason(workdir.resolve()):
        raise Crawl2ModelError(reason)
    _preflight(cfg, planned, selected)


def _preflight(cfg: PipelineConfig, planned: list, selected: list[str]) -> None:
    """Each stage that will run (selected, not cached) checks what it needs of the outside world now
    (an LLM judge's key and endpoint, ...), not after the stages before it have run."""
    from tasks.registry import SPEC_BY_NAME
    from tasks.stage import load_manifest

    for p in planned:
        check = SPEC_BY_NAME[p.stage].preflight
        if check is not None and p.stage in selected and load_manifest(p.output_dir) is None:
            check(cfg.stage(p.stage))


def _run_pipeline(cfg: PipelineConfig, workdir: Path, **selection: str | list[str] | None) -> list[dict]:
    """The flow; its errors are reported by `ReportingGroup`, a full catalog disk as a storage error."""
    import duckdb

    from flows.pipeline import pipeline

    try:
        return pipeline(config=cfg, workdir=str(workdir), **selection)  # validated once, above
    except duckdb.IOException as e:
        raise _storage_error(f"{workdir}: {e}") from None


def _print_summary(summary: list[dict], workdir: Path, seconds: float) -> None:
    columns = ["stage", "status", "seconds", "docs in", "kept", "removed", "fingerprint"]
    rows = [
        (s["stage"], "cached" if s["cache_hit"] else "ran", round(s["seconds"], 2), s["docs_in"], s["docs_out"],
         s["docs_removed"], s["fingerprint"][:12])
        for s in summary
    ]  # fmt: skip
    _print_rows(columns, rows, title=f"crawl2model run ({seconds:.1f}s)")
    # Stage warnings (input files with no readable record, ...): once, after the table, whole lines.
    seen = dict.fromkeys(f"{s['stage']}: {w}" for s in summary for w in s.get("warnings", []))
    for line in seen:
        err.print(f"[bold yellow]warning:[/] {line}", highlight=False)
    from tasks.registry import SPEC_BY_NAME

    for s in summary:
        if (name := SPEC_BY_NAME[s["stage"]].report) and (report := _output_dir(workdir, s) / name).exists():
            console.print(f"report: {report}")


def _output_dir(workdir: Path, summary_row: dict) -> Path:
    return Path(workdir) / "artifacts" / summary_row["stage"] / summary_row["fingerprint"]


@app.command()
def sample(
    out: Annotated[Path, typer.Option(help="directory for the WARC files and ground_truth.jsonl")] = Path("sample"),
    pages: Annotated[int, typer.Option(min=50)] = 2400,
    planted: Annotated[int, typer.Option(min=1, help="pages planted per case")] = 24,
    seed: int = 0,
) -> None:
    """Write the embedded sample: gzipped WARC files with planted cases, and their ground truth."""
    from tasks.sample.warc import write_sample

    summary = write_sample(out, pages, planted, seed)
    console.print_json(json.dumps(summary))


@app.command("plan")
def plan_cmd(
    tokens: Annotated[float | None, typer.Option(help="training tokens available")] = None,
    flops: Annotated[float | None, typer.Option(help="training compute budget in FLOPs")] = None,
    gpu_hours: Annotated[float | None, typer.Option(help="GPU-hours budget (with --gpu)")] = None,
    gpu: Annotated[str, typer.Option(help="GPU kind for peak FLOP/s")] = "H100",
    mfu: Annotated[
        float | None, typer.Option(min=0.01, max=1.0, help="MFU to assume (default: measured in --workdir, else 0.4)")
    ] = None,
    vocab_size: int = 32768,
    seq_len: int = 1024,
    epochs: Annotated[float, typer.Option(min=1.0, help="passes over the --tokens budget (repeated data)")] = 1.0,
    workdir: WorkdirOpt = Path("work"),
) -> None:
    """Suggest a model size for a token, compute or GPU-hour budget (Chinchilla and inference-aware).

    A token budget is never exceeded: both plans read those tokens, `--epochs` times."""
    from model.sizing import human, plan
    from storage.catalog import Catalog

    if mfu is None:
        mfu = 0.4
        catalog = Catalog(workdir)
        if catalog.path.exists():
            _, [(measured,)] = catalog.query("select median(value) from metrics where name = 'train_mfu'")
            if measured:
                mfu = float(measured)
                console.print(f"using the MFU measured in {workdir}: {mfu:.1%}")

    plans = plan(tokens=tokens, flops=flops, gpu_hours=gpu_hours, gpu=gpu, mfu=mfu, vocab_size=vocab_size,
                 seq_len=seq_len, epochs=epochs)  # fmt: skip
    cols = ["plan", "params", "tokens seen", "worth (fresh tokens)", "FLOPs (6ND)", "tokens/param", "est. loss",
            f"{gpu} hours @ {mfu:.0%} MFU", "nearest preset"]  # fmt: skip
    rows = [(p.name, human(p.params), human(p.tokens), human(p.effective_tokens), f"{p.flops:.2g}",
             round(p.tokens_per_param), round(p.est_loss, 3), f"{p.gpu_hours:.3g}", p.nearest_preset)
            for p in plans]  # fmt: skip
    _print_rows(cols, rows, title="model sizing")
    if epochs > 1:
        worth = human(plans[0].effective_tokens)
        console.print(f"{epochs:g} epochs of {human(tokens)} tokens are worth about {worth} fresh tokens "
                      "(Muennighoff et al. 2023: up to ~4 epochs nearly as good as new data)")  # fmt: skip


@app.command("evaluate")
def evaluate_cmd(
    checkpoint: Annotated[Path, typer.Argument(help="a model.pt or an intermediate checkpoints/step-*.pt")],
    config: ConfigOpt = None,
    overrides: SetOpt = None,
    workdir: WorkdirOpt = Path("work"),
) -> None:
    """Score any checkpoint, with any benchmarks this config names: the evaluate stage's report, on the
    data outputs the checkpoint was trained from; prints the task table."""
    from tasks.checkpoints import evaluate_checkpoint, summary_headline, task_table

    cfg = load_config(config, overrides or [])
    summary = evaluate_checkpoint(cfg, workdir.resolve(), checkpoint)
    if headline := summary_headline(summary["metrics"]):
        console.print(headline)
    if table := task_table(summary["metrics"]):
        console.print(table, markup=False, highlight=False, soft_wrap=True)
    console.print(f"report: {summary['report']}")


CheckpointArg = Annotated[Path, typer.Argument(help="a model.pt: sft's or dpo's output (a chat model), or train's")]
TokenizerOpt = Annotated[Path | None, typer.Option("--tokenizer", help="a base model's tokenizer.model (chat models "
                                                   "carry theirs)")]  # fmt: skip
MaxNewOpt = Annotated[int, typer.Option("--max-new-tokens", min=1, help="reply length limit")]
TemperatureOpt = Annotated[float, typer.Option("--temperature", min=0.0, help="0 = greedy")]


@app.command("generate")
def generate_cmd(
    checkpoint: CheckpointArg,
    prompt: Annotated[str, typer.Argument(help="a chat model answers it as a user message; a base model continues it")],
    tokenizer: TokenizerOpt = None,
    max_new_tokens: MaxNewOpt = 64,
    temperature: TemperatureOpt = 0.0,
    top_k: Annotated[int | None, typer.Option("--top-k", min=1)] = None,
    seed: int = 0,
) -> None:
    """One reply from a checkpoint (the chat template for a chat model), printed."""
    from tasks.chat_session import generate

    text = generate(checkpoint, prompt, tokenizer, max_new_tokens, temperature=temperature, top_k=top_k, seed=seed)
    console.print(text, markup=False, highlight=False)


@app.command("chat")
def chat_cmd(
    checkpoint: CheckpointArg,
    system: Annotated[str | None, typer.Option("--system", help="a system message first")] = None,
    tokenizer: TokenizerOpt = None,
    max_new_tokens: MaxNewOpt = 128,
    temperature: TemperatureOpt = 0.0,
) -> None:
    """A conversation in the terminal with a chat model (sft's or dpo's); `exit` or Ctrl-D ends it."""
    from tasks.chat_session import converse

    def read() -> str | None:
        try:
            return input("you> ")
        except EOFError:
            return None

    converse(checkpoint, tokenizer, read, lambda answer: console.print(f"model> {answer}", markup=False,
             highlight=False), system, max_new_tokens, temperature=temperature)  # fmt: skip


@app.command("curve")
def curve_cmd(config: ConfigOpt = None, overrides: SetOpt = None, workdir: WorkdirOpt = Path("work")) -> None:
    """Score every training milestone of this config's run: yardstick and tasks against tokens seen."""
    from model.intervals import fmt_ci
    from tasks.checkpoints import checkpoint_curve

    cfg = load_config(config, overrides or [])
    summary = checkpoint_curve(cfg, workdir.resolve())
    for p in summary["points"]:
        ci = p["yardstick_ci"] or ["", ""]
        console.print(f"{p['checkpoint']}: {p['tokens']:,} tokens, yardstick {p['yardstick_bits_per_byte']:.4f} "
                      f"[{ci[0]:.4f}, {ci[1]:.4f}]")  # fmt: skip
        for task, v in p["tasks"].items():
            keys = [k for k in ("acc", "p_correct", "logprob_norm") if k in v]
            shown = [f"{k} {fmt_ci(v[k], v.get(f'{k}_ci'), 3)}" for k in keys]
            console.print(f"  {task}: {', '.join(shown)}", markup=False, highlight=False)
    console.print(f"curve: {summary['png']}")


@app.command("harness")
def harness_cmd(
    checkpoint: Annotated[Path, typer.Argument(help="a model.pt or an intermediate checkpoints/step-*.pt")],
    tasks: Annotated[str, typer.Option("--tasks", help="comma list of lm-eval task names")] = "",
    local: Annotated[
        list[str] | None,
        typer.Option(
            "--local", help="TASK=FILE: lm-eval's TASK logic on a local JSONL in the dataset's published shape"
        ),
    ] = None,
    include_path: Annotated[list[Path] | None, typer.Option("--include-path", help="folders of task YAMLs")] = None,
    limit: Annotated[int | None, typer.Option(help="items per task")] = None,
    num_fewshot: Annotated[int | None, typer.Option(help="shots (default: each task's own)")] = None,
    config: ConfigOpt = None,
    overrides: SetOpt = None,
    workdir: WorkdirOpt = Path("work"),
) -> None:
    """Run lm-evaluation-harness tasks on a checkpoint with this config's tokenizer (the `harness` extra)."""
    from tasks.checkpoints import harness_checkpoint

    pairs = [item.partition("=") for item in local or []]
    if bad := [f"{t}{eq}{f}" for t, eq, f in pairs if not eq or not Path(f).is_file()]:
        raise UserError(f"--local takes TASK=FILE with an existing file: {', '.join(bad)}")
    names = [t.strip() for t in tasks.split(",") if t.strip()]
    if not names and not pairs:
        raise UserError("give --tasks or --local")
    cfg = load_config(config, overrides or [])
    try:
        summary = harness_checkpoint(cfg, workdir.resolve(), checkpoint, names, {t: f for t, _, f in pairs},
                                     include_path or [], limit, num_fewshot)  # fmt: skip
    except ImportError as e:
        raise Crawl2ModelError(f"{e}: install the harness extra (pip install 'crawl2model[harness]')") from None
    for task, metrics in summary["results"].items():
        shown = ", ".join(f"{k.split(',')[0]} {v:.4f}" for k, v in metrics.items() if isinstance(v, float))
        console.print(f"{task}: {shown}")
    console.print(f"results: {summary['out']}")


@app.command("export")
def export_cmd(
    stage: Annotated[str, typer.Option("--stage", help="the stage whose output is exported")],
    format: Annotated[str, typer.Option("--format", help="jsonl, hf-datasets, megatron, nanogpt, litdata or hf")],
    out: Annotated[Path, typer.Option("--out", help="the export directory")],
    shard_bytes: Annotated[int | None, typer.Option(help="text bytes per document shard")] = None,
    config: ConfigOpt = None,
    overrides: SetOpt = None,
    workdir: WorkdirOpt = Path("work"),
) -> None:
    """Write a finished stage output in a format another tool reads (documents, tokens, the model)."""

    from flows.export import run_export
    from tasks.export.config import ExportConfig

    cfg = load_config(config, overrides or [])
    options = {"stage": stage, "format": format, "out": out} | ({"shard_bytes": shard_bytes} if shard_bytes else {})
    try:
        export_cfg = ExportConfig.model_validate(options)
    except ValidationError as e:
        raise UserError(f"export: {e.errors()[0]['loc'][0]}: {e.errors()[0]['msg']}") from None
    manifest = run_export(cfg, workdir.resolve(), export_cfg)
    size = sum(f["bytes"] for f in manifest["files"])
    state = "already exported" if manifest["reused"] else "exported"
    files = len(manifest["files"])
    console.print(f"{state}: {format} of {stage}, {files} files, {size / 1e6:.1f} MB in {manifest['out']}")
    console.print(f"load: {manifest['load']}")


@app.command()
def compare(
    run_a: Annotated[str | None, typer.Argument(help="run id, unique prefix, or latest/previous")] = None,
    run_b: Annotated[str | None, typer.Argument(help="run id, unique prefix, or latest/previous")] = None,
    experiment: Annotated[
        str | None, typer.Option(help="instead: every run of this experiment (id, prefix or latest), one row each")
    ] = None,
    fmt: Annotated[Format, typer.Option("--format", help="with --experiment")] = Format.table,
    workdir: WorkdirOpt = Path("work"),
) -> None:
    """B relative to A: config, data funnel, and paired evaluation differences (B - A, 95% intervals,
    verdicts on the same yardstick documents and items), or an experiment's runs."""
    from storage.compare import config_diff, eval_diff, funnel_diff, resolve_run

    catalog = _catalog(workdir)
    if experiment is not None:
        from flows.experiments import experiment_table, resolve_experiment

        exp_id = resolve_experiment(catalog, experiment)
        columns, rows = experiment_table(catalog, exp_id)
        if fmt is Format.table:  # one column per run: a row per metric reads at any terminal width
            columns, rows = runs_as_columns(columns, rows)
        _print_rows(columns, rows, fmt, title=f"experiment {exp_id}")
        _print_experiment_comparisons(catalog, exp_id, fmt)
        return
    if run_a is None or run_b is None:
        raise UserError("give two runs to compare, or --experiment ID")
    a, b = resolve_run(catalog, run_a), resolve_run(catalog, run_b)
    console.print(f"B relative to A: A = {a}, B = {b}; every difference is B - A")
    _print_rows(["config key", f"A {a}", f"B {b}"], config_diff(catalog, a, b), title="config differences")
    _print_rows(["stage / rule", "docs in (A)", "kept or removed (A)", "(B)", "B - A"], funnel_diff(catalog, a, b),
                title="data funnel")  # fmt: skip
    _print_paired(catalog, a, b)
    _print_rows(["metric", "A", "B", "B - A"], eval_diff(catalog, a, b),
                title="every evaluation metric, unpaired (the held-out split differs between runs)")  # fmt: skip


def runs_as_columns(columns: list[str], rows: list[tuple]) -> tuple[list[str], list[tuple]]:
    """An experiment's table (a row per run: label, run_id, setting, then one column per metric)
    turned so each run is a column headed by its label and each metric a row."""
    heads = ["metric", *(f"{r[0]} ({r[1][:8]})" for r in rows)]
    return heads, [(name, *(r[i] for r in rows)) for i, name in enumerate(columns) if i >= 2]


def _print_experiment_comparisons(catalog, exp_id: str, fmt: Format) -> None:
    """A recipes experiment's paired comparisons (made by the code `compare A B` uses)."""
    from model.intervals import fmt_ci

    _, rows = catalog.query("select result_json from experiments where experiment_id = ?", [exp_id])
    result = json.loads(rows[0][0]) if rows and rows[0][0] else {}
    if comparisons := result.get("comparisons"):
        _print_rows(["recipe", "relative to", "metric", "delta [95%]", "verdict"],
                    [(c["recipe"], c["baseline"], c["metric"], fmt_ci(c["delta"], c["ci"]), c["verdict"])
                     for c in comparisons], fmt, title="paired comparisons")  # fmt: skip


def _print_paired(catalog, a: str, b: str) -> None:
    """The yardstick and the benchmark items, paired: B - A with its 95% interval and a verdict."""
    from model.intervals import fmt_ci
    from storage.compare import stage_output_dir
    from tasks.comparison import Scores, compare, warnings
    from tasks.registry import SCORING_STAGE

    dirs = [stage_output_dir(catalog, run, SCORING_STAGE) for run in (a, b)]
    try:
        scores = [Scores.load(d) for d in dirs if d]
    except FileNotFoundError:
        scores = []
    if len(scores) != 2:
        console.print("no paired comparison: a run has no per-document evaluation (evaluate did not run, or ran "
                      "before crawl2model recorded one)")  # fmt: skip
        return
    for warning in warnings([scores[0]], [scores[1]]):
        console.print(f"[yellow]warning:[/yellow] {warning}")
    rows = [(r["metric"], r["units"], fmt_ci(r["a"]["value"], r["a"]["ci"]), fmt_ci(r["b"]["value"], r["b"]["ci"]),
             fmt_ci(r["delta"], r["ci"]), r["verdict"] + (" (lower is better)" if r["lower_is_better"] else ""))
            for r in compare([scores[0]], [scores[1]])]  # fmt: skip
    _print_rows(["metric", "docs / items", "A [95%]", "B [95%]", "B - A [95%]", "B is"], rows,
                title="paired: B relative to A on the same documents and items")  # fmt: skip


def _catalog(workdir: Path):
    from storage.catalog import Catalog

    catalog = Catalog(workdir)
    if not catalog.path.exists():
        raise Crawl2ModelError(f"no catalog at {catalog.path}: run `crawl2model run` first")
    return catalog


@app.command()
def status(workdir: WorkdirOpt = Path("work")) -> None:
    """The latest run and each of its stages."""
    catalog = _catalog(workdir)
    cols, rows = catalog.query(
        "select run_id, status, config_name, started_at, seconds from runs order by started_at desc limit 1"
    )
    if not rows:
        raise Crawl2ModelError("the catalog holds no run yet")
    _print_rows(cols, rows, title="latest run")
    cols, rows = catalog.query(
        "select stage, status, cache_hit, round(seconds, 2) as secs, docs_in, docs_out, docs_removed, "
        "left(fingerprint, 12) fingerprint, error from stage_runs where run_id = ? order by started_at",
        [rows[0][0]],
    )
    _print_rows(cols, rows, title="stages")


@app.command()
def artifacts(workdir: WorkdirOpt = Path("work")) -> None:
    """Every registered artifact, grouped by stage output and kind."""
    cols, rows = _catalog(workdir).query(
        "select stage, left(fingerprint, 12) fingerprint, kind, count(*) files, sum(rows) rows, sum(bytes) bytes "
        "from artifacts group by all order by min(created_at), stage, kind"
    )
    _print_rows(cols, rows, title="artifacts")


@app.command()
def calibrate(
    workdir: WorkdirOpt = Path("work"),
    out: Annotated[Path, typer.Option(help="the config file to write (a figure beside it, .png)")] = Path(
        "calibrated.yaml"
    ),
    reference: Annotated[
        list[str] | None,
        typer.Option(help="language=path of reference text (text, JSONL, Parquet), e.g. ja=jawiki.jsonl; repeatable"),
    ] = None,
    languages: Annotated[
        str | None, typer.Option(help="comma-separated languages (default: every one with enough documents)")
    ] = None,
    min_docs: Annotated[int, typer.Option(min=10, help="documents a language needs")] = 50,
    per_language: Annotated[int, typer.Option(min=50, help="documents used per language at most")] = 2000,
) -> None:
    """Derive each language's Gopher thresholds from your crawl (or reference files): a config to review."""
    from tasks.calibrate import calibrate as derive
    from tasks.calibrate import crawl_documents, reference_documents, write_outputs

    references = reference_documents(reference or [])
    crawl = crawl_documents(workdir, per_language) if workdir.exists() else {}
    if not crawl and not references:
        raise UserError(f"nothing to calibrate on: no crawl in {workdir} and no --reference",
                        hint="run `crawl2model run --until extract` first, or give --reference lang=path")  # fmt: skip
    wanted = [x.strip() for x in languages.split(",")] if languages else None
    calibrations = derive(crawl, references, wanted, min_docs, per_language)
    figure = write_outputs(calibrations, out)
    for c in calibrations:
        changed = ", ".join(f"{k}={v}" for s in c.thresholds.values() for k, v in s.items()) or "defaults kept"
        console.print(f"{c.lang}: {c.docs} documents ({c.source}): {changed}")
    console.print(f"wrote {out} and {figure}: review it, then `crawl2model run --config {out}`")


def _language_rates(rule: str, rates: dict) -> str:
    others = "no other language" if rates["others_share"] is None else (
        f"{rates['others_share']:.0%} of the other languages' {rates['others_docs']}")  # fmt: skip
    line = (f"{rule} removes {rates['share']:.0%} of {rates['language']} documents here "
            f"({rates['removed']}/{rates['docs']}) against {others}")  # fmt: skip
    return line + (" [yellow]flagged: far more in this language[/yellow]" if rates["flag"] else "")


@app.command()
def explain(
    key: Annotated[str, typer.Argument(help="a doc_id or a URL")],
    workdir: WorkdirOpt = Path("work"),
    as_json: Annotated[bool, typer.Option("--json", help="print the history as JSON")] = False,
) -> None:
    """The whole history of one document: WARC record, extraction, every filter rule, dedup, domain, tokens."""
    from tasks.explain import explain as history_of
    from tasks.registry import SPEC_BY_NAME

    _catalog(workdir)
    histories = history_of(workdir, key)
    if not histories:
        raise Crawl2ModelError(f"no document with doc_id or URL {key!r} in the latest outputs")
    if as_json:
        console.print_json(json.dumps(histories, default=str))
        return
    for h in histories:
        console.print(f"[bold]{h['doc_id']}[/bold] {h.get('url', '')}")
        for entry in h["stages"]:
            if "removed" in entry:
                r = entry["removed"]
                where = f" (kept copy: {r['kept_copy_url']})" if r.get("kept_copy_url") else ""
                if r.get("warc_path") and "warc_path" in SPEC_BY_NAME[entry["stage"]].explain_columns:
                    where += f" (record at {r['warc_path']} offset {r.get('warc_offset')})"
                why = f"by {r['rule']} (value {r['value']}) {r['detail']}{where}"
                console.print(f"  {entry['stage']}: [red]removed[/red] {why}")
                if rates := r.get("by_language"):
                    console.print(f"    {_language_rates(r['rule'], rates)}")
            elif "kept" in entry:
                console.print(f"  {entry['stage']}: kept {_kept_summary(entry['stage'], entry['kept'])}")
            elif skipped := entry.get("not_extracted"):
                console.print(f"  {entry['stage']}: not extracted: the URL fails filter's {skipped['rule']} "
                              f"({skipped['detail']}); filter records the removal")  # fmt: skip
            for rule in entry.get("rules", []):
                mark = "[green]pass[/green]" if rule["passed"] else "[red]FAIL[/red]"
                value = "" if rule["value"] is None else f"{rule['value']:.4g}"
                limit = f" ({rule['threshold']})" if rule.get("threshold") else ""
                console.print(f"    {mark} {rule['rule']} {value}{limit} {rule['detail']}".rstrip())
        if "token_rows" in h:
            console.print(f"  token shards: in {h['token_rows']} packed rows")


def _kept_summary(stage: str, doc: dict) -> str:
    from tasks.registry import SPEC_BY_NAME

    return " ".join(f"{k}={doc[k]}" for k in SPEC_BY_NAME[stage].explain_columns if doc.get(k) is not None)


@app.command()
def sql(
    query: Annotated[str, typer.Argument(help="SQL over the catalog and the artifact views")],
    workdir: WorkdirOpt = Path("work"),
    fmt: Annotated[Format, typer.Option("--format", "-f")] = Format.table,
) -> None:
    """SQL over the catalog (runs, stage_runs, artifacts, lineage, metrics) and the artifact views.

    Views: documents, removed, tokens, and <stage>_<kind> such as filter_docs or dedup_removed.
    """
    import duckdb

    try:
        cols, rows = _catalog(workdir).query(query)
    except duckdb.Error as e:
        raise Crawl2ModelError(f"query failed: {e}") from None
    _print_rows(cols, rows, fmt)


experiment_app = typer.Typer(
    no_args_is_help=True, help="Data experiments: curation recipes, mixture search, ablations, scaling ladders."
)
app.add_typer(experiment_app, name="experiment")
ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="YAML config (default: the sample)")]
SetOpt = Annotated[list[str] | None, typer.Option("--set", help="override a config value: dotted.key=value")]


def _run_experiment(workdir: Path, start) -> None:
    """Run an experiment flow; print where its report is."""
    _prefect_env(workdir)
    with _watched():
        result = start()
    console.print(f"experiment {result['experiment_id']}: report {result['report']}")


@experiment_app.command("mixture")
def experiment_mixture(
    config: ConfigOpt = None,
    overrides: SetOpt = None,
    proxies: Annotated[int, typer.Option(min=3, help="proxy models, one per sampled mixture")] = 8,
    target_domain: Annotated[str, typer.Option(help="domain whose held-out documents define the target")] = "docs",
    metric: Annotated[
        str | None,
        typer.Option(
            help="target_bits_per_byte (the default over domains), any evaluate metric (e.g. "
            "task.cloze.acc, yardstick.language.th.bits_per_byte), or yardstick.languages_mean.bits_per_byte "
            "(the default over languages)"
        ),
    ] = None,  # fmt: skip
    over: Annotated[
        MixtureOver,
        typer.Option(help="what the mixtures weigh: mix's domains, or its languages (mix.languages.shares)"),
    ] = MixtureOver.domains,
    concentration: Annotated[float, typer.Option(min=0.01, help="Dirichlet spread: small = far from natural")] = 1.0,
    parallel: Annotated[int, typer.Option(min=1, help="proxies trained at once (task runner threads)")] = 2,
    seed: int = 0,
    workdir: WorkdirOpt = Path("work"),
) -> None:
    """RegMix-style search: proxies on sampled mixtures, regression, predicted best mixture."""
    cfg = load_config(config, overrides or [])
    from prefect.task_runners import ThreadPoolTaskRunner

    from flows.experiments import mixture_experiment
    from tasks.proxies import check_search, share_cores

    check_search(cfg, over.value)
    cfg = share_cores(cfg, parallel)
    flow = mixture_experiment.with_options(task_runner=ThreadPoolTaskRunner(max_workers=parallel))
    _run_experiment(workdir, lambda: flow(config=cfg.model_dump(mode="json"), workdir=str(workdir), proxies=proxies,
                                          target_domain=target_domain, metric=metric, concentration=concentration,
                                          seed=seed, over=over.value))  # fmt: skip


@experiment_app.command("ablate")
def experiment_ablate(
    vary: Annotated[list[str], typer.Option(help="KEY=V1,V2,...; several --vary give every combination")],
    config: ConfigOpt = None,
    overrides: SetOpt = None,
    workdir: WorkdirOpt = Path("work"),
) -> None:
    """The pipeline once per value of the varied settings, at equal model size and token budget."""
    from tasks.experiments import parse_vary

    settings = parse_vary(vary)
    configs = [load_config(config, [*(overrides or []), *(f"{k}={v}" for k, v in s.items())]).model_dump(mode="json")
               for s in settings]  # fmt: skip
    from flows.experiments import ablation_experiment

    _run_experiment(workdir, lambda: ablation_experiment(configs=configs, settings=settings, workdir=str(workdir)))


@experiment_app.command("recipes")
def experiment_recipes(
    recipes: Annotated[
        str,
        typer.Option(
            help="comma-separated, the first is the baseline: raw, heuristic, classifier, dedup, full, "
            "full-resiliparse, wsd, anneal"
        ),
    ] = "raw,heuristic,full",
    seeds: Annotated[int, typer.Option(min=1, max=20, help="trainings per recipe (initialisation, data order)")] = 1,
    post_train: Annotated[
        str | None,
        typer.Option(
            "--post-train",
            help="the same post-training for every recipe's base model: sft, sft,dpo or none (the "
            "chat verdicts, task.chat_*, beside the base model's); unset: the config's own sft/dpo settings",
        ),
    ] = None,
    config: ConfigOpt = None,
    overrides: SetOpt = None,
    workdir: WorkdirOpt = Path("work"),
) -> None:
    """Curation recipes at equal compute, scored on the fixed yardstick, with paired intervals and verdicts."""
    from tasks.experiments import parse_recipes, post_train_overrides
    from tasks.proxies import recipe_configs

    names = parse_recipes(recipes)
    post = post_train_overrides(post_train)
    configs = recipe_configs(lambda extra: load_config(config, [*(overrides or []), *post, *extra]), names, seeds)
    from flows.experiments import recipes_experiment

    _run_experiment(workdir, lambda: recipes_experiment(configs=configs, workdir=str(workdir)))


@experiment_app.command("scaling")
def experiment_scaling(
    sizes: Annotated[str, typer.Option(help="comma-separated presets or LAYERSxHEADSxEMBD shapes")] = "tiny,small",
    predict_flops: Annotated[float | None, typer.Option(help="budget to predict (default 10x the largest)")] = None,
    config: ConfigOpt = None,
    overrides: SetOpt = None,
    workdir: WorkdirOpt = Path("work"),
) -> None:
    """A ladder of model sizes on the same data; a power law of loss against compute; a prediction."""
    from tasks.experiments import parse_size
    from tasks.proxies import scaling_configs

    names = [s.strip() for s in sizes.split(",") if s.strip()]
    shapes = [parse_size(s) for s in names]
    if len(names) < 2:
        raise UserError("a scaling ladder needs at least two sizes")
    configs = scaling_configs(load_config(config, overrides or []), shapes)
    from flows.experiments import scaling_experiment

    _run_experiment(workdir, lambda: scaling_experiment(configs=configs, sizes=names, workdir=str(workdir),
                                                        predict_flops=predict_flops))  # fmt: skip


@app.command("serve")
def serve_cmd(
    port: Annotated[int, typer.Option(min=1, max=65535, help="port on 127.0.0.1 for the UI and API")] = 4200,
    database_url: Annotated[
        str | None, typer.Option(help="Postgres URL (postgresql+asyncpg://...); default SQLite under PREFECT_HOME")
    ] = None,
    register: Annotated[
        bool, typer.Option("--deploy/--no-deploy", help="also register prefect.yaml's deployments")
    ] = True,
    startup_timeout: Annotated[float, typer.Option(help="seconds to wait for the server")] = 120.0,
    workdir: Annotated[
        Path | None,
        typer.Option("--workdir", "-w", envvar="CRAWL2MODEL_WORKDIR", help="where runs started from the UI write"),
    ] = None,
) -> None:
    """A Prefect server on 127.0.0.1, the crawl2model work pool and a worker for it; Ctrl-C or SIGTERM stops them."""
    from flows.serve import serve

    try:
        serve(port, database_url, register, startup_timeout, workdir, log=console.print)
    except (RuntimeError, TimeoutError) as e:
        raise Crawl2ModelError(str(e)) from None


@app.command("deploy")
def deploy_cmd() -> None:
    """Register prefect.yaml's deployments (and the work pool) on the server PREFECT_API_URL names."""
    from flows.serve import deploy, server_env

    if not os.environ.get("PREFECT_API_URL"):
        raise UserError("set PREFECT_API_URL to the server's API (crawl2model serve prints it)")
    env = {**server_env(0), "PREFECT_API_URL": os.environ["PREFECT_API_URL"],
           "PREFECT_UI_API_URL": os.environ["PREFECT_API_URL"]}  # fmt: skip
    try:
        console.print(deploy(env))
    except RuntimeError as e:
        raise Crawl2ModelError(str(e)) from None


if __name__ == "__main__":  # last: every command above is registered before the app runs
    app()
