"""Data experiments as Prefect flows: a RegMix-style mixture search, ablations, scaling ladders.

Every variant is an ordinary pipeline run (a `crawl2model-slice` subflow with its own run id in the
catalog), so stages whose fingerprints do not change are cache hits: proxies share everything
before mix, an ablation of a filter threshold reuses acquire and extract, a scaling ladder reuses
all data stages. Mixture proxies run in parallel through the flow's task runner; each proxy's
training then runs in a process of its own (see tasks/train/stage.py). Results go to the catalog
(`experiments`, `experiment_runs`) and to `<workdir>/experiments/<id>/report.md` with plots.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from prefect import flow, task, unmapped
from prefect.artifacts import create_markdown_artifact

from flows.pipeline import new_run_id, pipeline_slice
from storage.catalog import Catalog
from storage.errors import NotFound, UserError
from storage.lock import workdir_lock
from storage.shards import atomic_write_bytes, atomic_write_json
from tasks.comparison import HEADLINE, LANGUAGE_PREFIX, lower_is_better, recipes_report, recipes_result
from tasks.config import PipelineConfig
from tasks.experiments import (
    best_mixture,
    choose_alpha,
    design,
    fit_power_law,
    fit_ridge,
    leave_one_out,
    power_law,
    predicted_change,
    sample_mixtures,
    spearman,
)
from tasks.figures import markdown_table, pyplot, save_figure
from tasks.proxies import (
    LANGUAGES_MEAN,
    TARGET_METRIC,
    check_search,
    mixture_setting,
    natural_mixture,
    natural_shares,
    proxy_configs,
    proxy_stages,
    recipe_setting,
    run_metrics,
    scores_of,
    shared_tokenizer,
    target_documents,
    training_documents,
    up_to_the_tokenizer,
)
from tasks.registry import STAGES


def new_experiment_id(kind: str) -> str:
    return f"{kind}-{new_run_id()}"


@task(task_run_name="{label}")
def run_variant(
    config: dict[str, Any], workdir: str, stages: list[str], label: str, target_docs: str | None = None,
    max_rows: int = 256,
) -> dict[str, Any]:  # fmt: skip
    """One experiment variant: a pipeline slice (a subflow run of its own), then its metrics."""
    run_id = new_run_id()
    summary = pipeline_slice(config=config, workdir=workdir, stages=stages, label=label, run_id=run_id)
    cfg = PipelineConfig.model_validate(config)
    metrics = run_metrics(cfg, Path(workdir).resolve(), target_docs, max_rows)
    return {"label": label, "run_id": run_id, "summary": summary, "metrics": metrics}


def _record(catalog: Catalog, exp_id: str, variants: list[dict], settings: list[dict]) -> None:
    for variant, setting in zip(variants, settings, strict=True):
        catalog.add_experiment_run(exp_id, variant["run_id"], variant["label"], setting, variant["metrics"])


def _finish(catalog: Catalog, exp_id: str, out: Path, kind: str, result: dict, report: str) -> dict:
    atomic_write_json(out / "result.json", result)
    atomic_write_bytes(out / "report.md", report.encode())
    create_markdown_artifact(key=f"experiment-{kind}", markdown=report, description=f"{kind} experiment {exp_id}")
    catalog.finish_experiment(exp_id, "completed", result, str(out / "report.md"))
    return {"experiment_id": exp_id, "report": str(out / "report.md"), **result}


def _experiment(kind: str, workdir: str, params: dict[str, Any], body) -> dict[str, Any]:
    """Hold the workdir lock, register the experiment, run `body(exp_id, out)`, record the outcome."""
    root = Path(workdir).resolve()
    exp_id = params.pop("experiment_id", None) or new_experiment_id(kind)
    out = root / "experiments" / exp_id
    out.mkdir(parents=True, exist_ok=True)
    with workdir_lock(root):
        catalog = Catalog(root)
        catalog.start_experiment(exp_id, kind, params)
        try:
            result, report = body(exp_id, out, catalog)
        except BaseException as e:
            catalog.finish_experiment(exp_id, "failed", {"error": f"{type(e).__name__}: {e}"[:2000]}, None)
            raise
        return _finish(catalog, exp_id, out, kind, result, report)


# --- mixture search ---------------------------------------------------------------------------


@flow(name="crawl2model-experiment-mixture", log_prints=True)
def mixture_experiment(
    config: dict[str, Any], workdir: str, proxies: int = 8, target_domain: str = "docs",
    metric: str | None = None, concentration: float = 1.0, seed: int = 0, experiment_id: str | None = None,
    over: str = "domains",
) -> dict[str, Any]:  # fmt: skip
    """Sample `proxies` mixtures around the natural one (of domains, or of languages), train a proxy on
    each, regress the metric on the weights, and predict the best mixture. The metric by default: bits
    per byte on the target domain's held-out documents, or (over languages) the languages' mean on
    the yardstick."""
    metric = metric or (TARGET_METRIC if over == "domains" else LANGUAGES_MEAN)
    params = {"proxies": proxies, "target_domain": target_domain, "metric": metric, "concentration": concentration,
              "seed": seed, "experiment_id": experiment_id, "over": over}  # fmt: skip
    if proxies < 3:
        raise UserError("a mixture search needs at least 3 proxies")
    cfg = PipelineConfig.model_validate(config)
    check_search(cfg, over)

    def body(exp_id: str, out: Path, catalog: Catalog) -> tuple[dict, str]:
        root = Path(workdir).resolve()
        natural_cfg = natural_mixture(cfg)
        pipeline_slice(config=natural_cfg.model_dump(mode="json"), workdir=workdir, stages=up_to_the_tokenizer(),
                       label=f"{exp_id}-natural", run_id=new_run_id())  # fmt: skip
        tokenizer = shared_tokenizer(cfg, natural_cfg, root)
        natural = natural_shares(natural_cfg, root, over)
        target_path, n_target = out / "target_docs.parquet", None
        if metric == TARGET_METRIC:
            n_target = target_documents(natural_cfg, root, target_domain, target_path)
        mixtures = sample_mixtures(natural, proxies, concentration, seed)
        configs = proxy_configs(cfg, tokenizer, mixtures, over)
        stages = proxy_stages(evaluated=metric != TARGET_METRIC)
        labels = [f"{exp_id}-proxy-{i}" for i in range(proxies)]
        futures = run_variant.map(configs, unmapped(workdir), unmapped(stages), labels,
                                  unmapped(str(target_path) if n_target else None))  # fmt: skip
        variants = [f.result() for f in futures]
        if missing := [v["label"] for v in variants if metric not in v["metrics"]]:
            raise UserError(f"metric {metric!r} not measured for {missing[0]}; known: {sorted(variants[0]['metrics'])}")
        result, y, loo = fit_mixture(mixtures, variants, natural, metric, concentration, seed)
        best = result["predicted_best_mixture"]
        result.update(over=over, target_domain=target_domain if n_target else None, target_docs=n_target,
                      languages=language_changes(mixtures, variants, natural, best))  # fmt: skip
        _record(catalog, exp_id, variants, [mixture_setting(m, over) for m in mixtures])
        _scatter(y, loo, metric, out / "predicted_vs_measured.png")
        return result, mixture_report(exp_id, result, sorted(natural))

    return _experiment("mixture", workdir, params, body)


def language_changes(mixtures: list[dict[str, float]], variants: list[dict[str, Any]], natural: dict[str, float],
                     best: dict[str, float]) -> dict[str, dict[str, Any]]:  # fmt: skip
    """Each language's yardstick bits per byte (when evaluate measured them) regressed on the same
    mixtures: predicted at the natural and the chosen mixture, so a search for one language shows what
    it costs the others."""
    names = sorted(k for k in variants[0]["metrics"] if k.startswith(LANGUAGE_PREFIX))
    keys = sorted(natural)
    x, at = design(mixtures, keys), {k: design([m], keys)[0] for k, m in (("natural", natural), ("best", best))}
    return {name.removeprefix(LANGUAGE_PREFIX).removesuffix(".bits_per_byte"):
            predicted_change(x, np.array([v["metrics"][name] for v in variants]), at["natural"], at["best"])
            for name in names if all(name in v["metrics"] for v in variants)}  # fmt: skip


def fit_mixture(
    mixtures: list[dict[str, float]], variants: list[dict[str, Any]], natural: dict[str, float], metric: str,
    concentration: float, seed: int,
) -> tuple[dict[str, Any], np.ndarray, np.ndarray]:  # fmt: skip
    """Regress the proxies' metric on their mixture weights (ridge, alpha by leave-one-out) and predict
    the best mixture; returns the result, the measured values and their leave-one-out predictions."""
    domains = sorted(natural)
    x, y = design(mixtures, domains), np.array([v["metrics"][metric] for v in variants])
    maximize = not lower_is_better(metric)
    alpha = choose_alpha(x, y)
    coef = fit_ridge(x, y, alpha)
    loo = leave_one_out(x, y, alpha)
    best, predicted = best_mixture(coef, domains, natural, concentration, seed, maximize)
    observed_best = int(np.argmax(y) if maximize else np.argmin(y))
    result = {
        "metric": metric, "maximize": maximize,
        "natural_mixture": natural, "predicted_best_mixture": best, "predicted_metric": predicted,
        "loo_spearman": spearman(loo, y), "ridge_alpha": alpha,
        "coefficients": dict(zip(["intercept", *domains], coef.tolist(), strict=True)),
        "best_proxy": {"label": variants[observed_best]["label"], "mixture": mixtures[observed_best],
                       metric: float(y[observed_best])},
        "proxies": [{"label": v["label"], "run_id": v["run_id"], "mixture": m, metric: v["metrics"][metric],
                     "loo_prediction": float(p)} for v, m, p in zip(variants, mixtures, loo, strict=True)],
    }  # fmt: skip
    return result, y, loo


def _scatter(measured: np.ndarray, predicted: np.ndarray, metric: str, path: Path) -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(4.5, 4))
    ax.scatter(measured, predicted)
    lo, hi = float(min(measured.min(), predicted.min())), float(max(measured.max(), predicted.max()))
    ax.plot([lo, hi], [lo, hi], color="grey", linewidth=0.8)
    ax.set_xlabel(f"measured {metric}")
    ax.set_ylabel("leave-one-out prediction")
    save_figure(fig, path)


def mixture_report(exp_id: str, r: dict[str, Any], keys: list[str]) -> str:
    metric = r["metric"]
    target = (f"on {r['target_docs']} held-out `{r['target_domain']}` documents" if r.get("target_docs")
              else "on the yardstick")  # fmt: skip
    parts = [
        f"# Mixture search {exp_id} (over {r.get('over', 'domains')})",
        "",
        f"Target: {metric} ({'higher' if r['maximize'] else 'lower'} is better) {target}. Regression fit: "
        f"leave-one-out Spearman {r['loo_spearman']:.3f}.",
        "",
    ]
    parts.append(
        markdown_table(
            ["mixture", *keys, metric],
            [
                ["natural", *[r["natural_mixture"][k] for k in keys], ""],
                ["**predicted best**", *[r["predicted_best_mixture"][k] for k in keys], r["predicted_metric"]],
            ]
            + [[p["label"], *[p["mixture"][k] for k in keys], p[metric]] for p in r["proxies"]],
        )
    )
    if r.get("languages"):
        parts += ["", "Each language's yardstick bits per byte, regressed on the same mixtures: predicted at the "
                  "natural and at the predicted best mixture (*not distinguishable* within 1.96 x sqrt(2) x the "
                  "regression's leave-one-out error).", "",
                  markdown_table(["language", "natural", "predicted best", "change", "leave-one-out error", "verdict"],
                                 [[lang, v["natural"], v["best"], v["change"], v["loo_rmse"], v["verdict"]]
                                  for lang, v in r["languages"].items()])]  # fmt: skip
    parts += ["", "![predicted vs measured](predicted_vs_measured.png)", ""]
    return "\n".join(parts) + "\n"  # fmt: skip


# --- ablation ---------------------------------------------------------------------------------


@flow(name="crawl2model-experiment-ablate", log_prints=True)
def ablation_experiment(
    configs: list[dict[str, Any]], settings: list[dict[str, str]], workdir: str, experiment_id: str | None = None
) -> dict[str, Any]:
    """The whole pipeline once per setting (equal model and token budget); caches reused by fingerprint."""
    params = {"settings": settings, "experiment_id": experiment_id}

    def body(exp_id: str, out: Path, catalog: Catalog) -> tuple[dict, str]:
        variants = []
        for i, (config, setting) in enumerate(zip(configs, settings, strict=True)):
            label = f"{exp_id}-" + ",".join(f"{k}={v}" for k, v in setting.items())
            variants.append(
                run_variant.with_options(task_run_name=f"variant-{i}")(config, workdir, list(STAGES), label)
            )
        rows = []
        for v, setting in zip(variants, settings, strict=True):
            ran = [s["stage"] for s in v["summary"] if not s["cache_hit"]]
            funnel = {s["stage"]: s.get("docs_out") for s in v["summary"] if s.get("docs_out") is not None}
            measured = {k: v["metrics"][k] for k in ABLATION_METRICS if k in v["metrics"]}
            rows.append({"setting": setting, "run_id": v["run_id"], "ran": ran, "funnel": funnel, "metrics": measured})
        _record(catalog, exp_id, variants, settings)
        _ablation_plot(rows, out / "ablation.png")
        return {"variants": rows}, ablation_report(exp_id, rows)

    return _experiment("ablate", workdir, params, body)


ABLATION_METRICS = ("val_bits_per_byte", "val_loss", "task.cloze.acc", "task.last_word.acc", "train_tokens", "params")


def _ablation_plot(rows: list[dict], path: Path) -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5, 3.5))
    labels = [",".join(f"{v}" for v in r["setting"].values()) for r in rows]
    ax.plot(labels, [r["metrics"].get("val_bits_per_byte") for r in rows], marker="o")
    ax.set_xlabel(", ".join(rows[0]["setting"]))
    ax.set_ylabel("validation bits per byte")
    save_figure(fig, path)


def ablation_report(exp_id: str, rows: list[dict]) -> str:
    stages = [s for s in STAGES if any(s in r["funnel"] for r in rows)]
    parts = [f"# Ablation {exp_id}", "", "Same model and training steps for every setting.", ""]
    parts.append(
        markdown_table(
            ["setting", "stages run (rest cached)", *ABLATION_METRICS[:4]],
            [
                [
                    json.dumps(r["setting"]),
                    " ".join(r["ran"]) or "none",
                    *[r["metrics"].get(k) for k in ABLATION_METRICS[:4]],
                ]
                for r in rows
            ],
        )
    )
    parts += ["", "### Data funnel (documents kept after each stage)", ""]
    parts.append(
        markdown_table(
            ["setting", *stages], [[json.dumps(r["setting"]), *[r["funnel"].get(s) for s in stages]] for r in rows]
        )
    )
    parts += ["", "![ablation](ablation.png)", ""]
    return "\n".join(parts) + "\n"  # fmt: skip


# --- scaling ladder ---------------------------------------------------------------------------


@flow(name="crawl2model-experiment-scaling", log_prints=True)
def scaling_experiment(
    configs: list[dict[str, Any]], sizes: list[str], workdir: str, predict_flops: float | None = None,
    experiment_id: str | None = None,
) -> dict[str, Any]:  # fmt: skip
    """Train a ladder of model sizes on the same data; fit loss = a C^-b + e; predict a larger budget."""
    params = {"sizes": sizes, "predict_flops": predict_flops, "experiment_id": experiment_id}

    def body(exp_id: str, out: Path, catalog: Catalog) -> tuple[dict, str]:
        variants = [run_variant.with_options(task_run_name=f"size-{size}")(config, workdir, list(STAGES),
                                                                           f"{exp_id}-{size}")
                    for config, size in zip(configs, sizes, strict=True)]  # fmt: skip
        compute = [v["metrics"]["compute_flops"] for v in variants]
        loss = [v["metrics"]["val_loss"] for v in variants]
        fit = fit_power_law(compute, loss)
        target = predict_flops or 10 * max(compute)
        result = {"sizes": [{"size": s, "run_id": v["run_id"], "params": v["metrics"]["params"],
                             "compute_flops": c, "val_loss": lo} for s, v, c, lo in zip(sizes, variants, compute, loss,
                                                                                        strict=True)],
                  "fit": fit, "predict_flops": target, "predicted_val_loss": power_law(fit, target)}  # fmt: skip
        _record(catalog, exp_id, variants, [{"size": s} for s in sizes])
        _scaling_plot(compute, loss, fit, target, out / "scaling.png")
        return result, scaling_report(exp_id, result)

    return _experiment("scaling", workdir, params, body)


def _scaling_plot(compute: list[float], loss: list[float], fit: dict, target: float, path: Path) -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.scatter(compute, loss, label="measured")
    grid = np.geomspace(min(compute), target, 50)
    ax.plot(grid, [power_law(fit, c) for c in grid], label="fit")
    ax.set_xscale("log")
    ax.set_xlabel("training compute (FLOPs, 6ND)")
    ax.set_ylabel("validation loss")
    ax.legend()
    save_figure(fig, path)


def scaling_report(exp_id: str, r: dict[str, Any]) -> str:
    f = r["fit"]
    parts = [
        f"# Scaling ladder {exp_id}",
        "",
        f"Fit: loss = {f['a']:.4g} * C^-{f['b']:.4f} + {f['e']:.4g} (R^2 {f['r2']:.4f}). Predicted validation "
        f"loss at {r['predict_flops']:.3g} FLOPs: **{r['predicted_val_loss']:.4f}**.",
        "",
    ]
    parts.append(
        markdown_table(
            ["size", "params", "compute (FLOPs)", "val loss"],
            [[s["size"], s["params"], f"{s['compute_flops']:.3g}", s["val_loss"]] for s in r["sizes"]],
        )
    )
    parts += ["", "![scaling](scaling.png)", ""]
    return "\n".join(parts) + "\n"  # fmt: skip


# --- curation recipes -------------------------------------------------------------------------


@flow(name="crawl2model-experiment-recipes", log_prints=True)
def recipes_experiment(
    configs: dict[str, list[dict[str, Any]]], workdir: str, experiment_id: str | None = None
) -> dict[str, Any]:
    """Each recipe trained once per seed at equal compute (the same model and tokens seen), scored on
    the one yardstick; every recipe against the first, paired over documents, items and seeds."""
    params = {"recipes": list(configs), "seeds": len(next(iter(configs.values()))), "experiment_id": experiment_id}

    def body(exp_id: str, out: Path, catalog: Catalog) -> tuple[dict, str]:
        root = Path(workdir).resolve()
        runs: dict[str, list[dict[str, Any]]] = {}
        for name, seeds in configs.items():
            runs[name] = [
                run_variant.with_options(task_run_name=f"{name}-seed-{i}")(
                    config, workdir, list(STAGES), f"{exp_id}-{name}-seed{i}"
                )
                for i, config in enumerate(seeds)
            ]
        scores = {name: scores_of(configs[name], root) for name in configs}
        train_docs = {name: training_documents(runs[name][0]["summary"]) for name in runs}
        result = recipes_result(scores, runs, train_docs)
        _record(catalog, exp_id, [v for name in configs for v in runs[name]],
                [recipe_setting(name, c) for name in configs for c in configs[name]])  # fmt: skip
        _recipes_plot(result, out / "recipes.png")
        return result, recipes_report(exp_id, result)

    return _experiment("recipes", workdir, params, body)


def _recipes_plot(result: dict[str, Any], path: Path) -> None:
    """Left: each recipe's yardstick bits per byte; right: its paired delta to the baseline (the
    verdict's interval, narrower than the two intervals on the left suggest: documents are shared)."""
    plt = pyplot()
    names = list(result["recipes"])
    values = [result["recipes"][n][HEADLINE]["value"] for n in names]
    cis = [result["recipes"][n][HEADLINE]["ci"] or [v, v] for n, v in zip(names, values, strict=True)]
    deltas = [c for c in result["comparisons"] if c["metric"] == HEADLINE]
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.5))
    _errorbars(left, names, values, cis)
    left.set_ylabel("yardstick bits per byte (95% interval)")
    _errorbars(right, [c["recipe"] for c in deltas], [c["delta"] for c in deltas],
               [c["ci"] or [c["delta"]] * 2 for c in deltas])  # fmt: skip
    right.axhline(0.0, color="grey", linewidth=0.8)
    right.set_ylabel(f"paired delta vs {result['baseline']} (lower is better)")
    fig.tight_layout()
    save_figure(fig, path)


