"""Shipped benchmark suites: task names, shot counts and the file names to find under `suite_dir`.

`multilingual`: XCOPA, XStoryCloze, XWinograd, XNLI, PAWS-X, Belebele and OpenAI's MMMLU per language (below).
`core`: the tasks of DCLM's CORE score (Li et al. 2024, p. 43) that are scored by log-likelihood, as
lm-evaluation-harness users run them (the marin project's list), with the file names of llm-foundry's
`scripts/eval/local_data/` gauntlet, which DCLM computes CORE from. Nothing is downloaded: the files
are the user's, found anywhere under `evaluate.suite_dir`; `format: auto` reads them.
"""

from __future__ import annotations

import csv
import hashlib
import warnings
from pathlib import Path

# (task name, shots, file name)
SUITES: dict[str, tuple[tuple[str, int, str], ...]] = {
    "core": (
        ("agi_eval_lsat_ar", 3, "agi_eval_lsat_ar.jsonl"),
        ("arc_easy", 10, "arc_easy.jsonl"),
        ("arc_challenge", 10, "arc_challenge.jsonl"),
        ("boolq", 10, "boolq.jsonl"),
        ("commonsense_qa", 10, "commonsense_qa.jsonl"),
        ("copa", 0, "copa.jsonl"),
        ("hellaswag_0shot", 0, "hellaswag.jsonl"),
        ("hellaswag_10shot", 10, "hellaswag.jsonl"),
        ("lambada_openai", 0, "lambada_openai.jsonl"),
        ("openbook_qa", 0, "openbook_qa.jsonl"),
        ("piqa", 10, "piqa.jsonl"),
        ("winograd_wsc", 0, "winograd_wsc.jsonl"),
        ("winogrande", 0, "winogrande.jsonl"),
    ),
}


# `multilingual`: the harness's multilingual log-likelihood tasks, per language, under the file names
# their Hugging Face datasets' splits are usually saved as (`format: auto` reads them; XCOPA is named).
# task -> the language code its results are grouped under.
XCOPA = ("et", "ht", "id", "it", "qu", "sw", "ta", "th", "tr", "vi", "zh")
XSTORYCLOZE = ("ar", "es", "eu", "hi", "id", "my", "ru", "sw", "te", "zh")
XWINOGRAD = {"en": "en", "fr": "fr", "jp": "ja", "pt": "pt", "ru": "ru", "zh": "zh"}
XNLI = ("ar", "bg", "de", "el", "en", "es", "fr", "hi", "ru", "sw", "th", "tr", "ur", "vi", "zh")
PAWSX = ("de", "en", "es", "fr", "ja", "ko", "zh")
BELEBELE = {"arb_Arab": "ar", "zho_Hans": "zh", "jpn_Jpan": "ja", "tha_Thai": "th", "hin_Deva": "hi",
            "rus_Cyrl": "ru", "spa_Latn": "es", "kor_Hang": "ko", "swh_Latn": "sw", "tel_Telu": "te"}  # fmt: skip
MMMLU = {"AR_XY": "ar", "BN_BD": "bn", "DE_DE": "de", "ES_LA": "es", "FR_FR": "fr", "HI_IN": "hi",
         "ID_ID": "id", "IT_IT": "it", "JA_JP": "ja", "KO_KR": "ko", "PT_BR": "pt", "SW_KE": "sw", "YO_NG": "yo",
         "ZH_CN": "zh"}  # fmt: skip
MULTILINGUAL_LANGUAGES: dict[str, str] = {
    **{f"xcopa_{lang}": lang for lang in XCOPA}, **{f"xstorycloze_{lang}": lang for lang in XSTORYCLOZE},
    **{f"xwinograd_{code}": lang for code, lang in XWINOGRAD.items()},
    **{f"xnli_{lang}": lang for lang in XNLI}, **{f"paws_{lang}": lang for lang in PAWSX},
    **{f"belebele_{code}": lang for code, lang in BELEBELE.items()},
    **{f"mmmlu_{code.lower()}": lang for code, lang in MMMLU.items()},
}  # fmt: skip
SUITES["multilingual"] = (
    *((f"xcopa_{lang}", 0, f"xcopa_{lang}.jsonl") for lang in XCOPA),
    *((f"xstorycloze_{lang}", 0, f"xstorycloze_{lang}.jsonl") for lang in XSTORYCLOZE),
    *((f"xwinograd_{code}", 0, f"xwinograd_{code}.jsonl") for code in XWINOGRAD),
    *((f"xnli_{lang}", 0, f"xnli_{lang}.jsonl") for lang in XNLI),
    *((f"paws_{lang}", 0, f"paws_{lang}.jsonl") for lang in PAWSX),
    *((f"belebele_{code}", 0, f"belebele_{code}.jsonl") for code in BELEBELE),
    *((f"mmmlu_{code.lower()}", 0, f"mmlu_{code}.csv") for code in MMMLU),
)

