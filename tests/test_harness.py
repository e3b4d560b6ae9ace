"""Parity with lm-evaluation-harness: its own HellaSwag, ARC-Easy and PIQA task logic, run through our
LM wrapper on local JSONL slices, gives the same per-item acc and acc_norm as our evaluator."""

import json
import random

import pytest
import sentencepiece as spm
import torch

from model.benchmarks import item_results, make_request, score_requests, summarize
from model.gpt import GPT, GPTConfig
from model.items import load_arc, load_hellaswag, load_piqa
from tasks.evaluate.harness import CheckpointScorer, local_tasks, run_harness, split_pair
from tests.conftest import prose

WORDS = ("café résumé naïve über straße niño crème brûlée déjà vu façade jalapeño smörgåsbord "
         "the a of to and in is it that was for on are with as his they at be this from").split()  # fmt: skip


def _phrase(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


def _write(path, rows):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    return path


def _slices(tmp_path, n: int = 16):
    """Rows in each dataset's published (Hugging Face) shape; choices mix multi-byte and ASCII words, so
    normalizing by bytes instead of characters changes some decisions."""
    rng = random.Random(0)
    hellaswag = [{"ind": i, "activity_label": "Cooking", "ctx_a": _phrase(rng, 8), "ctx_b": _phrase(rng, 3),
                  "ctx": "", "endings": [_phrase(rng, rng.randint(1, 6)) for _ in range(4)],
                  "label": str(rng.randrange(4)), "source_id": "x", "split": "val", "split_type": "indomain"}
                 for i in range(n)]  # fmt: skip
    arc = [{"id": f"q{i}", "question": _phrase(rng, 7) + "?",
            "choices": {"text": [_phrase(rng, rng.randint(1, 4)) for _ in range(4)], "label": list("ABCD")},
            "answerKey": rng.choice("ABCD")} for i in range(n)]  # fmt: skip
    piqa = [{"goal": _phrase(rng, 6), "sol1": _phrase(rng, rng.randint(1, 5)), "sol2": _phrase(rng, rng.randint(1, 5)),
             "label": rng.randrange(2)} for _ in range(n)]  # fmt: skip
    return {"hellaswag": _write(tmp_path / "hs.jsonl", hellaswag), "arc_easy": _write(tmp_path / "arc.jsonl", arc),
            "piqa": _write(tmp_path / "piqa.jsonl", piqa)}  # fmt: skip


@pytest.fixture(scope="module")
def scorer(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sp")
    corpus = folder / "corpus.txt"
    rng = random.Random(1)
    corpus.write_text("\n".join([prose(20), *(_phrase(rng, 12) for _ in range(400))]))
    spm.SentencePieceTrainer.train(input=str(corpus), model_prefix=str(folder / "sp"), vocab_size=300,
                                   character_coverage=1.0, model_type="bpe")  # fmt: skip
    sp = spm.SentencePieceProcessor(model_file=str(folder / "sp.model"))
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=sp.vocab_size(), seq_len=64, n_layer=2, n_head=2, n_embd=32)).eval()
    return CheckpointScorer(model, sp, batch_size=8)


LOADERS = {"hellaswag": load_hellaswag, "arc_easy": load_arc, "piqa": load_piqa}


@pytest.mark.slow
def test_harness_task_logic_gives_our_accuracies(tmp_path, scorer):
    files = _slices(tmp_path)
    tasks = local_tasks({k: str(v) for k, v in files.items()}, tmp_path / "tasks")
    out = run_harness(scorer, tasks, include_paths=[tmp_path / "tasks"])
    sensitive = 0
    for task, path in files.items():
        items = LOADERS[task](path, task)
        ours = item_results(scorer.model, scorer.encode, items, batch_size=8)
        samples = sorted(out["samples"][f"{task}_local"], key=lambda s: s["doc_id"])
        assert [s["acc"] for s in samples] == [r["acc"] for r in ours], task
        assert [s["acc_norm"] for s in samples] == [r["acc_norm"] for r in ours], task
        summary, theirs = summarize(ours), out["results"][f"{task}_local"]
        assert theirs["acc,none"] == pytest.approx(summary["acc"]) and theirs["acc_norm,none"] == pytest.approx(
            summary["acc_norm"]
        )
        # The log-likelihoods themselves agree (same token split, same model).
        for sample, item in zip(samples, items, strict=True):
            harness_lls = [resp[0][0] for resp in sample["resps"]]
            mine = score_requests(
                scorer.model, [make_request(scorer.encode, item.context, c, 64) for c in item.choices]
            )
            assert harness_lls == pytest.approx([lp for lp, _ in mine], abs=1e-4)
            by_bytes = max(range(len(mine)), key=lambda i: mine[i][0] / len(item.choices[i].encode()))
            by_chars = max(range(len(mine)), key=lambda i: mine[i][0] / len(item.choices[i][1:]))
            sensitive += by_bytes != by_chars
    assert sensitive > 0  # the slices do tell per-byte from per-character normalization apart


def test_trailing_context_whitespace_moves_to_the_continuation(scorer):
    assert split_pair("Question: x\nAnswer: ", "B") == ("Question: x\nAnswer:", " B")
    [(moved, _)] = scorer.loglikelihood([("the café ", "is")])
    [(plain, _)] = scorer.loglikelihood([("the café", " is")])
    assert moved == plain


def test_rolling_loglikelihood_scores_every_token_once(scorer, monkeypatch):
    import torch.nn.functional as F

    import tasks.evaluate.harness as harness

    short = " ".join(WORDS[:6])
    tokens = [scorer.start_id, *scorer.encode(short)]
    with torch.no_grad():
        logprobs = F.log_softmax(scorer.model(torch.tensor([tokens[:-1]]))[0][0], dim=-1)
    by_hand = float(logprobs.gather(1, torch.tensor(tokens[1:])[:, None]).sum())
    assert scorer.rolling(short) == pytest.approx(by_hand, abs=1e-4)
    seen = []
    real = harness.score_requests
    monkeypatch.setattr(harness, "score_requests", lambda model, rs, b: seen.extend(rs) or real(model, rs, b))
    long = " ".join(WORDS * 4)
    n = len(scorer.encode(long))
    assert n > 2 * scorer.seq_len
    scorer.rolling(long)
    assert sum(r.n_cont for r in seen) == n and all(len(r.tokens) <= scorer.seq_len + 1 for r in seen)
    assert all(len(r.tokens) == scorer.seq_len + 1 for r in seen[1:])  # later windows get a full context