def _errorbars(ax, labels: list[str], values: list[float], cis: list[list[float]]) -> None:
    below = [v - c[0] for v, c in zip(values, cis, strict=True)]
    above = [c[1] - v for v, c in zip(values, cis, strict=True)]
    ax.errorbar(labels, values, yerr=[below, above], fmt="o", capsize=4)


def experiment_table(catalog: Catalog, experiment_id: str) -> tuple[list[str], list[tuple]]:
    """One row per run of an experiment, one column per metric (for `crawl2model compare --experiment`)."""
    cols, rows = catalog.query(
        "select label, run_id, setting_json, metric, value from experiment_runs where experiment_id = ? "
        "order by label, metric",
        [experiment_id],
    )
    if not rows:
        raise NotFound(f"no runs recorded for experiment {experiment_id!r}")
    metrics = sorted({r[3] for r in rows})
    by_run: dict[str, dict[str, Any]] = {}
    for label, run_id, setting, metric, value in rows:
        by_run.setdefault(run_id, {"label": label, "setting": setting})[metric] = value
    header = ["label", "run_id", "setting", *metrics]
    return header, [tuple([v["label"], rid, v["setting"], *[v.get(m) for m in metrics]]) for rid, v in by_run.items()]


def resolve_experiment(catalog: Catalog, ref: str) -> str:
    """An experiment id, a unique prefix of one, or `latest`."""
    _, rows = catalog.query("select experiment_id from experiments order by started_at desc")
    ids = [r[0] for r in rows]
    if ref == "latest" and ids:
        return ids[0]
    matches = [i for i in ids if i.startswith(ref)]
    if len(matches) != 1:
        raise NotFound(f"{ref!r} matches {len(matches)} experiments" + (f": {matches[:5]}" if matches else ""))
    return matches[0]