# CORE's random baselines as DCLM published them (mlfoundations/dclm eval/eval_meta_data_v1.csv, "Random
# baseline", in %), under this suite's task names. BoolQ's 62 is its majority answer, not 1/2: the table
# mixes the two rules, which is what DCLM's 2025 correction ("CORE v2") is about. Its corrected table
# is not among the reference data shipped here: `evaluate.core_baselines_file` reads it (or any later
# one) from the user's copy of DCLM's eval_meta_data.csv, and `core_baselines: measured` takes each
# task's own (the better of chance and the majority answer of the items scored).
CORE_V1_BASELINES: dict[str, float] = {
    "agi_eval_lsat_ar": 0.20, "arc_easy": 0.25, "arc_challenge": 0.25, "boolq": 0.62, "commonsense_qa": 0.20,
    "copa": 0.50, "hellaswag_0shot": 0.25, "hellaswag_10shot": 0.25, "lambada_openai": 0.0, "openbook_qa": 0.25,
    "piqa": 0.50, "winograd_wsc": 0.50, "winogrande": 0.50,
}  # fmt: skip

# DCLM's task names where this suite's differ (its `hellaswag` is the 10-shot one).
DCLM_TASK_NAMES = {"hellaswag_zeroshot": "hellaswag_0shot", "hellaswag": "hellaswag_10shot", "winograd": "winograd_wsc"}


def read_core_baselines(path: str | Path) -> tuple[dict[str, float], str]:
    """(task -> baseline as a fraction, a label naming the file and its digest) from a table in the
    layout of DCLM's eval_meta_data.csv: columns `Eval Task` and `Random baseline` (in %)."""
    raw = Path(path).read_bytes()
    rows = list(csv.DictReader(raw.decode("utf-8-sig").splitlines()))
    if not rows or not {"Eval Task", "Random baseline"} <= set(rows[0]):
        raise ValueError(f"{path}: CORE baselines need the columns `Eval Task` and `Random baseline` (in %), "
                         "as DCLM's eval/eval_meta_data.csv has them")  # fmt: skip
    table = {}
    for row in rows:
        try:
            table[DCLM_TASK_NAMES.get(row["Eval Task"], row["Eval Task"])] = float(row["Random baseline"]) / 100
        except ValueError:
            raise ValueError(f"{path}: task {row['Eval Task']!r} has no number as its random baseline") from None
    return table, f"{Path(path).name} (sha256 {hashlib.sha256(raw).hexdigest()[:12]})"


def suite_files(suite: str, root: str | Path, skip_missing: bool = False) -> list[tuple[str, int, str]]:
    """(task, shots, path) for every task of the suite whose file is found; a missing file is one
    error listing them all, or (`skip_missing`) a warning and the task left out."""
    base = Path(root)
    found = {p.name: p for p in sorted(base.rglob("*")) if p.is_file()} if base.is_dir() else {}
    missing = sorted({file for _, _, file in SUITES[suite] if file not in found})
    message = (f"suite {suite!r}: {len(missing)} file(s) not found under {base}: {', '.join(missing)} "
               "(llm-foundry's scripts/eval/local_data/ has them; nothing is downloaded)")  # fmt: skip
    if missing and not skip_missing:
        raise ValueError(message)
    if missing:
        warnings.warn(f"{message}; left out (evaluate.skip_missing)", stacklevel=2)
    return [(task, shots, str(found[file])) for task, shots, file in SUITES[suite] if file in found]
