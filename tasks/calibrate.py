"""`crawl2model calibrate`: the Gopher thresholds for each language of your crawl, derived, not guessed.

Method (quantile transfer). For every threshold the English default sets (`min_mean_word_length: 3`,
`max_top_2gram_char_ratio: 0.2`, ...), measure the share q of English documents it removes; the
language's threshold is the value that removes the same share q of that language's documents: its
q-quantile for a lower limit, its (1 - q)-quantile for an upper one. A statistic the English default
removes almost nothing of (q < 0.5%) keeps its default: there is no share to transfer. Each language
is compared like with like: its reference file against English's when you give them
(`--reference ja=jawiki.jsonl`, `--reference en=enwiki.jsonl`, text/JSONL/Parquet), else its pages in
the crawl (extract's output) against the crawl's English pages (or, with too few of those, the
built-in English reference text). Word statistics use each language's segmenter.

The output is a config file to review (`filter.per_language`) and a figure of each language's
distributions with its thresholds.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from storage.errors import UserError
from tasks.filter.rules import TextRule
from tasks.filter.rules.gopher import GopherQuality, GopherQualityConfig, GopherRepetition, GopherRepetitionConfig

MIN_SHARE = 0.005  # below this the English default removes (almost) nothing: nothing to transfer
# Length limits are a corpus policy (how short a page may be), not a property of the language.
POLICY = {"min_words", "max_words"}


@dataclass
class Calibration:
    lang: str
    source: str  # where its documents came from
    docs: int
    thresholds: dict[str, dict[str, float]] = field(default_factory=dict)  # section -> field -> value
    shares: dict[str, float] = field(default_factory=dict)  # "section.field" -> q, the share English loses
    values: dict[str, list[float]] = field(default_factory=dict)  # "section.field" -> this language's values


def rule_sets() -> dict[str, TextRule]:
    return {"gopher_quality": GopherQuality(GopherQualityConfig(), use_published=False),
            "gopher_repetition": GopherRepetition(GopherRepetitionConfig(), use_published=False)}  # fmt: skip


def _field(section: Any, rule: str, bound: str) -> str | None:
    """The config field a measurement's threshold comes from: gopher_symbol_word_ratio (max) ->
    max_symbol_word_ratio, gopher_min_words -> min_words."""
    name = rule.split("_", 1)[1]
    for candidate in (name, f"{bound}_{name}"):
        if candidate in type(section).model_fields and candidate not in POLICY:
            return candidate
    return None


def statistics(texts: list[str], lang: str) -> dict[tuple[str, str, str], list[float]]:
    """(section, field, bound) -> the statistic's value on each document, as the rules measure it."""
    out: dict[tuple[str, str, str], list[float]] = {}
    for section, rule in rule_sets().items():
        for text in texts:
            for m in rule.measure_text(text, lang):
                if m.value is not None and (name := _field(rule.cfg, m.rule, m.bound)):
                    out.setdefault((section, name, m.bound), []).append(float(m.value))
    return out


def transfer(english: dict[tuple[str, str, str], list[float]], target: dict[tuple[str, str, str], list[float]],
             calibration: Calibration) -> None:  # fmt: skip
    """Each threshold at the quantile of the language that the English default cuts of English."""
    sections = {name: rule.cfg for name, rule in rule_sets().items()}
    for (section, name, bound), values in target.items():
        default = getattr(sections[section], name)
        base = np.asarray(english.get((section, name, bound), []))
        key = f"{section}.{name}"
        calibration.values[key] = values
        if default is None or base.size == 0:
            continue
        share = float(np.mean(base < default) if bound == "min" else np.mean(base > default))
        calibration.shares[key] = round(share, 4)
        if share < MIN_SHARE:
            continue
        value = float(np.quantile(values, share if bound == "min" else 1.0 - share))
        if name.endswith("_ratio") and value > 1.0:
            continue  # no ratio limit removes only that share: overlapping repeats measure above 1
        calibration.thresholds.setdefault(section, {})[name] = _rounded(value, default, name)


def _rounded(value: float, default: float, name: str) -> float:
    """Integers stay integers (stop-word counts)."""
    if isinstance(default, int) and not isinstance(default, bool):
        return int(round(value))
    return round(max(value, 0.0), 4)


