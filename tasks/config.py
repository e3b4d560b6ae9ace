"""One pydantic config object per stage, validated on load; defaults serve the embedded sample run."""

from __future__ import annotations

import glob
import json
import os
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from tasks import STAGES


class Section(BaseModel):
    # Unknown keys are errors: a typo in a threshold must not silently run with the default.
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DownloadConfig(Section):
    """How remote files are fetched: politely, resumably, verified."""

    concurrency: int = Field(4, ge=1, le=64, description="files downloaded at once")
    retries: int = Field(8, ge=0, le=100, description="tries after the first, per file")
    backoff_s: float = Field(1.0, gt=0.0, le=600.0, description="first retry delay; doubles each time, with jitter")
    backoff_max_s: float = Field(120.0, gt=0.0, le=3600.0, description="cap on one delay, Retry-After included")
    timeout_s: float = Field(60.0, gt=0.0, le=3600.0, description="connect and read timeout")
    chunk_bytes: int = Field(1 << 20, ge=1024, le=1 << 28)
    verify_gzip: bool = Field(True, description="decompress .gz files fully before accepting them (CRC check)")
    max_failed_files: int = Field(0, ge=0, description="files that may fail for good before the stage fails")
    user_agent: str = Field(
        "crawl2model/0.1 (data pipeline; +https://github.com/crawl2model/crawl2model)", min_length=8
    )
    storage_options: dict[str, Any] = Field(
        default_factory=dict, description="fsspec options for non-HTTP URLs, e.g. {anon: true} for s3"
    )
    seed: int = Field(0, description="seeds the backoff jitter")

    @model_validator(mode="after")
    def _no_secrets(self) -> DownloadConfig:
        # The config is stored in the catalog and shown in reports; credentials must not be.
        secret = [k for k in self.storage_options if any(w in k.lower() for w in ("key", "secret", "token", "pass"))]
        if secret:
            raise ValueError(
                f"storage_options {secret}: credentials come from the environment (e.g. AWS_ACCESS_KEY_ID), "
                "never from the config, which is stored in the catalog"
            )
        return self


CRAWL_ID = r"^CC-MAIN-\d{4}-\d{2}$"


class AcquireConfig(Section):
    source: Literal["sample", "paths", "urls", "commoncrawl"] = "sample"
    paths: list[str] = Field(default_factory=list, description="local WARC paths or globs (source=paths)")
    urls: list[str] = Field(default_factory=list, description="http(s) or any fsspec URLs of WARC files (source=urls)")
    crawl: str | None = Field(None, pattern=CRAWL_ID, description="Common Crawl crawl id, e.g. CC-MAIN-2024-10")
    file_type: Literal["warc", "wet"] = Field("warc", description="Common Crawl WARC (HTML) or WET (text) files")
    select: Literal["first", "random", "list"] = Field("first", description="which files of the crawl")
    count: int = Field(1, ge=1, le=100_000, description="files to take (select=first|random)")
    files: list[str] = Field(default_factory=list, description="paths from the crawl's index (select=list)")
    host: str = Field(
        "https://data.commoncrawl.org/", description="Common Crawl data host, or s3://commoncrawl/ (fsspec)"
    )
    download: DownloadConfig = Field(default_factory=DownloadConfig)
    stream: bool = Field(False, description="extract each file as soon as it is downloaded (urls, commoncrawl)")
    sample_pages: int = Field(2400, ge=50, le=200_000, description="pages in the embedded sample")
    planted_per_case: int = Field(24, ge=1, le=1000)
    seed: int = 0

    @model_validator(mode="after")
    def _source_is_complete(self) -> AcquireConfig:
        if self.paths and self.source == "sample":
            self.source = "paths"
        if self.source == "paths" and not self.paths:
            raise ValueError("source=paths needs at least one path or glob in acquire.paths")
        missing = [p for p in self.paths if not glob.glob(os.path.expanduser(p))]
        if missing:
            raise ValueError(f"no file matches {missing}")
        if self.source == "urls" and not self.urls:
            raise ValueError("source=urls needs at least one URL in acquire.urls")
        if self.source == "commoncrawl":
            if not self.crawl:
                raise ValueError("source=commoncrawl needs acquire.crawl, e.g. CC-MAIN-2024-10")
            if self.select == "list" and not self.files:
                raise ValueError("select=list needs acquire.files (paths as listed in the crawl's index)")
        if "://" not in self.host:
            raise ValueError(f"host must be a URL such as https://data.commoncrawl.org/, got {self.host!r}")
        return self


