"""The run report: data funnel, planted-case scores, mixture, evaluation tables, training curves.

Written as Markdown and as a standalone HTML page; the Markdown is also published to Prefect.
"""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import Any

from model.intervals import fmt_ci
from tasks.evaluate.chat_report import chat_section
from tasks.figures import markdown_table, pyplot, save_figure


def training_curves_png(metrics: list[dict[str, Any]], path: Path) -> None:
    plt = pyplot()

    def series(name: str) -> tuple[list[int], list[float]]:
        points = sorted((m["step"], m["value"]) for m in metrics if m["name"] == name and m.get("step") is not None)
        return [p[0] for p in points], [p[1] for p in points]

    fig, (loss_ax, lr_ax) = plt.subplots(1, 2, figsize=(10, 3.6), dpi=100)
    loss_ax.plot(*series("train_loss"), linewidth=1.0, label="train")
    if series("val_loss")[0]:
        loss_ax.plot(*series("val_loss"), marker="o", linewidth=1.2, label="validation")
    loss_ax.legend()
    loss_ax.set(xlabel="step", ylabel="loss (nats/token)", title="Training and validation loss")
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


def render_report(r: dict[str, Any]) -> str:
    """The run report from evaluate's results: what the run is, then data, then model."""
    parts = ["# crawl2model run report", ""]
    parts += _about_section(r["about"], r["yardstick"])
    parts += ["", "## Data funnel", ""]
    parts.append(markdown_table(
        ["stage", "docs in", "kept", "removed", "tokens kept", "top removal reasons"],
        [[f["stage"], f["docs_in"], f["docs_out"], f["docs_removed"], _tokens_cell(f),
          ", ".join(f"{rule} ({n})" for rule, n in r["reasons"].get(f["stage"], [])[:4])] for f in r["funnel"]],
    ))  # fmt: skip
    parts += ["", "Tokens are estimated (UTF-8 bytes / bytes per token of the held-out split, in every script) "
              "before tokenize and exact from tokenize on (`token_counts` in the catalog)."]  # fmt: skip
    if r["quality_measures"]:
        parts += ["", markdown_table(["measured quality", "value"], [[k, v] for k, v in r["quality_measures"].items()])]
    if r.get("judge_confusion"):
        parts += ["", "The quality classifier against the LLM judge on held-out annotations:", ""]
        parts.append(markdown_table(["judge score", "classifier: drop", "classifier: keep"],
                                    [[score, *row] for score, row in enumerate(r["judge_confusion"])]))  # fmt: skip
    if r.get("judge_curve"):
        parts += ["", "How many annotations the classifier needed: F1 against the judge on the same held-out "
                  "annotations, trained on part of them (95% interval).", ""]  # fmt: skip
        parts.append(markdown_table(["annotations", "F1 [95% interval]"],
                                    [[c["annotations"], f"{c['f1']:.3f} [{c['ci'][0]:.3f}, {c['ci'][1]:.3f}]"]
                                     for c in r["judge_curve"]]))  # fmt: skip
    if len(r["languages"]["languages"]) > 1:
        parts += _languages_section(r["languages"])
    if r["planted"]:
        parts += _planted_section(r["planted"], r["pii"], r["planted_split"])
    parts += _examples_section(r["removed_examples"], r["kept_examples"])
    if r["dedup_quality"]:
        parts += _dedup_section(r["dedup_quality"])
    if r["mixture"]:
        parts += _mixture_section(r["mixture"])
    if r.get("language_mixture"):
        parts += _language_mixture_section(r["language_mixture"])
    if len(r.get("fertility") or {}) > 1:
        parts += _fertility_section(r["fertility"])
    parts += _yardstick_section(r["yardstick"])
    parts += _evaluation_section(r["evals"], r["domains"], r["tasks"])
    parts += _training_section(r["training"], r["tokens_seen"])
    if r.get("chat"):
        parts += chat_section(r["chat"])
    parts += ["", "## Sample generations", ""]
    parts += [f"- **{g['prompt']}** {g['completion'].strip()}" for g in r["generations"]]
    return "\n".join(parts) + "\n"


