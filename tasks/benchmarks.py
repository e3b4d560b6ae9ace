"""A benchmark file on local disk: tokenize decontaminates against it, evaluate scores it."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from model.formulations import NORMALIZATION_KEYS, OLMES_NORMALIZATION, WITH_OPTIONS, olmes_normalization
from model.item_formats import ALIASES, FORMATS, check, mmlu_dev_split
from model.multilingual_formats import LANGUAGE_WORDS
from storage.section import ExistingPath, Section

FormatName = Literal[tuple(["auto", *FORMATS, *ALIASES])]  # type: ignore[valid-type]


class BenchmarkConfig(Section):
    """A benchmark file (or MMLU's directory of CSVs) on local disk, never downloaded at run time.
    `format: auto` recognises it from its first row; a file in another format than named is an error
    naming the fields found and expected, when the config is validated (before any work)."""

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    format: FormatName = "auto"
    path: ExistingPath
    shots: int = Field(0, ge=0, le=25, description="solved examples before each item")
    language: str | None = Field(None, description="the benchmark's language code: results are grouped by it, and "
                                 "XCOPA's, XNLI's and PAWS-X's prompts take their words from it")  # fmt: skip
    fewshot_path: ExistingPath | None = Field(
        None, description="where the shots come from: the benchmark's dev or train split, in the same format; "
        "default: MMLU's dev CSVs beside its test ones (data/dev/ beside data/test/, the first N of the "
        "subject's, as the harness takes them), else a seeded draw of the file's other items",
    )  # fmt: skip
    limit: int | None = Field(None, ge=1, description="score only the first N items")
    sample: int | None = Field(None, ge=1, description="score N items drawn with evaluate.seed (OLMES scores "
                               "1,000 of a large task; evaluate.seed 1234 draws OLMES's own 1,000, as its "
                               "Random(1234).sample does); after `limit`")  # fmt: skip
    formulation: Literal["harness", "cloze", "mc", "both"] = Field(
        "harness", description="how each item is asked: as lm-evaluation-harness's task does; cloze (each "
        "answer's text scored); mc (options lettered in the prompt, the letter scored); both (two tasks, "
        "NAME:cloze and NAME:mc, and the better stated, as OLMES reports). cloze and mc need a format with "
        "options: " + ", ".join(WITH_OPTIONS),
    )  # fmt: skip
    normalization: Literal["harness", "none", "char", "token", "pmi", "olmes"] = Field(
        "harness", description="which accuracy is this task's stated number: harness, acc and acc_norm as "
        "lm-evaluation-harness reports them (none stated); none (summed log-likelihood), char (per character), "
        "token (per token), pmi (less each answer's log-likelihood after `Answer:` alone: one more scoring "
        "pass), or olmes (OLMES's choice for the task, found by its name: "
        + ", ".join(f"{t} {n}" for t, n in OLMES_NORMALIZATION.items())
        + "). A lettered (mc) formulation is never normalised",
    )  # fmt: skip

    @model_validator(mode="after")
    def _format_matches(self) -> BenchmarkConfig:
        fmt = check(self.path, self.format)
        if self.fewshot_path is not None:
            check(self.fewshot_path, fmt)
        if fmt in LANGUAGE_WORDS and self.language not in LANGUAGE_WORDS[fmt]:
            known = ", ".join(sorted(LANGUAGE_WORDS[fmt]))
            raise ValueError(f"benchmark {self.name}: {fmt} needs `language`, one of {known}")
        if self.formulation != "harness" and fmt not in WITH_OPTIONS:
            raise ValueError(f"benchmark {self.name}: formulation {self.formulation} needs a format with options "
                             f"({', '.join(WITH_OPTIONS)}); {self.path} is {fmt}")  # fmt: skip
        if self.normalization == "olmes" and olmes_normalization(self.name) is None:
            known = ", ".join(OLMES_NORMALIZATION)
            raise ValueError(f"benchmark {self.name}: OLMES names a normalisation for tasks named {known}; "
                             "name it so, or set normalization yourself")  # fmt: skip
        return self

    def stated_metric(self, formulation: str) -> tuple[str, str] | None:
        """(the accuracy key stated for this formulation, the normalisation's name), or None (harness)."""
        if self.normalization == "harness":
            return None
        norm = "none" if formulation == "mc" else self.normalization
        norm = olmes_normalization(self.name) if norm == "olmes" else norm
        return NORMALIZATION_KEYS[norm], norm

    def formulations(self) -> list[tuple[str, str]]:
        """(task name, formulation) for each way this benchmark is asked."""
        if self.formulation == "both":
            return [(f"{self.name}:cloze", "cloze"), (f"{self.name}:mc", "mc")]
        return [(self.name, self.formulation)]

    def shot_source(self) -> tuple[str | None, bool]:
        """(the file the shots come from, or None for the benchmark's own other items; first N in order?)"""
        mmlu = check(self.path, self.format) in ("mmlu", "mmlu_jsonl")
        if self.fewshot_path is not None:
            return str(self.fewshot_path), mmlu
        dev = mmlu_dev_split(self.path) if mmlu else None
        return (str(dev), True) if dev else (None, False)