class ExtractConfig(Section):
    languages: list[str] = Field(default_factory=lambda: ["en"], min_length=1)
    # FineWeb uses 0.65; the sample is code-heavy documentation, which fastText scores lower.
    min_lang_score: float = Field(0.3, ge=0.0, le=1.0)
    min_text_chars: int = Field(200, ge=0)
    max_html_bytes: int = Field(5_000_000, ge=1024, description="larger pages are skipped, counted")
    max_text_chars: int = Field(200_000, ge=100, description="extracted text is cut at this length")
    timeout_s: float = Field(10.0, gt=0.0, description="trafilatura time cap per document")
    mode: Literal["precision", "balanced", "recall"] = Field(
        "precision", description="trafilatura: favor precision, recall, or neither"
    )
    reader: Literal["warcio", "fastwarc"] = Field("warcio", description="WARC reader; both yield the same documents")
    workers: int = Field(2, ge=1, le=256, description="processes; one WARC file is one shard")


# Rule thresholds: None disables a rule; values are range-checked so a typo fails before any work.
Count = Annotated[int, Field(ge=0)] | None
Ratio = Annotated[float, Field(ge=0.0, le=1.0)] | None
Length = Annotated[float, Field(ge=0.0, le=1000.0)] | None


class GopherQualityConfig(Section):
    """DeepMind Gopher quality rules (Rae et al. 2021); None disables a rule."""

    min_words: Count = 50
    max_words: Count = 100_000
    min_mean_word_length: Length = 3.0
    max_mean_word_length: Length = 10.0
    max_symbol_word_ratio: Ratio = 0.1
    max_bullet_lines_ratio: Ratio = 0.9
    max_ellipsis_lines_ratio: Ratio = 0.3
    min_alpha_words_ratio: Ratio = 0.8
    min_stop_words: Count = 2


class GopherRepetitionConfig(Section):
    max_dup_line_ratio: Ratio = 0.3
    max_dup_para_ratio: Ratio = 0.3
    max_dup_line_char_ratio: Ratio = 0.2
    max_dup_para_char_ratio: Ratio = 0.2
    max_top_2gram_char_ratio: Ratio = 0.2
    max_top_3gram_char_ratio: Ratio = 0.18
    max_top_4gram_char_ratio: Ratio = 0.16
    # Characters inside n-grams that occur more than once, n = 5..10 (Gopher's published values).
    max_dup_5gram_char_ratio: Ratio = 0.15
    max_dup_6gram_char_ratio: Ratio = 0.14
    max_dup_7gram_char_ratio: Ratio = 0.13
    max_dup_8gram_char_ratio: Ratio = 0.12
    max_dup_9gram_char_ratio: Ratio = 0.11
    max_dup_10gram_char_ratio: Ratio = 0.10


class C4Config(Section):
    """C4's rules (Raffel et al. 2020). Off by default: the curly-bracket rule alone removes most
    technical pages, including the sample's documentation; FineWeb keeps C4 without the
    terminal-punctuation line rule."""

    enabled: bool = False
    drop_no_terminal_punctuation: bool = True
    min_words_per_line: Count = 3
    max_word_length: Count = 1000
    drop_javascript_lines: bool = True
    drop_policy_lines: bool = True
    remove_lorem_ipsum: bool = True
    remove_curly_bracket: bool = True
    min_sentences: Count = 5