def _languages_section(funnel: dict[str, Any], shown: int = 8) -> list[str]:
    """Documents in per language at each stage, and each rule's removals as a share of them."""
    langs = funnel["languages"][:shown]
    rows = []
    for stage in funnel["stages"]:
        rows.append([f"**{stage['stage']}** in", *[stage["in"].get(lang, "") for lang in langs]])
        for rule, by_lang in sorted(stage["removed"].items()):
            cells = [f"{by_lang[lang]} ({by_lang[lang] / stage['in'][lang]:.0%})" if by_lang.get(lang) else ""
                     for lang in langs]  # fmt: skip
            rows.append([f"{stage['stage']}: {rule}", *cells])
    intro = (f"Documents in, and removed by each rule (share of that language's documents in the stage); the "
             f"{len(langs)} largest languages; `none`: pages removed before language id (not HTML, not 200, "
             "empty).")  # fmt: skip
    parts = ["", "## Per language", "", intro, "", markdown_table(["", *langs], rows)]
    parts += ["", *[f"> flag: {f}" for f in funnel["flags"]]] if funnel["flags"] else []
    return parts


def _tokens_cell(f: dict[str, Any]) -> str:
    if f.get("est_tokens_out") is None:
        return ""
    return f"{f['est_tokens_out']:,}" + ("" if f["stage"] == "tokenize" else " (est.)")


def _about_section(about: dict[str, Any], yardstick: dict[str, Any]) -> list[str]:
    changes = about.get("config_changes") or {}
    rows = [
        ["run", about.get("run_id")],
        ["date", about.get("date")],
        ["crawl2model", about.get("crawl2model")],
        ["git revision", about.get("git_revision") or "not a git checkout"],
        ["yardstick", (yardstick.get("fingerprint") or "")[:16]],
        ["config", "the defaults" if not changes else f"{len(changes)} settings differ from the defaults"],
    ]
    parts = ["## About this run", "", markdown_table(["", ""], rows)]  # fmt: skip
    if changes:
        parts += ["", markdown_table(["setting", "value"], [[k, json.dumps(v)] for k, v in sorted(changes.items())])]
    return parts


def _yardstick_section(y: dict[str, Any]) -> list[str]:
    if not y.get("bits_per_byte"):
        return []
    b = y["bits_per_byte"]
    parts = ["", "## Yardstick: bits per byte on pinned documents (the headline)", "",
             f"**{fmt_ci(b['value'], b['ci'])}** on {b['docs']} documents pinned at the extract boundary (95% "
             f"bootstrap interval over documents). The same text for every filter, dedup, mix and tokenize setting; "
             f"fingerprint `{y['fingerprint'][:16]}`: runs compare on it when the fingerprints match.", ""]  # fmt: skip
    parts.append(
        markdown_table(
            ["domain", "docs", "bits per byte [95% interval]"],
            [[d, v["docs"], fmt_ci(v["value"], v["ci"])] for d, v in y["domains"].items()],
        )
    )
    if languages := y.get("languages"):
        parts += ["", "Per language (bits per byte is comparable across tokenizers; across languages it also "
                  "measures how much information a language packs per byte):", ""]  # fmt: skip
        parts.append(
            markdown_table(
                ["language", "docs", "bits per byte [95% interval]"],
                [[lang, v["docs"], fmt_ci(v["value"], v["ci"])] for lang, v in languages.items()],
            )
        )
    return parts


def _examples_section(removed: list[dict[str, Any]], kept: list[dict[str, Any]]) -> list[str]:
    parts = ["", "## Examples", "", "Removed, for the top rules of each stage (truncated):", ""]
    parts += [f"- `{e['stage']}:{e['rule']}` {e['url']}: {html_text(e['text'])}" for e in removed]
    parts += ["", "Kept (reached the mix):", ""]
    parts += [f"- {e['url']}: {html_text(e['text'])}" for e in kept]
    return parts


def html_text(text: str) -> str:
    """Document text inside Markdown: no markup of its own survives."""
    import html

    return html.escape(text).replace("|", "&#124;").replace("*", "&#42;").replace("_", "&#95;").replace("`", "&#96;")


