"""The run report: Markdown with the data funnel, planted-case scores, eval table and loss curve."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def loss_curve_png(history: list[tuple[int, float]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    steps, losses = zip(*history, strict=True) if history else ((), ())
    ax.plot(steps, losses, linewidth=1.2)
    ax.set_xlabel("step")
    ax.set_ylabel("train loss (nats/token)")
    ax.set_title("Training loss")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, metadata={"Software": None})  # no timestamp: the same run writes the same bytes
    plt.close(fig)
    tmp.replace(path)


def markdown_table(headers: list[str], rows: list[list[Any]]) -> str:
    def fmt(v: Any) -> str:
        return f"{v:.4g}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def render_report(
    funnel: list[dict[str, Any]],
    top_reasons: dict[str, list[tuple[str, int]]],
    planted: dict[str, dict[str, Any]],
    evals: dict[str, float],
    mixture: dict[str, Any],
    generations: list[dict[str, str]],
    pii: dict[str, int],
) -> str:
    parts = ["# crawl2model run report", "", "## Data funnel", ""]
    parts.append(
        markdown_table(
            ["stage", "docs in", "kept", "removed", "top removal reasons"],
            [
                [
                    f["stage"],
                    f["docs_in"],
                    f["docs_out"],
                    f["docs_removed"],
                    ", ".join(f"{r} ({n})" for r, n in top_reasons.get(f["stage"], [])[:4]),
                ]
                for f in funnel
            ],
        )
    )
    if planted:
        parts += ["", "## Planted cases (sample ground truth)", ""]
        parts.append(
            markdown_table(
                ["case", "planted", "removed at the stage meant for it", "rate", "removed elsewhere", "kept"],
                [
                    [c, s["n"], s["at_expected_stage"], s["rate"], s["elsewhere"] or "", s["kept"]]
                    for c, s in sorted(planted.items())
                ],
            )
        )
        parts.append("")
        parts.append(
            f"PII pages planted: {pii.get('pii_strings', 0) // 3}, of which "
            f"{pii.get('pii_pages_kept', 0)} reached the token shards (redacted); PII strings planted: "
            f"{pii.get('pii_strings', 0)}; found in the token shards: {pii.get('pii_strings_leaked', 0)}."
        )
    if mixture:
        parts += ["", "## Mixture", ""]
        parts.append(
            markdown_table(
                ["domain", "docs before", "share before", "docs after", "share after", "copies/doc"],
                [
                    [d, m["docs_before"], m["share_before"], m["docs_after"], m["share_after"], m["rate"]]
                    for d, m in sorted(mixture.items())
                ],
            )
        )
    parts += ["", "## Evaluation (held-out split)", ""]
    parts.append(markdown_table(["metric", "value"], [[k, v] for k, v in evals.items()]))
    parts += ["", "![loss curve](loss_curve.png)", "", "## Sample generations", ""]
    for g in generations:
        parts.append(f"- **{g['prompt']}** {g['completion'].strip()}")
    return "\n".join(parts) + "\n"