class FineWebConfig(Section):
    """FineWeb's own rules (Penedo et al. 2024) with their published thresholds."""

    enabled: bool = False
    min_line_punct_ratio: Ratio = 0.12
    short_line_chars: int = Field(30, ge=1)
    max_short_line_ratio: Ratio = 0.67
    max_dup_line_char_ratio: Ratio = 0.01
    max_newline_word_ratio: Length = 0.3


class QualityClassifierConfig(Section):
    enabled: bool = True
    min_score: float = Field(0.01, ge=0.0, le=1.0, description="P(reference-like) below this is removed")
    reference_paths: list[str] = Field(
        default_factory=list, description="text files of reference-quality prose; empty = built-in"
    )
    negatives: int = Field(2000, ge=10, description="random input documents used as the 'web' class")
    heldout_fraction: float = Field(0.1, ge=0.0, lt=0.5, description="labelled lines kept out to measure accuracy")
    keep_top_fraction: float | None = Field(
        None, gt=0.0, le=1.0, description="keep the best-scoring fraction instead of min_score (e.g. 0.1 as DCLM)"
    )
    model_path: str | None = Field(None, description="an existing fastText model to use instead of training one")
    positive_label: str = Field("__label__hq", description="the model's label for good documents")
    epochs: int = Field(10, ge=1)
    lr: float = Field(0.5, gt=0.0, le=5.0, description="fastText learning rate; halved on divergence")
    lr_retries: int = Field(4, ge=0, le=10, description="how many times a diverged training is retried")
    seed: int = 0

    @model_validator(mode="after")
    def _model_exists(self) -> QualityClassifierConfig:
        if self.model_path and not Path(self.model_path).is_file():
            raise ValueError(f"model_path not found: {self.model_path}")
        return self


class FilterConfig(Section):
    blocklist_domains: list[str] = Field(
        default_factory=lambda: ["casino-bonus.example", "adult-videos.example", "free-pills.example"]
    )
    blocklist_file: str | None = Field(None, description="UT1-style file: one domain per line")
    banned_url_words: list[str] = Field(default_factory=lambda: ["porn", "xxx", "casino"])
    gopher_quality: GopherQualityConfig = Field(default_factory=GopherQualityConfig)
    gopher_repetition: GopherRepetitionConfig = Field(default_factory=GopherRepetitionConfig)
    c4: C4Config = Field(default_factory=C4Config)
    fineweb: FineWebConfig = Field(default_factory=FineWebConfig)
    quality: QualityClassifierConfig = Field(default_factory=QualityClassifierConfig)
    redact_pii: bool = True
    workers: int = Field(2, ge=1, le=256)

    @model_validator(mode="after")
    def _blocklist_exists(self) -> FilterConfig:
        if self.blocklist_file and not Path(self.blocklist_file).is_file():
            raise ValueError(f"blocklist_file not found: {self.blocklist_file}")
        return self


class DedupConfig(Section):
    """Exact + MinHash near-dedup. 14 bands x 8 rows puts the LSH S-curve's midpoint near Jaccard 0.72."""

    num_perm: int = Field(112, ge=16, le=1024, description="MinHash permutations (>= bands x rows)")
    bands: int = Field(14, ge=1, le=512)
    rows: int = Field(8, ge=1, le=64, description="signature rows per band")
    shingle_words: int = Field(5, ge=1, le=32)
    threshold: float = Field(0.7, gt=0.0, lt=1.0, description="Jaccard similarity a verified pair must reach")
    verify: Literal["none", "signature", "jaccard"] = Field(
        "jaccard", description="check candidate pairs: not at all, by MinHash estimate, or by exact shingle Jaccard"
    )
    keep: Literal["smallest_doc_id", "highest_quality", "longest"] = Field(
        "highest_quality", description="which document of a cluster survives (ties: smallest doc_id)"
    )
    max_pair_bucket: int = Field(
        32, ge=2, le=4096, description="buckets up to this size yield all pairs; bigger ones link to their first doc"
    )
    memory_limit_mb: int = Field(1024, ge=32, description="DuckDB memory for the bucket/cluster step; spills past it")
    workers: int = Field(2, ge=1, le=256, description="processes computing signatures, one shard each")
    quality_check_docs: int = Field(
        20000, ge=0, description="synthetic near-duplicate documents added to measure P/R vs exact Jaccard; 0 = off"
    )
    seed: int = 1

    @model_validator(mode="after")
    def _bands_fit(self) -> DedupConfig:
        if self.bands * self.rows > self.num_perm:
            raise ValueError(f"bands x rows = {self.bands * self.rows} exceeds num_perm = {self.num_perm}")
        return self


