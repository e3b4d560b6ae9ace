"""The benchmark files teams have on disk: each format read into the items the harness would score,
recognised with `format: auto`, and refused with a clear error (before any work) when mislabelled."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from flows.cli import app
from model.benchmarks import continuation_logprob, continuous, item_results
from model.gpt import GPT, GPTConfig
from model.item_formats import FormatError, check, detect, load


def _jsonl(path: Path, rows: list[dict]) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def test_icl_formats(tmp_path):
    mc = _jsonl(tmp_path / "mc.jsonl", [{"query": "Q: 2+2?\nA:", "choices": ["4", "5"], "gold": 0}])
    schema = _jsonl(tmp_path / "schema.jsonl", [{"context_options": ["The cat", "The dog"], "continuation": "barked.",
                                                   "gold": 1}])  # fmt: skip
    lm = _jsonl(tmp_path / "lm.jsonl", [{"context": "The capital of France is", "continuation": " Paris"}])
    assert [detect(p) for p in (mc, schema, lm)] == ["icl_mc", "icl_schema", "icl_lm"]
    [item] = load(mc, "auto", "mc")
    assert item.context == "Q: 2+2?\nA:" and item.choices == [" 4", " 5"] and item.label == 0
    [item] = load(schema, "auto", "schema")
    assert (
        item.contexts == ["The cat", "The dog"]
        and item.choices == [" barked."] * 2
        and item.gold() == "The dog barked."
    )
    [item] = load(lm, "auto", "lm")
    assert item.kind == "lm" and item.choices == [" Paris"]


def test_mmlu_csv_both_releases_and_a_directory(tmp_path):
    (tmp_path / "mmlu").mkdir()
    (tmp_path / "mmlu" / "astronomy_test.csv").write_text('"What orbits the Earth?",Moon,Sun,Mars,Venus,A\n')
    (tmp_path / "headed.csv").write_text("question,choice0,choice1,choice2,choice3,answer\nWhich is even?,1,3,4,5,2\n")
    [a] = load(tmp_path / "mmlu", "auto", "mmlu")
    assert a.context == "What orbits the Earth?\nA. Moon\nB. Sun\nC. Mars\nD. Venus\nAnswer:"
    assert a.choices == [" A", " B", " C", " D"] and a.label == 0 and a.item_id == "astronomy_test:0"
    assert a.context_of(0).startswith("The following are multiple choice questions (with answers) about astronomy.\n\n")
    [b] = load(tmp_path / "headed.csv", "mmlu", "mmlu")
    assert b.label == 2


def test_mmlu_shots_come_from_the_dev_split_beside_the_test_one(tmp_path):
    from tasks.benchmarks import BenchmarkConfig
    from tasks.evaluate.config import EvaluateConfig
    from tasks.evaluate.scoring import load_benchmarks

    for split, n in (("test", 3), ("dev", 5)):
        (tmp_path / "data" / split).mkdir(parents=True)
        rows = "".join(f'"{split} question {i}?",w,x,y,z,{"ABCD"[i % 4]}\n' for i in range(n))
        (tmp_path / "data" / split / f"high_school_physics_{split}.csv").write_text(rows)
    bench = BenchmarkConfig(name="mmlu", path=str(tmp_path / "data" / "test"), shots=2)
    assert bench.shot_source() == (str(tmp_path / "data" / "dev"), True)
    [items] = load_benchmarks(EvaluateConfig(benchmarks=[bench]))
    prompt = items[2].context_of(0)
    assert prompt.startswith("The following are multiple choice questions (with answers) about high school physics.")
    # The first two dev questions, in order, solved; never a test question.
    assert "dev question 0?" in prompt and "dev question 1?\nA. w\nB. x\nC. y\nD. z\nAnswer: B\n\n" in prompt
    assert "dev question 2" not in prompt and prompt.count("test question") == 1


def test_winogrande_scores_the_rest_of_the_sentence_after_each_option(tmp_path):
    path = _jsonl(tmp_path / "wg.jsonl", [{"qID": "x1", "sentence": "Sam gave Pat a gift because _ was generous.",
                                             "option1": "Sam", "option2": "Pat", "answer": "1"}])  # fmt: skip
    [item] = load(path, "auto", "winogrande")
    assert item.contexts == ["Sam gave Pat a gift because Sam", "Sam gave Pat a gift because Pat"]
    assert item.choices == [" was generous."] * 2 and item.label == 0


def test_lambada_boolq_copa_siqa_and_the_ai2_shapes(tmp_path):
    lines = tmp_path / "lambada.txt"
    lines.write_text("he opened the door and saw his old friend\n")
    [lam] = load(str(lines), "auto", "lambada")
    assert lam.kind == "lm" and lam.context == "he opened the door and saw his old" and lam.choices == [" friend"]
    boolq = _jsonl(tmp_path / "boolq.jsonl", [{"question": "is water wet", "passage": "Water is wet.", "answer": True}])
    [b] = load(boolq, "auto", "boolq")
    assert b.context.endswith("Question: is water wet?\nAnswer:") and b.choices == [" no", " yes"] and b.label == 1
    row = {"premise": "The man broke his toe.", "choice1": "He dropped a hammer.", "choice2": "He wore shoes.",
           "question": "cause", "label": 0}  # fmt: skip
    copa = _jsonl(tmp_path / "copa.jsonl", [row])
    [c] = load(copa, "auto", "copa")
    # The harness's COPA: the premise's full stop dropped, two spaces before a choice (its own and the delimiter).
    assert c.context == "The man broke his toe because" and c.choices[0] == "  he dropped a hammer."
    siqa = _jsonl(tmp_path / "dev.jsonl", [{"context": "Tracy fed the cat.", "question": "Why?", "answerA": "hungry",
                                            "answerB": "bored", "answerC": "asleep"}])  # fmt: skip
    (tmp_path / "dev-labels.lst").write_text("1\n")
    [s] = load(siqa, "auto", "siqa")
    assert s.label == 0 and len(s.choices) == 3
    obqa = _jsonl(tmp_path / "obqa.jsonl", [{"id": "7", "question": {"stem": "Sun is a", "choices": [
        {"text": "star", "label": "A"}, {"text": "planet", "label": "B"}]}, "answerKey": "A"}])  # fmt: skip
    assert detect(obqa) == "arc" and load(obqa, "openbookqa", "obqa")[0].label == 0


def test_a_file_in_the_wrong_format_names_the_fields(tmp_path):
    path = _jsonl(tmp_path / "wg.jsonl", [{"sentence": "a _ b", "option1": "x", "option2": "y", "answer": "1"}])
    with pytest.raises(FormatError, match=r"first row has the fields \['answer', 'option1'.*hellaswag needs"):
        check(path, "hellaswag")
    hellaswag = _jsonl(tmp_path / "hs.jsonl", [{"ctx": "a", "endings": ["b", "c"], "label": 0}])
    with pytest.raises(FormatError, match=r"is not mmlu: it is JSONL with the fields \['ctx', 'endings', 'label'\]"):
        check(hellaswag, "mmlu")
    prose_file = tmp_path / "lambada.txt"
    prose_file.write_text("the last word of this sentence is here\n")
    with pytest.raises(FormatError, match="is not piqa: it is plain text"):
        check(prose_file, "piqa")
    odd = _jsonl(tmp_path / "odd.jsonl", [{"foo": 1}])
    with pytest.raises(FormatError, match=r"no known benchmark format has the fields \['foo'\]"):
        detect(odd)
    work = tmp_path / "work"
    benchmarks = json.dumps([{"name": "h", "format": "hellaswag", "path": path}])
    result = CliRunner().invoke(app, ["run", "--workdir", str(work), "--set", f"evaluate.benchmarks={benchmarks}"])
    assert result.exit_code == 2 and "hellaswag needs" in result.output, result.output
    assert not work.exists()


def test_schema_items_score_each_context_and_continuous_metrics_are_a_softmax():
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=128, seq_len=64, n_layer=1, n_head=2, n_embd=32)).eval()
    encode = lambda text: [ord(c) % 128 for c in text]  # noqa: E731
    from model.items import Item

    item = Item("s", "0", "ab", [" z", " z"], 1, contexts=["ab", "cd"])
    [result] = item_results(model, encode, [item])
    scores = [continuation_logprob(model, encode, ctx, " z")[0] for ctx in ("ab", "cd")]
    assert result["acc"] == float(scores[1] > scores[0])
    expected = math.exp(scores[1]) / (math.exp(scores[0]) + math.exp(scores[1]))
    assert result["p_correct"] == pytest.approx(expected) and result["margin"] == pytest.approx(scores[1] - scores[0])
    assert continuous([0.0, 0.0, 0.0], 2)["p_correct"] == pytest.approx(1 / 3)


def test_batched_scoring_gives_the_one_at_a_time_log_likelihoods():
    from model.benchmarks import make_request, score_requests

    torch.manual_seed(1)
    model = GPT(GPTConfig(vocab_size=128, seq_len=48, n_layer=2, n_head=2, n_embd=32)).eval()
    encode = lambda text: [ord(c) % 128 for c in text]  # noqa: E731
    pairs = [("short", " a"), ("a much longer context about things", " and a longer continuation"),
             ("x" * 200, " truncated from the left"), ("Answer:", " A"), ("Answer:", " B"),
             ("", " empty context")]  # fmt: skip
    batched = score_requests(model, [make_request(encode, c, k, model.cfg.seq_len) for c, k in pairs], batch_size=4)
    for (context, continuation), (logprob, greedy) in zip(pairs, batched, strict=True):
        one_lp, one_greedy = continuation_logprob(model, encode, context, continuation)
        assert abs(logprob - one_lp) < 1e-4 and greedy == one_greedy, (context[:20], logprob, one_lp)


def test_the_core_suite_lists_every_missing_file_at_once_and_loads_what_is_there(tmp_path):
    from tasks.config import ConfigError, load_config
    from tasks.suites import SUITES

    with pytest.raises(ConfigError, match=r"12 file\(s\) not found under .*agi_eval_lsat_ar.jsonl, arc_challenge"):
        load_config(None, ["evaluate.suite=core", f"evaluate.suite_dir={tmp_path}"])
    mc = {"query": "Q?", "choices": ["a", "b", "c", "d"], "gold": 0}
    for _, _, file in SUITES["core"]:
        sub = tmp_path / ("commonsense_reasoning" if "qa" in file else "other")  # llm-foundry's subfolders
        sub.mkdir(exist_ok=True)
        if file in ("lambada_openai.jsonl",):
            _jsonl(sub / file, [{"context": "a b c", "continuation": " d"}])
        elif file in ("winograd_wsc.jsonl", "winogrande.jsonl"):
            _jsonl(sub / file, [{"context_options": ["x", "y"], "continuation": "z", "gold": 1}])
        else:
            _jsonl(sub / file, [mc])
    cfg = load_config(None, ["evaluate.suite=core", f"evaluate.suite_dir={tmp_path}"])
    names = [b.name for b in cfg.evaluate.benchmarks]
    assert len(names) == 13 and "hellaswag_10shot" in names
    assert {b.name: b.shots for b in cfg.evaluate.benchmarks}["arc_easy"] == 10
    assert [b.name for b in cfg.stage("tokenize").eval_benchmarks] == names  # decontaminated against them too
    again = type(cfg).model_validate(cfg.model_dump(mode="json"))  # a dumped config does not add them twice
    assert len(again.evaluate.benchmarks) == 13


def test_centered_accuracy_is_zero_at_chance_and_one_when_perfect():
    from tasks.evaluate.scoring import centered_accuracy

    items = {"a": [{"acc": float(i % 4 == 0)} for i in range(40)], "b": [{"acc": 1.0}] * 10,
             "lm": [{"acc": float(i < 4)} for i in range(10)]}  # fmt: skip
    core = centered_accuracy({"a": {"acc": 0.25, "acc_norm": 0.25, "chance": 0.25},
                              "b": {"acc": 1.0, "acc_norm": 1.0, "chance": 0.5},
                              "lm": {"acc": 0.4, "chance": 1e-4}}, items, seed=0)  # fmt: skip
    assert core["centered.a"] == 0.0 and core["centered.b"] == 1.0 and core["centered.lm"] == 0.4
    assert core["acc"] == pytest.approx((0.0 + 1.0 + 0.4) / 3) and core["n"] == 3
    lo, hi = core["acc_ci"]
    assert lo < core["acc"] < hi and hi - lo > 0.05  # the items' sampling error carries into the aggregate
    # DCLM's v1 table centers BoolQ on 0.62 (its majority answer), not 1/2; "measured" takes the task's own.
    boolq = {"boolq": {"acc": 0.62, "acc_norm": 0.6, "chance": 0.5, "baseline": 0.55}}
    items62 = {"boolq": [{"acc": float(i < 62)} for i in range(100)]}
    assert centered_accuracy(boolq, items62, 0, "v1")["acc"] == pytest.approx(0.0)
    assert centered_accuracy(boolq, items62, 0, "chance")["acc"] == pytest.approx(0.24)
    measured = centered_accuracy(boolq, items62, 0, "measured")
    assert measured["acc"] == pytest.approx(0.07 / 0.45) and "majority" in measured["baselines"]


def test_core_reads_a_baselines_table_in_dclms_layout(tmp_path):
    from tasks.evaluate.config import EvaluateConfig
    from tasks.evaluate.scoring import centered_accuracy

    # A corrected table (BoolQ at 1/2, as the 2025 correction has it) under DCLM's names and columns.
    table = tmp_path / "eval_meta_data.csv"
    table.write_text("Eval Task,Task Category,Random baseline\nboolq,reading,50\nhellaswag,language,25\n")
    boolq = {"boolq": {"acc": 0.62, "acc_norm": 0.6, "chance": 0.5, "baseline": 0.62},
             "hellaswag_10shot": {"acc": 0.25, "acc_norm": 0.3, "chance": 0.2, "baseline": 0.3}}  # fmt: skip
    items = {"boolq": [{"acc": float(i < 62)} for i in range(100)], "hellaswag_10shot": [{"acc": 0.25}] * 4}
    core = centered_accuracy(boolq, items, 0, "v1", str(table))
    assert core["centered.boolq"] == pytest.approx(0.24) and core["centered.hellaswag_10shot"] == 0.0
    assert core["baselines"].startswith("eval_meta_data.csv (sha256 ")  # the file named with its digest
    # A stated normalisation is what CORE centres (here acc_norm, per character).
    normed = centered_accuracy({"boolq": {**boolq["boolq"], "stated": "acc_norm"}},
                               {"boolq": [{"acc_norm": 0.6}] * 5}, 0, "chance")  # fmt: skip
    assert normed["acc"] == pytest.approx(0.2)
    bad = tmp_path / "bad.csv"
    bad.write_text("task,baseline\nboolq,50\n")
    with pytest.raises(ValueError, match="Eval Task"):
        EvaluateConfig(core_baselines_file=str(bad))


def test_baselines_name_the_majority_answer_and_a_constant_predictor():
    from model.benchmarks import summarize
    from tasks.evaluate.scoring import with_intervals

    # BoolQ-like: 62 of 100 answers are "yes" (position 1); the model always says yes.
    results = [{"choices": 2, "gold": int(i < 62), "pred": 1, "pred_norm": i % 2, "acc": float(i < 62),
                "acc_norm": float((i % 2) == int(i < 62)), "p_correct": 0.5, "margin": 0.0, "logprob_norm": -1.0}
               for i in range(100)]  # fmt: skip
    summary = with_intervals(summarize(results), results, seed=0)
    assert summary["majority"] == 0.62 and summary["baseline"] == 0.62 and summary["chance"] == 0.5
    assert summary["acc_constant"] == "picks choice B for 100/100" and "acc_norm_constant" not in summary
    assert summary["acc_at_chance"]  # 0.62 is the majority answer, not above it
    better = [{**r, "pred": r["gold"], "acc": 1.0} for r in results]
    assert not with_intervals(summarize(better), better, seed=0)["acc_at_chance"]


def test_a_suite_with_missing_files_skips_them_when_asked(tmp_path):
    from tasks.evaluate.config import EvaluateConfig

    (tmp_path / "copa.jsonl").write_text(json.dumps({"query": "q", "choices": ["a", "b"], "gold": 0}) + "\n")
    with pytest.raises(ValueError, match="11 file"):
        EvaluateConfig(suite="core", suite_dir=str(tmp_path))
    with pytest.warns(UserWarning, match="left out"):
        cfg = EvaluateConfig(suite="core", suite_dir=str(tmp_path), skip_missing=True)
    assert [b.name for b in cfg.benchmarks] == ["copa"]


def test_olmes_formulations_and_a_seeded_sample(tmp_path):
    from tasks.benchmarks import BenchmarkConfig
    from tasks.evaluate.config import EvaluateConfig
    from tasks.evaluate.scoring import load_benchmarks

    rows = [{"id": f"q{i}", "question": f"Which is number {i}?",
             "choices": {"text": [f"one {i}", f"two {i}", f"three {i}"], "label": list("ABC")}, "answerKey": "B"}
            for i in range(50)]  # fmt: skip
    arc = _jsonl(tmp_path / "arc.jsonl", rows)
    bench = BenchmarkConfig(name="arc", path=str(arc), formulation="both", sample=20)
    cloze, mc = load_benchmarks(EvaluateConfig(benchmarks=[bench], seed=3))
    assert [i.task for i in cloze[:1] + mc[:1]] == ["arc:cloze", "arc:mc"] and len(cloze) == len(mc) == 20
    assert [i.item_id for i in cloze] == [i.item_id for i in mc] != [f"q{i}" for i in range(20)]  # drawn, in order
    assert cloze[0].choices[1].startswith(" two ") and cloze[0].context.startswith("Question: Which is number")
    assert mc[0].context.endswith(
        " A. one "
        + mc[0].item_id[1:]
        + "\n B. two "
        + mc[0].item_id[1:]
        + "\n C. three "
        + mc[0].item_id[1:]
        + "\nAnswer:"
    )
    assert mc[0].choices == [" A", " B", " C"] and mc[0].label == 1
    again = load_benchmarks(EvaluateConfig(benchmarks=[bench], seed=3))[0]
    assert [i.item_id for i in again] == [i.item_id for i in cloze]  # the same seed, the same items
    olmes = load_benchmarks(EvaluateConfig(benchmarks=[bench], seed=1234))[0]
    assert {i.item_id for i in olmes} == {r["id"] for r in random.Random(1234).sample(rows, 20)}  # OLMES's draw
    wino = _jsonl(tmp_path / "wg.jsonl", [{"sentence": "A _ b.", "option1": "x", "option2": "y", "answer": "1"}])
    with pytest.raises(ValueError, match="needs a format with options"):
        BenchmarkConfig(name="wg", path=str(wino), formulation="mc")


def test_rank_stability_is_one_when_seeds_agree_and_near_half_for_noise():
    import numpy as np

    from tasks.comparison import rank_stability

    assert rank_stability([[1.0, 1.1, 0.9], [2.0, 2.2, 1.9], [3.0, 2.9, 3.1]]) == 1.0
    noise = np.random.default_rng(0).normal(size=(4, 12)).tolist()
    assert 0.35 < rank_stability(noise) < 0.65


def test_multilingual_formats_and_the_multilingual_suite(tmp_path):
    from tasks.benchmarks import BenchmarkConfig
    from tasks.evaluate.config import EvaluateConfig

    suite = tmp_path / "suite"
    suite.mkdir()
    xcopa = _jsonl(suite / "xcopa_th.jsonl", [{"premise": "ฝนตกหนัก.", "choice1": "ถนนเปียก", "choice2": "แดดออก",
                                              "question": "effect", "label": 0, "idx": 1}])  # fmt: skip
    (suite / "mmlu_ZH_CN.csv").write_text(
        ",Question,A,B,C,D,Answer,Subject\n0,水的沸点是多少?,90,100,110,120,B,physics\n"
    )
    answers = {f"mc_answer{k}": letter for k, letter in enumerate("กขคง", start=1)}
    row = {"flores_passage": "ข้อความ", "question": "อะไร", **answers, "correct_answer_num": "3", "link": "l",
           "question_number": 1}  # fmt: skip
    _jsonl(suite / "belebele_tha_Thai.jsonl", [row])
    xnli = _jsonl(suite / "xnli_th.jsonl", [{"premise": "ฝนตก", "hypothesis": "ถนนเปียก", "label": 0}])
    pairs = [{"id": 3, "sentence1": "他来了 .", "sentence2": "He came ( today ) .", "label": 1},
             {"id": 4, "sentence1": "", "sentence2": "x", "label": 0}]  # fmt: skip
    paws = _jsonl(suite / "paws_zh.jsonl", pairs)
    m_arc = _jsonl(suite / "arc_vi.jsonl", [{"id": "a1", "instruction": "Cái gì [title] nóng?", "option_a": "lửa",
                                              "option_b": "đá", "option_c": "", "answer": "A"}])  # fmt: skip
    [arc] = load(m_arc, "auto", "arc_vi")
    assert detect(m_arc) == "okapi_arc" and arc.context == "Question: Cái gì. nóng?\nAnswer:"
    assert arc.choices == [" lửa", " đá"] and arc.label == 0  # an empty option is left out
    [nli] = load(xnli, "auto", "xnli_th", language="th")
    assert detect(xnli) == "xnli" and nli.context == "" and nli.label == 0
    assert nli.choices == [" ฝนตก, ถูกต้อง? ใช่, ถนนเปียก", " ฝนตก, ถูกต้อง? ดังนั้น, ถนนเปียก", " ฝนตก, ถูกต้อง? ไม่, ถนนเปียก"]
    [pair] = load(paws, "auto", "paws_en", language="en")  # English is cleaned; an empty pair left out
    assert pair.choices == ["他来了, right? No, he came (today).", "他来了, right? Yes, he came (today)."]
    assert load(paws, "auto", "paws_zh", language="zh")[0].choices[1] == "他来了 ., 对吧? 是, He came ( today ) ."
    with pytest.raises(ValueError, match="pawsx needs `language`, one of de, en"):
        BenchmarkConfig(name="p", path=str(paws), language="th")
    with pytest.raises(ValueError, match="xcopa needs `language`"):
        BenchmarkConfig(name="x", path=str(xcopa), format="xcopa")
    [item] = load(xcopa, "xcopa", "xcopa_th", language="th")
    assert item.context == "ฝนตกหนัก ดังนั้น" and item.choices == [" ถนนเปียก", " แดดออก"]  # the harness's Thai "therefore"
    [q] = load(suite / "mmlu_ZH_CN.csv", "auto", "mmmlu_zh_cn")
    assert detect(suite / "mmlu_ZH_CN.csv") == "translated_mmlu" and q.label == 1 and "A. 90\nB. 100" in q.context
    with pytest.warns(UserWarning, match="left out"):
        cfg = EvaluateConfig(suite="multilingual", suite_dir=str(suite), skip_missing=True)
    found = {b.name: b for b in cfg.benchmarks}
    assert set(found) == {"xcopa_th", "belebele_tha_Thai", "mmmlu_zh_cn", "xnli_th", "paws_zh"}
    assert found["xcopa_th"].format == "xcopa" and found["belebele_tha_Thai"].language == "th"
    assert found["mmmlu_zh_cn"].language == "zh" and found["paws_zh"].language == "zh"