def documents(texts: list[str], limit: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return rng.sample(texts, limit) if len(texts) > limit else list(texts)


def calibrate(crawl: dict[str, list[str]], references: dict[str, list[str]], languages: list[str] | None,
              min_docs: int, limit: int) -> list[Calibration]:  # fmt: skip
    """One calibration per language with enough documents (from `references`, else the crawl)."""
    english_source, english = _english(crawl, references, min_docs, limit)
    english_stats = statistics(english, "en")
    wanted = languages or sorted({*crawl, *references} - {"en"})
    out = []
    for lang in wanted:
        texts, source = (references[lang], "reference") if lang in references else (crawl.get(lang, []), "crawl")
        if len(texts) < min_docs:
            continue
        sample = documents(texts, limit)
        calibration = Calibration(lang, f"{source} vs {english_source}", len(sample))
        transfer(english_stats, statistics(sample, lang), calibration)
        out.append(calibration)
    if languages and not out:
        raise UserError(f"no language of {languages} has {min_docs} documents to calibrate on",
                        hint="give reference files (--reference ja=path) or lower --min-docs")  # fmt: skip
    return out


def _english(crawl: dict[str, list[str]], references: dict[str, list[str]], min_docs: int,
             limit: int) -> tuple[str, list[str]]:  # fmt: skip
    if "en" in references:
        return "English reference", documents(references["en"], limit)
    if len(crawl.get("en", [])) >= min_docs:
        return "English crawl pages", documents(crawl["en"], limit)
    from tasks.filter.config import QualityClassifierConfig
    from tasks.filter.quality import reference_texts

    return "built-in English reference", documents(reference_texts(QualityClassifierConfig(), Path(".")), limit)


def as_config(calibrations: list[Calibration]) -> dict[str, Any]:
    return {"filter": {"per_language": {c.lang: c.thresholds for c in calibrations if c.thresholds}}}


def crawl_documents(workdir: Path, per_language: int, seed: int = 0) -> dict[str, list[str]]:
    """language -> up to `per_language` of its pages from the latest extract output (hash-chosen)."""
    from storage.catalog import Catalog, create_artifact_views

    catalog = Catalog(workdir)
    if not catalog.path.exists():
        raise UserError(f"no catalog at {catalog.path}", hint="run `crawl2model run --until extract` first")
    with catalog.connect(read_only=True) as con:
        create_artifact_views(con, workdir)
        views = {r[0] for r in con.execute("select view_name from duckdb_views() where temporary").fetchall()}
        if "extract_docs" not in views:
            raise UserError(f"no extract output in {workdir}", hint="run `crawl2model run --until extract` first")
        rows = con.execute(
            "select lang, text from (select lang, text, row_number() over (partition by lang order by "
            "hash(doc_id, ?)) as k from extract_docs where lang is not null) where k <= ?", [seed, per_language]
        ).fetchall()  # fmt: skip
    crawl: dict[str, list[str]] = {}
    for lang, text in rows:
        crawl.setdefault(lang, []).append(text)
    return crawl


def reference_documents(specs: list[str]) -> dict[str, list[str]]:
    """`lang=path` -> that language's reference documents (text: its paragraphs; JSONL, Parquet: records)."""
    from tasks.filter.remote import read_texts
    from tasks.sample.sources import paragraphs_of

    out: dict[str, list[str]] = {}
    for spec in specs:
        lang, sep, path = spec.partition("=")
        if not sep or not lang or not Path(path).is_file():
            raise UserError(f"--reference {spec!r}: give language=path to an existing file, e.g. ja=jawiki.jsonl")
        texts, records = read_texts(Path(path), "text")
        out.setdefault(lang, []).extend(texts if records else paragraphs_of(texts[0]))
    return out


def write_outputs(calibrations: list[Calibration], out: Path) -> Path:
    """The config to review (YAML, the method and each language's source in comments) and its figure."""
    import yaml

    lines = ["# Written by `crawl2model calibrate`: Gopher thresholds per language by quantile transfer (each",
             "# removes the share of the language's documents that the English default removes of English's).",
             "# Review, then run with --config this file (or copy filter.per_language into yours).",
             *(f"#   {c.lang}: {c.docs} documents ({c.source})" for c in calibrations)]  # fmt: skip
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        "\n".join(lines) + "\n" + yaml.safe_dump(as_config(calibrations), sort_keys=True, allow_unicode=True)
    )
    figure = out.with_suffix(".png")
    plot(calibrations, figure)
    return figure


PLOTTED = ("gopher_quality.min_mean_word_length", "gopher_quality.min_alpha_words_ratio",
           "gopher_quality.min_stop_words", "gopher_repetition.max_top_2gram_char_ratio",
           "gopher_repetition.max_dup_5gram_char_ratio", "gopher_repetition.max_dup_line_ratio")  # fmt: skip


def plot(calibrations: list[Calibration], path: Path) -> None:
    """A row per language, a column per statistic: its distribution, the default and its threshold."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sections = {name: rule.cfg for name, rule in rule_sets().items()}
    rows = max(len(calibrations), 1)
    fig, axes = plt.subplots(rows, len(PLOTTED), figsize=(3 * len(PLOTTED), 2.2 * rows), squeeze=False)
    for r, c in enumerate(calibrations):
        for k, key in enumerate(PLOTTED):
            ax, (section, name) = axes[r][k], key.split(".")
            ax.hist(c.values.get(key, []), bins=30, color="#8aa")
            ax.axvline(getattr(sections[section], name), color="#999", linestyle="--")
            if (value := c.thresholds.get(section, {}).get(name)) is not None:
                ax.axvline(value, color="#c33")
            ax.set_title(f"{c.lang}: {name}", fontsize=8)
            ax.tick_params(labelsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
