"""A crawl2model checkpoint as an lm-evaluation-harness `LM`, so any task a user has locally runs on it.

The three request kinds the harness sends, answered with the evaluate stage's own scoring
(`model.benchmarks`): `loglikelihood` (context, continuation) -> summed log-probability and whether
greedy decoding gives the continuation, batched by `score_requests`; `loglikelihood_rolling` (a
whole text, in windows of the model's sequence length, the first token given the document start);
`generate_until` (greedy, cut at the first stop sequence). Whitespace at the end of a context moves
to the continuation, as the harness's own Hugging Face wrapper does, so the token split is the same.
lm-eval is imported only here (the `harness` extra).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import sentencepiece as spm
import torch

from model.benchmarks import Request, make_request, score_requests
from model.gpt import GPT
from model.packing import EOS_ID


def split_pair(context: str, continuation: str) -> tuple[str, str]:
    """Trailing whitespace of the context belongs to the continuation (the harness's HFLM does this)."""
    stripped = context.rstrip()
    return stripped, context[len(stripped) :] + continuation


class CheckpointScorer:
    """What the LM wrapper computes, without lm-eval (tested on its own)."""

    def __init__(self, model: GPT, sp: spm.SentencePieceProcessor, batch_size: int = 32):
        self.model, self.sp, self.batch_size = model, sp, batch_size
        self.seq_len = model.cfg.seq_len
        self.start_id = EOS_ID  # the document separator the model trained with (tokenize never emits BOS)

    def encode(self, text: str) -> list[int]:
        return self.sp.encode(text)

    def loglikelihood(self, pairs: list[tuple[str, str]]) -> list[tuple[float, bool]]:
        requests = [make_request(self.encode, *split_pair(c, x), self.seq_len) for c, x in pairs]
        return score_requests(self.model, requests, self.batch_size)

    def rolling(self, text: str) -> float:
        """Summed log-probability of every token of `text` (the first given the document start), in
        windows of `seq_len` targets, each with as much preceding context as fits."""
        tokens = [self.start_id, *self.encode(text)]
        windows = []
        for start in range(1, len(tokens), self.seq_len):
            end = min(start + self.seq_len, len(tokens))
            windows.append(Request(tuple(tokens[max(0, end - self.seq_len - 1) : end]), end - start))
        return sum(lp for lp, _ in score_requests(self.model, windows, self.batch_size))

    @torch.no_grad()
    def generate(self, context: str, until: list[str], max_tokens: int) -> str:
        device = next(self.model.parameters()).device
        tokens = self.encode(context)[-self.seq_len :] or [self.start_id]
        out: list[int] = []
        for _ in range(max_tokens):
            x = torch.tensor([(tokens + out)[-self.seq_len :]], device=device)
            nxt = int(self.model(x)[0][0, -1, : self.sp.vocab_size()].argmax())  # never the padding ids
            if nxt == self.sp.eos_id():
                break
            out.append(nxt)
            text = self.sp.decode(out)
            if any(stop in text for stop in until):
                break
        text = self.sp.decode(out)
        cut = min((text.index(s) for s in until if s in text), default=len(text))
        return text[:cut]


@lru_cache(maxsize=1)
def lm_class() -> type:
    """The `lm_eval.api.model.LM` subclass (built on first use: lm-eval is an optional dependency)."""
    from lm_eval.api.model import LM

    class CrawlToModelLM(LM):
        def __init__(self, scorer: CheckpointScorer):
            super().__init__()
            self.scorer = scorer

        def loglikelihood(self, requests: list[Any]) -> list[tuple[float, bool]]:
            return self.scorer.loglikelihood([tuple(r.args[:2]) for r in requests])

        def loglikelihood_rolling(self, requests: list[Any]) -> list[float]:
            return [self.scorer.rolling(r.args[0]) for r in requests]

        def generate_until(self, requests: list[Any]) -> list[str]:
            out = []
            for r in requests:
                context, kwargs = r.args[0], dict(r.args[1])
                until = kwargs.get("until") or []
                until = [until] if isinstance(until, str) else list(until)
                out.append(self.scorer.generate(context, until, int(kwargs.get("max_gen_toks", 256))))
            return out

    return CrawlToModelLM


def local_tasks(files: dict[str, str], folder: Path, fewshot: dict[str, str] | None = None) -> list[str]:
    """Task configs that run the harness's own task logic (prompts, processing, metrics) of each named
    built-in task over a local JSONL file in that dataset's published shape: nothing from the hub.
    {"hellaswag": "hs.jsonl"} -> task `hellaswag_local` evaluated on all rows of hs.jsonl; `fewshot`
    names a task's file of shots (its dev or train split)."""
    import yaml
    from lm_eval.tasks import TaskManager

    index = TaskManager().task_index
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    for task, path in files.items():
        if task not in index or index[task].yaml_path is None:
            raise ValueError(f"lm-eval has no task {task!r} to take the logic from")
        data_files = {"validation": str(Path(path).resolve())}
        if shots := (fewshot or {}).get(task):
            data_files["dev"] = str(Path(shots).resolve())
        config = {"include": str(index[task].yaml_path), "task": f"{task}_local", "tag": [],
                  "dataset_path": "json", "dataset_name": None, "dataset_kwargs": {"data_files": data_files},
                  "training_split": None, "validation_split": "validation", "test_split": None,
                  "fewshot_split": "dev" if "dev" in data_files else None}  # fmt: skip
        (folder / f"{task}_local.yaml").write_text(yaml.safe_dump(config))
        names.append(f"{task}_local")
    return names


def run_harness(scorer: CheckpointScorer, tasks: list[str], include_paths: list[Path] = (),
                limit: int | None = None, num_fewshot: int | None = None) -> dict[str, Any]:  # fmt: skip
    """lm-eval's `simple_evaluate` on the checkpoint: {"results": {task: {metric: value}}, "samples": ...}."""
    import lm_eval
    from lm_eval.tasks import TaskManager

    manager = TaskManager(include_path=[str(p) for p in include_paths] or None)
    return lm_eval.simple_evaluate(model=lm_class()(scorer), tasks=tasks, task_manager=manager, limit=limit,
                                   num_fewshot=num_fewshot, log_samples=True)  # fmt: skip