def _training_section(training: dict[str, Any], seen: dict[str, Any]) -> list[str]:
    parts = ["", "## Training", "", markdown_table(["", ""], [[k, v] for k, v in training.items()])]
    if seen:
        parts += ["", f"Tokens seen: {seen['tokens_seen']:,} over {seen['train_tokens']:,} training tokens: "
                  f"{seen['epochs']:.2f} epochs of the token stream. Per domain (epochs over unique documents, "
                  "mix's repeats included):", ""]  # fmt: skip
        parts.append(markdown_table(["domain", "unique tokens", "tokens seen", "epochs"],
                                    [[d, v["unique_tokens"], v["tokens_seen"], round(v["epochs"], 2)]
                                     for d, v in seen["domains"].items()]))  # fmt: skip
    parts += ["", "![training curves](loss_curve.png)"]
    return parts


def _planted_section(planted: dict[str, dict[str, Any]], pii: dict[str, Any], split: dict[str, dict[str, int]]
                     ) -> list[str]:  # fmt: skip
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
    if split:
        parts += ["", "Removals of planted bad pages and of pages planted as nothing (collateral damage, or real "
                  "problems of the source text):", ""]  # fmt: skip
        parts.append(
            markdown_table(
                ["stage:rule", "planted", "not planted"],
                [[k, v["planted"], v["not_planted"]] for k, v in split.items()],
            )
        )
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
    if languages := q.get("languages"):
        parts += ["", "Per language (generated documents in each, shingled as the language is):", ""]
        parts.append(markdown_table(["language", "docs", "pairs with Jaccard >= 0.8", "recall", "removed", "precision"],
                                    [[lang, v["docs"], v["pairs_ge_0.8"], v["recall_ge_0.8"], v["removed"],
                                      v["precision"]] for lang, v in languages.items()]))  # fmt: skip
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


def _language_mixture_section(languages: dict[str, Any]) -> list[str]:
    intro = ("Tokens per language (mix.languages): the target share, what each got, and epochs over its own "
             "tokens; *fresh equivalent* is what those tokens are worth as new data (Muennighoff et al. 2023: "
             "repeats lose value, about 4 epochs are worth nearly as much as fresh tokens).")  # fmt: skip
    rows = [[lang, m["docs_before"], m["tokens_before"], m["share_before"], m["target_share"], m["tokens_after"],
             m["share_after"], f"{m['epochs']:.2f}", m["fresh_equivalent"]]
            for lang, m in languages.items()]  # fmt: skip
    return ["", "### Languages", "", intro, "",
            markdown_table(["language", "docs", "tokens before", "share before", "target share", "tokens after",
                            "share after", "epochs", "fresh equivalent"], rows)]  # fmt: skip


def _fertility_section(fertility: dict[str, Any]) -> list[str]:
    intro = ("What the tokenizer costs each language (up to 200 documents each): tokens per word, words as the "
             "language's segmenter counts them, against English's; and UTF-8 bytes per token.")  # fmt: skip
    rows = [[lang, f["docs"], f"{f['tokens_per_word']:.2f}", f"{f['vs_english']:.2f}x" if "vs_english" in f else "",
             f"{f['bytes_per_token']:.2f}"] for lang, f in fertility.items()]  # fmt: skip
    return [
        "",
        "### Tokenizer fertility",
        "",
        intro,
        "",
        markdown_table(["language", "docs", "tokens per word", "vs English", "bytes per token"], rows),
    ]


def _evaluation_section(
    evals: dict[str, Any], domains: dict[str, dict[str, float]], tasks: dict[str, dict[str, Any]]
) -> list[str]:
    parts: list[str] = []
    parts += ["", "## Evaluation on the in-distribution held-out split", "",
              "Drawn from what survived this run's curation, so it differs between runs: compare runs on the "
              "yardstick above.", ""]  # fmt: skip
    rows = [[k, fmt_ci(v, evals.get(f"{k}_ci")) if isinstance(v, float) else v] for k, v in evals.items()
            if not k.endswith("_ci")]  # fmt: skip
    parts.append(markdown_table(["metric", "value [95% interval]"], rows))
    if domains:
        parts += ["", "### Per domain (held-out documents)", ""]
        parts.append(markdown_table(["domain", "docs", "tokens", "loss [95%]", "bits per byte [95%]"],
                                    [[d, v["docs"], v["tokens"], fmt_ci(v["loss"], v.get("loss_ci")),
                                      fmt_ci(v["bits_per_byte"], v.get("bits_per_byte_ci"))]
                                     for d, v in domains.items()]))  # fmt: skip
    if tasks:
        parts += ["", "### Tasks", ""] + task_table_lines(tasks)
    return parts