class MixConfig(Section):
    # domain -> host suffixes or URL substrings; first match wins, unmatched -> default_domain.
    domain_rules: dict[str, list[str]] = Field(
        default_factory=lambda: {
            "docs": ["docs.pylib.example"],
            "code": ["pyindex.example", "github-mirror.example"],
            "forum": ["forum.", "discuss."],
            "news": ["news.", "blog."],
        }
    )
    default_domain: str = "web"
    # Optional fastText topic model trained from user-labelled examples (JSONL {"text", "domain"}).
    topic_examples: str | None = None
    topic_min_confidence: float = Field(0.6, ge=0.0, le=1.0)
    topic_relabel: Literal["unmatched", "all"] = Field("unmatched", description="which documents it may relabel")
    mode: Literal["natural", "weights", "temperature"] = "weights"
    # The sample's target mixture: more reference docs, less generic web than crawled.
    weights: dict[str, float] = Field(
        default_factory=lambda: {"docs": 0.4, "code": 0.15, "forum": 0.2, "news": 0.15, "web": 0.1}
    )
    temperature: float = Field(1.0, gt=0.0)
    token_budget: int | None = Field(None, ge=1, description="approximate tokens (chars/4); None = all")
    max_repeats: int = Field(4, ge=1, description="cap on copies of any one document")
    seed: int = 0

    @model_validator(mode="after")
    def _weights_given(self) -> MixConfig:
        if self.topic_examples and not Path(self.topic_examples).is_file():
            raise ValueError(f"topic_examples not found: {self.topic_examples}")
        if self.mode == "weights" and not self.weights:
            raise ValueError("mode=weights needs mix.weights")
        if any(w < 0 for w in self.weights.values()):
            raise ValueError("mix.weights must be non-negative")
        return self


class BenchmarkConfig(Section):
    """A multiple-choice benchmark file on local disk (never downloaded at run time)."""

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    format: Literal["hellaswag", "arc", "piqa", "generic"]
    path: str
    shots: int = Field(0, ge=0, le=25)
    limit: int | None = Field(None, ge=1, description="score only the first N items")

    @model_validator(mode="after")
    def _file_exists(self) -> BenchmarkConfig:
        if not Path(self.path).is_file():
            raise ValueError(f"benchmark file not found: {self.path}")
        return self


class TokenizeConfig(Section):
    vocab_size: int = Field(4096, ge=300, le=256_000)
    seq_len: int = Field(128, ge=8, le=65_536)
    sample_docs: int = Field(5000, ge=10, description="documents the tokenizer is trained on")
    special_tokens: list[str] = Field(default_factory=list, description="extra user-defined symbols")
    model_path: str | None = Field(None, description="an existing SentencePiece model to use instead of training")
    val_fraction: float = Field(0.08, gt=0.0, lt=0.5)
    rows_per_shard: int = Field(4096, ge=16)
    workers: int = Field(0, ge=0, le=256, description="encoding threads; 0 = all cores")
    decontaminate: Literal["remove", "flag", "off"] = "remove"
    decontamination_ngram: int = Field(13, ge=5, le=50)
    # The built-in evaluation tasks are made here, from the held-out split this stage owns, so the
    # train split can be decontaminated against them; the evaluate stage scores them.
    builtin_eval_items: int = Field(200, ge=0, description="items in each built-in task (cloze, last word)")
    # Filled from evaluate.benchmarks by the pipeline config unless set here.
    eval_benchmarks: list[BenchmarkConfig] = Field(default_factory=list)
    seed: int = 0

    @model_validator(mode="after")
    def _model_exists(self) -> TokenizeConfig:
        if self.model_path and not Path(self.model_path).is_file():
            raise ValueError(f"tokenizer model not found: {self.model_path}")
        return self


