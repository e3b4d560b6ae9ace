"""Parity with lm-evaluation-harness: its own task logic for HellaSwag, ARC-Easy, ARC-Challenge, PIQA,
Winogrande, MMLU (0 and 5 shots from the dev split), LAMBADA, BoolQ and COPA, and the multilingual
XCOPA, XNLI, PAWS-X, XStoryCloze, XWinograd, Belebele and Okapi's translated ARC and HellaSwag, run
through our LM wrapper on local JSONL slices, sends our prompts and gives the same per-item acc and
acc_norm as our evaluator."""

import json
import random

import pytest
import sentencepiece as spm
import torch

from model.benchmarks import item_results, last_word_results, make_request, score_requests, summarize
from model.gpt import GPT, GPTConfig
from model.items import load_arc, load_hellaswag, load_piqa
from tasks.benchmarks import BenchmarkConfig
from tasks.evaluate.harness import CheckpointScorer, local_tasks, run_harness, split_pair
from tests.conftest import prose

WORDS = ("café résumé naïve über straße niño crème brûlée déjà vu façade jalapeño smörgåsbord "
         "the a of to and in is it that was for on are with as his they at be this from").split()  # fmt: skip


def _phrase(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


def _write(path, rows):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    return path


def _hellaswag_row(rng: random.Random, i: int) -> dict:
    ctx_a, ctx_b = _phrase(rng, 8), _phrase(rng, 3)  # ctx_b starts lower-case: the harness capitalizes it
    return {"ind": i, "activity_label": "Cooking", "ctx_a": ctx_a, "ctx_b": ctx_b, "ctx": f"{ctx_a} {ctx_b}",
            "endings": [_phrase(rng, rng.randint(1, 6)) + (" [title] x" if i % 5 == 0 else "") for _ in range(4)],
            "label": str(rng.randrange(4)), "source_id": "x", "split": "val", "split_type": "indomain"}  # fmt: skip


def _arc_row(rng: random.Random, i: int) -> dict:
    return {"id": f"q{i}", "question": _phrase(rng, 7) + "?",
            "choices": {"text": [_phrase(rng, rng.randint(1, 4)) for _ in range(4)], "label": list("ABCD")},
            "answerKey": rng.choice("ABCD")}  # fmt: skip


def _mmlu_row(rng: random.Random) -> dict:
    return {"question": _phrase(rng, 7) + "? ", "subject": "astronomy",
            "choices": [_phrase(rng, rng.randint(1, 4)) for _ in range(4)], "answer": rng.randrange(4)}  # fmt: skip


def _sentence(rng: random.Random) -> str:
    return _phrase(rng, 3).capitalize() + ".  "


def _slices(tmp_path, n: int = 16):
    """Rows in each dataset's published (Hugging Face) shape; choices mix multi-byte and ASCII words, so
    normalizing by bytes instead of characters changes some decisions."""
    rng = random.Random(0)
    rows = {
        "hellaswag": [_hellaswag_row(rng, i) for i in range(n)],
        "arc_easy": [_arc_row(rng, i) for i in range(n)],
        "arc_challenge": [_arc_row(rng, i) for i in range(n)],
        "piqa": [{"goal": _phrase(rng, 6), "sol1": _phrase(rng, rng.randint(1, 5)),
                  "sol2": _phrase(rng, rng.randint(1, 5)), "label": rng.randrange(2)} for _ in range(n)],
        "winogrande": [{"sentence": f"{_phrase(rng, 4)} _ {_phrase(rng, 5)}.", "option1": _phrase(rng, 1),
                        "option2": _phrase(rng, 2), "answer": rng.choice("12")} for _ in range(n)],
        "mmlu_astronomy": [_mmlu_row(rng) for _ in range(n)],
        "lambada_openai": [{"text": _phrase(rng, rng.randint(8, 20))} for _ in range(n)],
        "boolq": [{"question": _phrase(rng, 5), "passage": _phrase(rng, 20), "idx": i, "label": rng.randrange(2)}
                  for i in range(n)],
        "copa": [{"premise": _sentence(rng), "choice1": _sentence(rng).strip(), "choice2": _sentence(rng).strip(),
                  "question": rng.choice(["cause", "effect"]), "idx": i, "label": rng.randrange(2)}
                 for i in range(n)],
    }  # fmt: skip
    thai = "เขา เปิด ประตู บ้าน แล้ว เห็น เพื่อน เก่า ของ".split()
    rows["xcopa_th"] = [
        {
            "premise": "".join(rng.choice(thai) for _ in range(6)) + ".",
            "choice1": _phrase(rng, 3),
            "choice2": _phrase(rng, 4),
            "question": rng.choice(["cause", "effect"]),
            "idx": i,
            "label": rng.randrange(2),
        }
        for i in range(n)
    ]
    rows["xstorycloze_ar"] = [
        {
            "story_id": f"s{i}",
            **{f"input_sentence_{k}": _phrase(rng, 5) for k in range(1, 5)},
            "sentence_quiz1": _phrase(rng, 4),
            "sentence_quiz2": _phrase(rng, 3),
            "answer_right_ending": rng.choice([1, 2]),
        }
        for i in range(n)
    ]
    rows["xwinograd_zh"] = [
        {
            "sentence": f"{_phrase(rng, 4)} _ {_phrase(rng, 3)}",
            "option1": _phrase(rng, 1),
            "option2": _phrase(rng, 1),
            "answer": rng.choice("12"),
        }
        for _ in range(n)
    ]
    rows["belebele_tha_Thai"] = [
        {
            "flores_passage": _phrase(rng, 20),
            "question": _phrase(rng, 6) + "?",
            **{f"mc_answer{k}": _phrase(rng, 2) for k in range(1, 5)},
            "correct_answer_num": str(rng.randint(1, 4)),
            "link": "x",
            "question_number": i,
        }
        for i in range(n)
    ]
    rows["xnli_th"] = [{"premise": "".join(rng.choice(thai) for _ in range(5)), "hypothesis": _phrase(rng, 4),
                        "label": rng.randrange(3)} for _ in range(n)]  # fmt: skip
    rows["paws_en"] = [{"id": i, "sentence1": _phrase(rng, 5) + (" ." if i % 2 else " ( x ) ;"),
                        "sentence2": _phrase(rng, 6).capitalize() + " n't .", "label": rng.randrange(2)}
                       for i in range(n)]  # fmt: skip
    rows["paws_zh"] = [{"id": i, "sentence1": "他 说 : " + _phrase(rng, 5) + (" ." if i % 2 else " ( x ) ;"),
                        "sentence2": _phrase(rng, 6).capitalize() + " n't .", "label": rng.randrange(2)}
                       for i in range(n)]  # fmt: skip
    rows["arc_vi"] = [{"id": f"v{i}", "instruction": _phrase(rng, 6) + " [title] x?",
                       **{f"option_{k}": _phrase(rng, rng.randint(1, 3)) for k in "abcd"},
                       "option_e": _phrase(rng, 2) if i % 3 == 0 else "", "answer": rng.choice("ABCD")}
                      for i in range(n)]  # fmt: skip
    rows["hellaswag_vi"] = [{**_hellaswag_row(rng, i), "label": " " + str(rng.randrange(4))} for i in range(n)]
    dev = _write(tmp_path / "mmlu_dev.jsonl", [_mmlu_row(rng) for _ in range(5)])
    return {task: _write(tmp_path / f"{task}.jsonl", r) for task, r in rows.items()}, {"mmlu_astronomy": dev}


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


@pytest.fixture(scope="module")
def wide_scorer(scorer):
    """The same tokenizer, a window of 1,024 tokens: 5-shot MMLU prompts fit whole, so a difference in
    the header or the shots changes the scores instead of being cut away."""
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=scorer.sp.vocab_size(), seq_len=1024, n_layer=2, n_head=2, n_embd=32)).eval()
    return CheckpointScorer(model, scorer.sp, batch_size=8)


