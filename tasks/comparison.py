"""Paired comparisons of evaluated runs: B relative to A on the same yardstick documents and the same
benchmark items, with 95% intervals and verdicts. `crawl2model compare` and the recipes experiment
use this one code path; several runs per side are seeds of one variant.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from model.intervals import Units, fmt_ci, interval, paired_delta
from storage.shards import read_json
from tasks.figures import markdown_table

HEADLINE = "yardstick_bits_per_byte"


@dataclass
class Scores:
    """One evaluated run: per-document yardstick costs, per-item results, and their fingerprints."""

    yardstick: str
    docs: dict[str, tuple[str, float, float, str | None]]  # doc_id -> (domain, nll bits, bytes, language)
    items: dict[tuple[str, str], dict[str, float]]  # (task, item_id) -> {"acc", "acc_norm"}
    items_fingerprint: dict[str, str]
    chance: dict[str, float]

    @classmethod
    def load(cls, evaluate_dir: str | Path) -> Scores:
        out = Path(evaluate_dir)
        ev = read_json(out / "eval.json")
        docs = {r["doc_id"]: (r["domain"], r["nll_bits"], r["n_bytes"], r.get("lang"))
                for r in pq.read_table(out / "yardstick_scores.parquet").to_pylist()}  # fmt: skip
        items = {(r["task"], r["item_id"]): r for r in pq.read_table(out / "item_scores.parquet").to_pylist()}
        tasks = ev.get("tasks", {})
        return cls(ev.get("yardstick", {}).get("fingerprint", ""), docs, items,
                   {t: v.get("items_fingerprint", "") for t, v in tasks.items()},
                   {t: v["chance"] for t, v in tasks.items() if "chance" in v})  # fmt: skip

    def metrics(self) -> list[str]:
        names = [HEADLINE] + [f"yardstick.{d}.bits_per_byte" for d in sorted({v[0] for v in self.docs.values()})]
        languages = sorted({v[3] for v in self.docs.values() if v[3] and not v[0].startswith("reference:")})
        if len(languages) > 1:  # a verdict per language beside the overall one
            names += [f"{LANGUAGE_PREFIX}{lang}.bits_per_byte" for lang in languages]
        for task in sorted({t for t, _ in self.items}):
            names.append(f"task.{task}.acc")
            for key in ("acc_norm", "p_correct", "logprob_norm"):  # the continuous ones rank early (DataDecide)
                if all(v.get(key) is not None for k, v in self.items.items() if k[0] == task):
                    names.append(f"task.{task}.{key}")
        return names


LANGUAGE_PREFIX = "yardstick.language."

# Fewer shared documents or items than this (a small domain of the yardstick, a short task) get no verdict.
MIN_UNITS = 10


def lower_is_better(metric: str) -> bool:
    return metric.endswith(("bits_per_byte", "loss", "perplexity"))


def units(runs: list[Scores], metric: str) -> Units:
    """The metric's per-unit numerators and denominators, one row per run (seed), on the units all share."""
    if metric.startswith("task."):
        _, task, key = metric.split(".")
        keys = sorted(set.intersection(*[{k for k in r.items if k[0] == task} for r in runs]))
        return Units.of([[r.items[k][key] for k in keys] for r in runs])
    if metric.startswith(LANGUAGE_PREFIX):
        lang = metric.removeprefix(LANGUAGE_PREFIX).removesuffix(".bits_per_byte")
        ids = sorted(set.intersection(*[{d for d, v in r.docs.items() if v[3] == lang and _in(v[0], None)}
                                        for r in runs]))  # fmt: skip
        return Units.of([[r.docs[d][1] for d in ids] for r in runs], [[r.docs[d][2] for d in ids] for r in runs])
    domain = None if metric == HEADLINE else metric.removeprefix("yardstick.").removesuffix(".bits_per_byte")
    ids = sorted(set.intersection(*[{d for d, v in r.docs.items() if _in(v[0], domain)} for r in runs]))
    return Units.of([[r.docs[d][1] for d in ids] for r in runs], [[r.docs[d][2] for d in ids] for r in runs])


def _in(doc_domain: str, domain: str | None) -> bool:
    return (domain is None and not doc_domain.startswith("reference:")) or doc_domain == domain


def summarize(runs: list[Scores], metric: str) -> dict[str, Any]:
    """{"value", "ci", "seeds": per-run values} for one variant (its seeds pooled by the bootstrap)."""
    u = units(runs, metric)
    per_seed = [Units(u.num[i : i + 1], u.den[i : i + 1]).value for i in range(len(runs))]
    out = {**interval(u), "seeds": per_seed}
    if len(runs) > 1:
        out["seed_sd"] = float(np.std(per_seed, ddof=1))
    return out


def warnings(a: list[Scores], b: list[Scores]) -> list[str]:
    """Why a comparison would not be like for like: different yardsticks or different items."""
    found = []
    if len({r.yardstick for r in a + b}) > 1:
        found.append("the runs were scored on different yardsticks (the pinned text differs: the extract or "
                     "yardstick settings changed); only the documents they share are compared")  # fmt: skip
    for task in sorted(set(a[0].items_fingerprint) | set(b[0].items_fingerprint)):
        if len({r.items_fingerprint.get(task) for r in a + b}) > 1:
            found.append(f"task {task}: the runs were scored on different items; only shared items are compared")
    return found


