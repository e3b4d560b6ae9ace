"""The one list of export formats. Adding one is a writer module in this package plus a line here:
`write(inputs, cfg, out) -> files` gets the finished outputs of `stage` and of `needs`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tasks.export.config import ExportConfig
from tasks.export.documents import export_documents
from tasks.export.hf import export_hf
from tasks.export.tokens import export_tokens
from tasks.stage import StageInput

WriteFn = Callable[[dict[str, StageInput], ExportConfig, Path], list[Path]]
DOCUMENT_STAGES = ("extract", "filter", "dedup", "mix")


@dataclass(frozen=True)
class ExportFormat:
    name: str
    stages: tuple[str, ...]  # the stages whose output it exports
    write: WriteFn
    load: str  # how the consuming tool reads it, `{out}` for the directory (printed after an export)
    needs: tuple[str, ...] = ()  # other stage outputs it reads
    requires: tuple[str, ...] = ()  # the libraries it writes with, checked before any work


FORMATS: dict[str, ExportFormat] = {f.name: f for f in (
    ExportFormat("jsonl", DOCUMENT_STAGES, export_documents,
                 'datatrove.pipeline.readers.JsonlReader("{out}/documents")'),
    ExportFormat("hf-datasets", DOCUMENT_STAGES, export_documents,
                 'datasets.load_dataset("parquet", data_dir="{out}/data", split="train")'),
    ExportFormat("megatron", ("tokenize",), export_tokens,
                 'megatron.core.datasets.indexed_dataset.IndexedDataset("{out}/train_text_document")'),
    ExportFormat("nanogpt", ("tokenize",), export_tokens,
                 'numpy.memmap("{out}/train.bin", dtype=numpy.uint16, mode="r")'),
    ExportFormat("litdata", ("tokenize",), export_tokens,
                 'litdata.StreamingDataset("{out}/train", item_loader=litdata.TokensLoader(block_size=seq_len + 1))',
                 requires=("litdata",)),
    ExportFormat("hf", ("train", "sft", "dpo", "tokenize"), export_hf,
                 'transformers.AutoModelForCausalLM.from_pretrained("{out}"); AutoTokenizer.from_pretrained("{out}")',
                 needs=("tokenize",), requires=("transformers", "safetensors", "google.protobuf")),
)}  # fmt: skip