def _benchmark(task: str, path, shots: int = 0, dev=None) -> BenchmarkConfig:
    xcopa = task.startswith("xcopa_")
    worded = task.startswith(("xcopa_", "xnli_", "paws_"))  # prompts in the file's language's words
    return BenchmarkConfig(name=task, path=str(path), shots=shots, fewshot_path=dev and str(dev),
                           format="xcopa" if xcopa else "auto", language=task[-2:] if worded else None)  # fmt: skip


def _harness_pairs(sample: dict) -> list[tuple[str, str]]:
    return [tuple(a[:2]) for a in sample["arguments"]]


def _ours_pairs(item) -> list[tuple[str, str]]:
    return [(item.context_of(i), c) for i, c in enumerate(item.choices)]


@pytest.mark.slow
@pytest.mark.parametrize("shots", [0, 5])
def test_harness_task_logic_gives_our_prompts_and_accuracies(tmp_path, wide_scorer, shots):
    """Nine tasks and nine multilingual ones (XCOPA and XNLI in Thai, PAWS-X in Chinese and English,
    XStoryCloze, XWinograd, Belebele, Okapi's translated ARC and HellaSwag): the harness's own task
    logic over the same files sends exactly
    our (context, continuation) pairs and scores exactly our acc and acc_norm (5-shot: MMLU, shots from
    its dev split)."""
    from tasks.evaluate.config import EvaluateConfig
    from tasks.evaluate.scoring import load_benchmarks

    files, dev = _slices(tmp_path)
    if shots:
        files = {"mmlu_astronomy": files["mmlu_astronomy"]}
    tasks = local_tasks({k: str(v) for k, v in files.items()}, tmp_path / "tasks", {k: str(v) for k, v in dev.items()})
    out = run_harness(wide_scorer, tasks, include_paths=[tmp_path / "tasks"], num_fewshot=shots)
    cfg = EvaluateConfig(benchmarks=[_benchmark(t, p, shots, dev.get(t)) for t, p in files.items()])
    for task, items in zip(files, load_benchmarks(cfg), strict=True):
        samples = sorted(out["samples"][f"{task}_local"], key=lambda s: s["doc_id"])
        assert [_harness_pairs(s) for s in samples] == [_ours_pairs(i) for i in items], task
        if items[0].kind == "lm":
            ours = last_word_results(wide_scorer.model, wide_scorer.encode, items)
        else:
            ours = item_results(wide_scorer.model, wide_scorer.encode, items, batch_size=8)
        for metric in ("acc", "acc_norm"):
            if metric in samples[0]:
                assert [s[metric] for s in samples] == [r[metric] for r in ours], (task, metric)
    if shots:
        first = load_benchmarks(cfg)[0][0].context_of(0)
        assert first.startswith("The following are multiple choice questions (with answers) about astronomy.\n\n")
        assert first.count("\nAnswer:") == 6  # five dev shots, then the question


@pytest.mark.slow
def test_harness_log_likelihoods_are_ours(tmp_path, scorer):
    files, _ = _slices(tmp_path)
    files = {t: files[t] for t in ("hellaswag", "arc_easy", "piqa")}
    tasks = local_tasks({k: str(v) for k, v in files.items()}, tmp_path / "tasks")
    out = run_harness(scorer, tasks, include_paths=[tmp_path / "tasks"])
    sensitive = 0
    for task, path in files.items():
        items = LOADERS[task](path, task)
        ours = item_results(scorer.model, scorer.encode, items, batch_size=8)
        samples = sorted(out["samples"][f"{task}_local"], key=lambda s: s["doc_id"])
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


LOADERS = {"hellaswag": load_hellaswag, "arc_easy": load_arc, "piqa": load_piqa}


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