def compare(a: list[Scores], b: list[Scores]) -> list[dict[str, Any]]:
    """B relative to A, per metric both have: values, B - A with its paired interval, and the verdict."""
    shared = [m for m in a[0].metrics() if m in set(b[0].metrics())]
    rows = []
    for metric in shared:
        both = units(a + b, metric)  # the units every run of both sides has: a paired comparison
        n = both.num.shape[1]
        if n == 0:
            continue
        ua, ub = Units(both.num[: len(a)], both.den[: len(a)]), Units(both.num[len(a) :], both.den[len(a) :])
        delta = paired_delta(ua, ub, lower_is_better(metric))
        if n < MIN_UNITS:  # a bootstrap over a handful of documents or items says nothing reliable
            delta["verdict"] = f"too few to tell ({n} {'items' if metric.startswith('task.') else 'documents'})"
        chance = _chance(a[0], metric)
        rows.append({"metric": metric, "units": n, "a": interval(ua), "b": interval(ub), **delta,
                     "chance": chance, "lower_is_better": lower_is_better(metric)})  # fmt: skip
    return rows


def _chance(scores: Scores, metric: str) -> float | None:
    return scores.chance.get(metric.split(".")[1]) if metric.startswith("task.") else None


# --- curation recipes: the result of `experiment recipes` -----------------------------------------


def recipes_result(scores: dict[str, list[Scores]], runs: dict[str, list[dict[str, Any]]],
                   train_docs: dict[str, int | None]) -> dict[str, Any]:  # fmt: skip
    """The result.json shape: yardstick, per-recipe metrics with intervals, comparisons to the baseline."""
    names = list(scores)
    baseline = names[0]
    metrics = [m for m in scores[baseline][0].metrics() if all(m in s[0].metrics() for s in scores.values())]
    result: dict[str, Any] = {"yardstick": scores[baseline][0].yardstick, "baseline": baseline,
                              "seeds": len(scores[baseline]), "warnings": [], "recipes": {},
                              "comparisons": []}  # fmt: skip
    for name in names:
        result["recipes"][name] = {m: summarize(scores[name], m) for m in metrics}
        result["recipes"][name]["tokens_seen"] = {"value": runs[name][0]["metrics"]["train_tokens"], "ci": None}
        result["recipes"][name]["train_docs"] = {"value": train_docs[name], "ci": None}
    for name in names[1:]:
        result["warnings"] += [f"{name}: {w}" for w in warnings(scores[baseline], scores[name])]
        for row in compare(scores[baseline], scores[name]):
            keys = {k: row[k] for k in ("metric", "delta", "ci", "verdict")}
            result["comparisons"].append({"recipe": name, "baseline": baseline, **keys})
    if result["seeds"] > 1 and len(names) > 1:
        result["rank_stability"] = {m: rank_stability([result["recipes"][n][m]["seeds"] for n in names])
                                    for m in metrics}  # fmt: skip
    tokens = {n: result["recipes"][n]["tokens_seen"]["value"] for n in names}
    if len(set(tokens.values())) > 1:
        result["warnings"].append(f"unequal compute: tokens seen differ between recipes: {tokens}")
    return result


def rank_stability(per_recipe_seeds: list[list[float]]) -> float:
    """How often two seeds order two recipes the same way, over every pair of recipes and of seeds: 1 when
    every seed ranks the recipes alike, about 0.5 when the metric's order is a coin flip at this scale."""
    values = np.array(per_recipe_seeds)  # recipes x seeds
    agree = []
    for i, j in itertools.combinations(range(len(values)), 2):
        signs = np.sign(values[i] - values[j])
        agree += [float(a == b) for a, b in itertools.combinations(signs, 2)]
    return float(np.mean(agree)) if agree else float("nan")


def recipes_report(exp_id: str, r: dict[str, Any]) -> str:
    names = list(r["recipes"])
    metrics = [m for m in r["recipes"][names[0]] if m not in ("tokens_seen", "train_docs")]
    parts = [f"# Curation recipes {exp_id}", "",
             f"Every recipe trains the same model on the same number of tokens ({r['seeds']} seed(s) each: "
             f"initialisation and data order) and is scored on one yardstick (`{r['yardstick'][:16]}`). Values are "
             "means over seeds with 95% intervals from a bootstrap over documents or items and seeds; deltas are "
             f"recipe - {r['baseline']}, paired.", ""]  # fmt: skip
    parts += [f"> warning: {w}" for w in r["warnings"]]
    rows = [[m, *[fmt_ci(r["recipes"][n][m]["value"], r["recipes"][n][m]["ci"]) for n in names]] for m in metrics]
    rows += [[k, *[r["recipes"][n][k]["value"] for n in names]] for k in ("tokens_seen", "train_docs")]
    rows.append([f"{HEADLINE}, per seed", *[", ".join(f"{v:.4f}" for v in r["recipes"][n][HEADLINE]["seeds"])
                                            for n in names]])  # fmt: skip
    parts += ["", markdown_table(["metric", *names], rows), "", f"### Against {r['baseline']}", ""]
    parts.append(markdown_table(["recipe", "metric", "delta [95%]", "verdict"],
                                [[c["recipe"], c["metric"], fmt_ci(c["delta"], c["ci"]), c["verdict"]]
                                 for c in r["comparisons"]]))  # fmt: skip
    if stability := r.get("rank_stability"):
        parts += ["", "### Which metrics tell the recipes apart at this scale", "",
                  "Rank stability: the share of (pair of recipes, pair of seeds) in which both seeds order the two "
                  "recipes alike; 1 = every seed agrees, 0.5 = a coin flip.", ""]  # fmt: skip
        parts.append(
            markdown_table(
                ["metric", "rank stability"],
                [[m, f"{v:.2f}"] for m, v in sorted(stability.items(), key=lambda kv: -kv[1])],
            )
        )
    parts += ["", "![recipes](recipes.png)", ""]
    return "\n".join(parts) + "\n"