# (n_layer, n_head, n_embd): tiny for CPU tests, small for the sample, then GPT-2 124M / 350M classes.
MODEL_PRESETS: dict[str, tuple[int, int, int]] = {
    "tiny": (2, 2, 64),
    "small": (4, 4, 128),
    "124m": (12, 12, 768),
    "350m": (24, 16, 1024),
}


class TrainConfig(Section):
    preset: Literal["tiny", "small", "124m", "350m"] | None = Field(
        None, description="model size; n_layer/n_head/n_embd given explicitly win over the preset"
    )
    n_layer: int = Field(4, ge=1)
    n_head: int = Field(4, ge=1)
    n_embd: int = Field(128, ge=16)
    tie_embeddings: bool = True
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    batch_size: int = Field(16, ge=1, description="rows per micro-batch per process")
    grad_accum: int = Field(1, ge=1)
    tokens_per_step: int | None = Field(None, ge=1, description="sets grad_accum to reach this many tokens/step")
    max_steps: int = Field(600, ge=1)
    lr: float = Field(3e-3, gt=0.0)
    min_lr_ratio: float = Field(0.1, ge=0.0, le=1.0)
    warmup_steps: int = Field(40, ge=0)
    weight_decay: float = Field(0.1, ge=0.0)
    grad_clip: float = Field(1.0, gt=0.0)
    spike_factor: float | None = Field(3.0, gt=1.0, description="loss above this x its running mean is a spike")
    skip_spikes: bool = False
    checkpoint_every: int = Field(200, ge=1)
    log_every: int = Field(10, ge=1)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    nproc: int = Field(1, ge=1, le=1024, description="data-parallel processes; >1 launches torchrun")
    strategy: Literal["ddp", "fsdp"] = "ddp"
    compile: Literal["auto", "on", "off"] = "auto"
    threads: int = Field(0, ge=0, description="torch CPU threads per process; 0 = all cores")
    seed: int = 0

    @model_validator(mode="after")
    def _preset_and_heads(self) -> TrainConfig:
        if self.preset is not None:
            for name, value in zip(("n_layer", "n_head", "n_embd"), MODEL_PRESETS[self.preset], strict=True):
                if name not in self.model_fields_set:
                    object.__setattr__(self, name, value)
        if self.n_embd % self.n_head or (self.n_embd // self.n_head) % 2:
            raise ValueError("n_embd must be a multiple of n_head with an even head size (RoPE)")
        return self


class EvaluateConfig(Section):
    max_val_rows: int = Field(2048, ge=1)
    per_domain_rows: int = Field(256, ge=1, description="held-out rows per domain for per-domain bits per byte")
    benchmarks: list[BenchmarkConfig] = Field(default_factory=list)
    prompts: list[str] = Field(
        default_factory=lambda: ["The module", "This function returns", "To install the package"]
    )
    max_new_tokens: int = Field(40, ge=1, le=4096)
    temperature: float = Field(0.8, gt=0.0)
    top_k: int = Field(40, ge=1)
    seed: int = 0


class RunnerConfig(Section):
    """How the flow executes, not what it computes (so none of it is in any stage fingerprint).

    Per-shard work: `local` runs each stage's own process pool (`<stage>.workers`); `dask` makes every
    shard a Prefect task on prefect-dask's DaskTaskRunner: a local process cluster of `workers`
    processes, or the scheduler at `address` (then the cluster's workers). Network stages (acquire)
    are retried by Prefect `network_retries` times, `network_retry_delay_s` doubling each time
    (with jitter), on top of the downloader's own per-request retries; a retry resumes from the files
    already verified."""

    kind: Literal["local", "dask"] = "local"
    workers: int = Field(2, ge=1, le=1024, description="dask: processes of the local cluster")
    address: str | None = Field(None, description="dask: a running scheduler, e.g. tcp://scheduler:8786")
    shard_retries: int = Field(0, ge=0, le=10, description="dask: Prefect retries of a failed shard task")
    network_retries: int = Field(2, ge=0, le=20, description="Prefect retries of the acquire task")
    network_retry_delay_s: float = Field(30.0, gt=0.0, le=3600.0, description="first retry delay; doubles")


class PipelineConfig(Section):
    name: str = "sample"
    runner: RunnerConfig = Field(default_factory=RunnerConfig)
    acquire: AcquireConfig = Field(default_factory=AcquireConfig)
    extract: ExtractConfig = Field(default_factory=ExtractConfig)
    filter: FilterConfig = Field(default_factory=FilterConfig)
    dedup: DedupConfig = Field(default_factory=DedupConfig)
    mix: MixConfig = Field(default_factory=MixConfig)
    tokenize: TokenizeConfig = Field(default_factory=TokenizeConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    evaluate: EvaluateConfig = Field(default_factory=EvaluateConfig)

    @model_validator(mode="after")
    def _decontaminate_against_eval(self) -> PipelineConfig:
        # The token stream is decontaminated against the benchmarks the evaluate stage will score.
        if "eval_benchmarks" not in self.tokenize.model_fields_set and self.evaluate.benchmarks:
            object.__setattr__(self.tokenize, "eval_benchmarks", list(self.evaluate.benchmarks))
        return self

    def stage(self, name: str) -> Section:
        return getattr(self, name)


assert set(PipelineConfig.model_fields) - {"name", "runner"} == set(STAGES)


class ConfigError(Exception):
    """A config problem, reported with the key path and the reason before any work starts."""


def _parse_override(item: str) -> tuple[list[str], Any]:
    if "=" not in item:
        raise ConfigError(f"--set {item!r}: expected dotted.key=value")
    key, raw = item.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as e:
        raise ConfigError(f"--set {key}: cannot parse value {raw!r}: {e}") from e
    return key.strip().split("."), value


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    for item in overrides:
        path, value = _parse_override(item)
        node = data
        for part in path[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {'.'.join(path)}: {part} is not a section")
        node[path[-1]] = value
    return data


def format_validation_error(err: ValidationError) -> str:
    lines = []
    for e in err.errors():
        where = ".".join(str(p) for p in e["loc"]) or "(top level)"
        lines.append(f"  {where}: {e['msg']}" + (f" (got {e['input']!r})" if "input" in e else ""))
    return "invalid config:\n" + "\n".join(lines)


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> PipelineConfig:
    """Load YAML (or the sample defaults when path is None), apply --set overrides, validate."""
    data: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config file not found: {p}")
        try:
            data = yaml.safe_load(p.read_text()) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"config file {p} is not valid YAML: {e}") from e
        if not isinstance(data, dict):
            raise ConfigError(f"config file {p} must hold a mapping of sections")
    data = apply_overrides(data, overrides or [])
    try:
        return PipelineConfig.model_validate(data)
    except ValidationError as e:
        raise ConfigError(format_validation_error(e)) from e


# Config fields that name files a stage reads (besides acquire's inputs): their identity is part of
# the stage's fingerprint, so a file edited in place at the same path is not a cache hit.
INPUT_FILE_FIELDS = frozenset({"reference_paths", "model_path", "blocklist_file", "topic_examples", "path"})


def input_files(cfg: BaseModel) -> list[str]:
    """The files named by `cfg` and the sections inside it (benchmark lists included)."""
    found: list[str] = []
    for name in type(cfg).model_fields:
        value = getattr(cfg, name)
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, BaseModel):
                found += input_files(item)
            elif name in INPUT_FILE_FIELDS and isinstance(item, str) and item:
                found.append(item)
    return found


def config_json(cfg: BaseModel) -> dict[str, Any]:
    return json.loads(cfg.model_dump_json())
