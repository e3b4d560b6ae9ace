"""The run report: data funnel, planted-case scores, mixture, evaluation tables, training curves.

Written as Markdown and as a standalone HTML page; the Markdown is also published to Prefect.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def pyplot():
    import matplotlib

    matplotlib.use("Agg")  # no display: render to files only
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, metadata={"Software": None})  # no timestamp: the same run writes the same bytes
    pyplot().close(fig)
    tmp.replace(path)


def training_curves_png(metrics: list[dict[str, Any]], path: Path) -> None:
    plt = pyplot()

    def series(name: str) -> tuple[list[int], list[float]]:
        points = sorted((m["step"], m["value"]) for m in metrics if m["name"] == name and m.get("step") is not None)
        return [p[0] for p in points], [p[1] for p in points]

    fig, (loss_ax, lr_ax) = plt.subplots(1, 2, figsize=(10, 3.6), dpi=100)
    loss_ax.plot(*series("train_loss"), linewidth=1.0)
    loss_ax.set(xlabel="step", ylabel="train loss (nats/token)", title="Training loss")
    lr_ax.plot(*series("train_lr"), linewidth=1.2, color="tab:orange")
    lr_ax.set(xlabel="step", ylabel="learning rate", title="Learning rate")
    for ax in (loss_ax, lr_ax):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    save_figure(fig, path)


def mixture_png(mixture: dict[str, Any], path: Path) -> None:
    """Token share per domain before and after mixing, with copies per document on top."""
    plt = pyplot()

    domains = sorted(mixture)
    x = range(len(domains))
    fig, ax = plt.subplots(figsize=(7, 3.6), dpi=100)
    ax.bar([i - 0.2 for i in x], [mixture[d]["share_before"] for d in domains], 0.4, label="before")
    bars = ax.bar([i + 0.2 for i in x], [mixture[d]["share_after"] for d in domains], 0.4, label="after")
    for bar, d in zip(bars, domains, strict=True):
        ax.annotate(f"x{mixture[d]['rate']:.2f}", (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                    ha="center", va="bottom", fontsize=8)  # fmt: skip
    ax.set_xticks(list(x), domains)
    ax.set(ylabel="token share", title="Mixture before and after (copies per document on top)")
    ax.legend()
    fig.tight_layout()
    save_figure(fig, path)


def markdown_table(headers: list[str], rows: list[list[Any]]) -> str:
    def fmt(v: Any) -> str:
        if v is None:
            return ""
        return f"{v:.4g}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def render_report(
    funnel: list[dict[str, Any]],
    top_reasons: dict[str, list[tuple[str, int]]],
    planted: dict[str, dict[str, Any]],
    evals: dict[str, float],
    domains: dict[str, dict[str, float]],
    tasks: dict[str, dict[str, float]],
    mixture: dict[str, Any],
    generations: list[dict[str, str]],
    pii: dict[str, int],
    training: dict[str, Any],
    dedup_quality: dict[str, Any] | None = None,
) -> str:
    parts = ["# crawl2model run report", "", "## Data funnel", ""]
    parts.append(markdown_table(
        ["stage", "docs in", "kept", "removed", "est. tokens kept", "top removal reasons"],
        [[f["stage"], f["docs_in"], f["docs_out"], f["docs_removed"], f.get("est_tokens_out"),
          ", ".join(f"{r} ({n})" for r, n in top_reasons.get(f["stage"], [])[:4])] for f in funnel],
    ))  # fmt: skip
    if planted:
        parts += _planted_section(planted, pii)
    if dedup_quality:
        parts += _dedup_section(dedup_quality)
    if mixture:
        parts += _mixture_section(mixture)
    parts += _evaluation_section(evals, domains, tasks)
    parts += ["", "## Training", ""]
    parts.append(markdown_table(["", ""], [[k, v] for k, v in training.items()]))
    parts += ["", "![training curves](loss_curve.png)", "", "## Sample generations", ""]
    parts += [f"- **{g['prompt']}** {g['completion'].strip()}" for g in generations]
    return "\n".join(parts) + "\n"


def _planted_section(planted: dict[str, dict[str, Any]], pii: dict[str, Any]) -> list[str]:
    parts = ["", "## Planted cases (sample ground truth)", ""]
    parts.append(markdown_table(
        ["case", "planted", "removed at the stage meant for it", "rate", "removed elsewhere", "kept"],
        [[c, s["n"], s["at_expected_stage"], s["rate"], s["elsewhere"] or "", s["kept"]]
         for c, s in sorted(planted.items())],
    ))  # fmt: skip
    parts += ["", f"PII pages planted: {pii.get('pii_pages', 0)}, of which {pii.get('pii_pages_kept', 0)} "
              f"reached the token shards (redacted); PII strings planted: {pii.get('pii_strings', 0)}; found in "
              f"the token shards: {pii.get('pii_strings_leaked', 0)}."]  # fmt: skip
    if "pii_filter_recall" in pii:
        parts += ["", f"Redaction recall on planted PII at the filter stage: {pii['pii_filter_recall']:.3f}. "
                  f"Pages without planted PII that got a replacement: {pii['pii_unplanted_docs_replaced']} "
                  f"({pii['pii_unplanted_docs_rate']:.2%}; emails {pii['pii_unplanted_email']}, phones "
                  f"{pii['pii_unplanted_phone']}, IPs {pii['pii_unplanted_ip']})."]  # fmt: skip
    return parts


def _dedup_section(q: dict[str, Any]) -> list[str]:
    parts = ["", "## Dedup quality (against exact shingle Jaccard)", ""]
    parts += [f"{q['synthetic_docs']} generated near-duplicates went through the same dedup code and settings; "
              f"every pair with Jaccard >= {q['ground_truth_threshold']} was found exactly (prefix filtering). "
              "Measured once per dedup settings and cached in the workdir"
              f"{' (a cache hit for this run)' if q.get('cache') == 'hit' else ''}.", ""]  # fmt: skip
    parts.append(markdown_table(
        ["measure", "value"],
        [["pairs with Jaccard >= 0.8", q["pairs_ge_0.8"]], ["recall on them (same cluster)", q["recall_ge_0.8"]],
         ["documents removed", q["removed"]], ["precision (removal justified by a similar cluster member)",
         q["precision"]], ["LSH candidate probability at Jaccard 0.8", q["lsh_probability_at_0.8"]]]
        + [[f"recall, Jaccard {k}", f"{v['recall']} of {v['pairs']}"] for k, v in q["recall_by_jaccard"].items()],
    ))  # fmt: skip
    return parts


def _mixture_section(mixture: dict[str, Any]) -> list[str]:
    parts = ["", "## Mixture", ""]
    parts.append(markdown_table(
        ["domain", "docs before", "share before", "docs after", "share after", "copies/doc"],
        [[d, m["docs_before"], m["share_before"], m["docs_after"], m["share_after"], m["rate"]]
         for d, m in sorted(mixture.items())],
    ))  # fmt: skip
    parts += ["", "![mixture](mixture.png)"]
    return parts


def _evaluation_section(
    evals: dict[str, float], domains: dict[str, dict[str, float]], tasks: dict[str, dict[str, float]]
) -> list[str]:
    parts: list[str] = []
    parts += ["", "## Evaluation (held-out split)", ""]
    parts.append(markdown_table(["metric", "value"], [[k, v] for k, v in evals.items()]))
    if domains:
        parts += ["", "### Per domain (held-out documents)", ""]
        parts.append(markdown_table(["domain", "docs", "tokens", "loss", "bits per byte"],
                                    [[d, v["docs"], v["tokens"], v["loss"], v["bits_per_byte"]]
                                     for d, v in domains.items()]))  # fmt: skip
    if tasks:
        parts += ["", "### Tasks", ""]
        parts.append(markdown_table(["task", "items", "acc", "acc_norm", "chance", "word perplexity"],
                                    [[t, v["n"], v.get("acc"), v.get("acc_norm"), v.get("chance"),
                                      v.get("word_perplexity")] for t, v in tasks.items()]))  # fmt: skip
    return parts


def render_html(markdown_text: str, title: str) -> str:
    import html

    import markdown

    body = markdown.markdown(markdown_text, extensions=["tables"])
    style = ("body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}"
             "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;"
             "text-align:left}th{background:#f3f3f3}img{max-width:100%}")  # fmt: skip
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{style}</style></head><body>{body}</body></html>\n")  # fmt: skip