def task_table_lines(tasks: dict[str, dict[str, Any]]) -> list[str]:
    """The task table (the report's and `crawl2model evaluate`'s): accuracies with intervals, baselines,
    flags, the share of items cut to the window and of items found in the training documents."""
    named = lambda t, v: f"{t} ({v['language']})" if v.get("language") else t  # noqa: E731
    rows = [[named(t, v), v["n"], _acc_cell(v, "acc"), _acc_cell(v, "acc_norm"), _stated_cell(v), _baseline_cell(v),
             v.get("p_correct"), v.get("word_perplexity"), _share(v.get("truncated")),
             _share((v.get("contamination") or {}).get("share")),
             "; ".join(v[k] for k in ("acc_constant", "acc_norm_constant", "flag_better_formulation") if k in v)]
            for t, v in tasks.items() if t != "core_centered"]  # fmt: skip
    lines = ["95% intervals over items; *not above baseline* when the interval reaches the better of chance and "
             "the majority answer. Built-in tasks are made from the yardstick's documents.", "",
             markdown_table(["task", "items", "acc", "acc_norm", "stated (normalisation)", "chance / majority",
                             "p(correct)", "word perplexity",
                             "context cut", "in training data", "flags"], rows)]  # fmt: skip
    split = {t: v["languages"] for t, v in tasks.items() if v.get("languages")}
    if split:
        langs = sorted({lang for by in split.values() for lang in by})
        rows = [[lang, *[_split_cell(by.get(lang)) for by in split.values()]] for lang in langs]
        lines += ["", "Built-in tasks per language of the pinned document each item comes from (acc [95%], items):",
                  "", markdown_table(["language", *split], rows)]  # fmt: skip
    if core := tasks.get("core_centered"):
        value = fmt_ci(core["acc"], core.get("acc_ci"))
        lines += ["", "CORE-style centered accuracy over the configured benchmarks (0 at the baseline, 1 perfect; "
                  f"baselines: {core.get('baselines', '1/choices')}): {value}."]  # fmt: skip
    return lines


def _split_cell(v: dict[str, Any] | None) -> str:
    return f"{fmt_ci(v['acc'], v['acc_ci'], 3)} ({v['n']})" if v else ""


def _baseline_cell(v: dict[str, Any]) -> str:
    if v.get("chance") is None:
        return ""
    chance = f"{v['chance']:.3g}" + (f" ({v['chance_rule']})" if "chance_rule" in v else "")
    return chance + (f" / {v['majority']:.3g}" if "majority" in v else "")


def _share(value: float | None) -> str:
    return "" if value is None else f"{value:.1%}"


def _stated_cell(v: dict[str, Any]) -> str:
    """The accuracy a benchmark's `normalization` states, and which normalisation it is."""
    return f"{_acc_cell(v, v['stated'])} ({v['normalization']})" if v.get("stated") else ""


def _acc_cell(v: dict[str, Any], key: str) -> str:
    if key not in v:
        return ""
    return fmt_ci(v[key], v.get(f"{key}_ci"), 3) + (" *not above baseline*" if v.get(f"{key}_at_chance") else "")


def render_html(markdown_text: str, title: str, images: Path | None = None) -> str:
    """One self-contained page: the figures in `images` embedded as data URIs."""
    import html

    import markdown

    body = markdown.markdown(markdown_text, extensions=["tables"])
    if images is not None:
        body = re.sub(r'src="([\w.-]+\.png)"', lambda m: f'src="{_data_uri(images / m.group(1))}"', body)
    style = ("body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}"
             "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;"
             "text-align:left}th{background:#f3f3f3}img{max-width:100%}")  # fmt: skip
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{style}</style></head><body>{body}</body></html>\n")  # fmt: skip


def _data_uri(path: Path) -> str:
    if not path.exists():
        return path.name
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode()
