import json
import random

import pyarrow as pa
import pytest
import torch
import torch.nn.functional as F

from model.benchmarks import UNCONDITIONED, continuation_logprob, item_results, score_items
from model.builtin_tasks import cloze_items, last_word_items
from model.config import TrainConfig
from model.gpt import GPT, GPTConfig
from model.items import Item, load_arc, load_generic, load_hellaswag, load_piqa, with_few_shot
from model.trainer import train
from storage.shards import write_parquet
from tests.conftest import prose


def char_encode(text: str) -> list[int]:
    return [ord(c) % 128 for c in text]


def _write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_loaders_read_the_published_formats(tmp_path):
    hs = load_hellaswag(_write_jsonl(tmp_path / "hs.jsonl", [{
        "ind": 7, "activity_label": "Baking cookies", "ctx_a": "A woman puts dough on a tray.",
        "ctx_b": "she", "endings": ["bakes it [title] in the oven.", "eats the tray.", "sings.", "leaves."],
        "label": "0"}]))  # fmt: skip
    assert hs[0].context == "Baking cookies: A woman puts dough on a tray. She"
    assert hs[0].choices[0] == " bakes it. in the oven." and hs[0].label == 0 and hs[0].item_id == "7"
    arc_ai2 = load_arc(_write_jsonl(tmp_path / "arc.jsonl", [{
        "id": "q1", "question": {"stem": "Which is a metal?", "choices": [
            {"text": "wood", "label": "A"}, {"text": "iron", "label": "B"}]}, "answerKey": "B"}]))  # fmt: skip
    arc_flat = load_arc(_write_jsonl(tmp_path / "arc2.jsonl", [{
        "id": "q2", "question": "Which is a gas?", "choices": {"text": ["air", "rock"], "label": ["1", "2"]},
        "answerKey": "1"}]))  # fmt: skip
    assert arc_ai2[0].context == "Question: Which is a metal?\nAnswer:" and arc_ai2[0].label == 1
    assert arc_ai2[0].choices == [" wood", " iron"] and arc_flat[0].label == 0
    piqa_path = _write_jsonl(
        tmp_path / "valid.jsonl", [{"goal": "Open a jar", "sol1": "twist the lid", "sol2": "eat it"}]
    )
    (tmp_path / "valid-labels.lst").write_text("0\n")
    piqa = load_piqa(piqa_path)
    assert piqa[0].label == 0 and piqa[0].choices == [" twist the lid", " eat it"]
    generic = load_generic(
        _write_jsonl(tmp_path / "g.jsonl", [{"context": "2+2=", "choices": ["4", " 5"], "label": 0}])
    )
    assert generic[0].choices == [" 4", " 5"]


def test_piqa_without_labels_is_a_clear_error(tmp_path):
    path = _write_jsonl(tmp_path / "test.jsonl", [{"goal": "g", "sol1": "a", "sol2": "b"}])
    with pytest.raises(ValueError, match="test-labels.lst"):
        load_piqa(path)


def test_log_likelihood_matches_a_hand_computation():
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=128, seq_len=32, n_layer=1, n_head=2, n_embd=32)).eval()
    context, continuation = "the cat", " sat"
    score, greedy = continuation_logprob(model, char_encode, context, continuation)
    tokens = char_encode(context + continuation)
    with torch.no_grad():
        logits, _ = model(torch.tensor([tokens[:-1]]))
    logprobs = F.log_softmax(logits[0], dim=-1)
    expected = sum(float(logprobs[i - 1, tokens[i]]) for i in range(len(context), len(tokens)))
    assert score == pytest.approx(expected, abs=1e-5)
    argmax = [int(logprobs[i - 1].argmax()) for i in range(len(context), len(tokens))]
    assert greedy == (argmax == tokens[len(context) :])


def test_per_token_and_pmi_accuracy_match_a_hand_computation():
    torch.manual_seed(1)
    model = GPT(GPTConfig(vocab_size=128, seq_len=64, n_layer=1, n_head=2, n_embd=32)).eval()
    items = [Item("t", str(i), f"Question: q{i}?\nAnswer:", [" yes", " no way", " e", " maybe so"], i % 4)
             for i in range(8)]  # fmt: skip
    results = item_results(model, char_encode, items, pmi=True)
    differ = 0
    for item, r in zip(items, results, strict=True):
        cond = [continuation_logprob(model, char_encode, item.context, c)[0] for c in item.choices]
        alone = [continuation_logprob(model, char_encode, UNCONDITIONED, c)[0] for c in item.choices]
        per_token = [s / len(char_encode(c)) for s, c in zip(cond, item.choices, strict=True)]
        pmi = [s - u for s, u in zip(cond, alone, strict=True)]
        assert r["acc_token"] == float(max(range(4), key=per_token.__getitem__) == item.label)
        assert r["acc_pmi"] == float(max(range(4), key=pmi.__getitem__) == item.label)
        differ += max(range(4), key=pmi.__getitem__) != max(range(4), key=cond.__getitem__)
    assert differ  # PMI ranks differently from the raw sum somewhere: the check above is not vacuous
    assert "acc_pmi" not in item_results(model, char_encode, items)[0]  # one more pass only when asked


def test_olmes_names_each_task_its_normalisation(tmp_path):
    from tasks.benchmarks import BenchmarkConfig

    path = _write_jsonl(tmp_path / "g.jsonl", [{"context": "2+2=", "choices": ["4", " 5"], "label": 0}])
    arc = BenchmarkConfig(name="ARC-Challenge", path=str(path), normalization="olmes")
    assert arc.stated_metric("cloze") == ("acc_pmi", "pmi") and arc.stated_metric("mc") == ("acc", "none")
    stated = lambda name, norm: BenchmarkConfig(name=name, path=str(path), normalization=norm).stated_metric("harness")  # noqa: E731
    assert stated("hellaswag", "olmes") == ("acc_norm", "char") and stated("mine", "token") == ("acc_token", "token")
    assert BenchmarkConfig(name="mine", path=str(path)).stated_metric("harness") is None
    with pytest.raises(ValueError, match="OLMES names a normalisation"):
        BenchmarkConfig(name="mine", path=str(path), normalization="olmes")


def test_few_shot_prefixes_solved_examples_from_other_items():
    items = [Item("t", str(i), f"q{i}:", [f" a{i}", " x"], 0) for i in range(5)]
    shot = with_few_shot(items, 2, seed=0)
    assert shot[0].context.endswith("q0:") and shot[0].context.count("\n\n") == 2
    assert "q0: a0" not in shot[0].context  # never its own answer


def test_a_model_trained_on_the_answers_beats_chance(tmp_path):
    people = ["alice", "bruno", "chen", "dmitri", "erin", "farah", "gus", "hana"]
    fruits = ["apples", "bananas", "cherries", "dates", "figs", "grapes", "kiwis", "lemons"]
    facts = [f"{p} likes {f}. " for p, f in zip(people, fruits, strict=True)]
    rng = random.Random(0)
    stream = char_encode("".join(rng.choice(facts) for _ in range(3000)))
    rows = [stream[i : i + 33] for i in range(0, len(stream) - 33, 33)]
    path = tmp_path / "train-00000.parquet"
    write_parquet(pa.table({"tokens": pa.array(rows, pa.list_(pa.int32()))}), path, row_group_size=64)
    cfg_model = GPTConfig(vocab_size=128, seq_len=32, n_layer=2, n_head=2, n_embd=64)
    cfg = TrainConfig(max_steps=250, batch_size=16, lr=3e-3, warmup_steps=10, checkpoint_every=1000,
                      log_every=50, device="cpu", threads=1)  # fmt: skip
    train([str(path)], cfg_model, cfg, tmp_path / "out")
    state = torch.load(tmp_path / "out" / "model.pt", weights_only=True)
    model = GPT(cfg_model)
    model.load_state_dict(state["model"])
    model.eval()
    items = []
    for i, (p, f) in enumerate(zip(people, fruits, strict=True)):
        wrong = rng.sample([x for x in fruits if x != f], 3)
        choices = [" " + f] + [" " + w for w in wrong]
        items.append(Item("planted", str(i), f"{p} likes", choices, 0))
    result = score_items(model, char_encode, items)
    assert result["chance"] == 0.25
    assert result["acc"] >= 0.75, result


def test_builtin_tasks_come_from_held_out_text():
    docs = [(f"d{i}", prose(4, offset=4 * i), "en") for i in range(8)]
    cloze = cloze_items(docs, 20, seed=0)
    assert cloze and all(len(item.choices) == 4 for item in cloze)
    for item in cloze:
        doc_text = " ".join({d: t for d, t, _ in docs}[item.item_id.split(":")[0]].split())
        assert (item.context + item.choices[item.label]) in doc_text  # the true next sentence follows
    words = last_word_items(docs, 10, seed=0)
    for item in words:
        assert item.choices[0].strip().isalpha() and item.label == 0


def test_builtin_cloze_has_items_in_scripts_without_spaces_or_full_stops():
    from tasks.languages.registry import sentences, words

    rng = random.Random(0)
    vocab = {"zh": ("我们 今天 学习 中文 老师 说 这个 问题 很 重要 大家 都 同意 他 的 看法".split(), "", "。"),
             "ja": ("私 は 毎日 学校 で 日本語 を 勉強 し て い ます 先生 も 親切 です".split(), "", "。"),
             "th": ("เขา เปิด ประตู บ้าน แล้ว เห็น เพื่อน เก่า ของ ตน ที่ มา เยี่ยม".split(), "", ""),
             "hi": ("हम आज स्कूल में हिंदी पढ़ते हैं और शिक्षक बहुत अच्छे हैं".split(), " ", " ।"),
             "en": ("we read the book in the garden and the weather was very good".split(), " ", ".")}  # fmt: skip

    def text(lang: str) -> str:
        pool, joiner, stop = vocab[lang]
        sents = [joiner.join(rng.choice(pool) for _ in range(rng.randint(8, 14))) + stop for _ in range(12)]
        return ("" if stop == "。" else " ").join(sents)

    docs = [(f"{lang}{i}", text(lang), lang) for lang in vocab for i in range(5)]
    assert len(sentences(docs[0][1], "zh")) == 12 and len(sentences(docs[10][1], "th")) == 12
    cloze = cloze_items(docs, 200, seed=0, sentences_of=sentences, words_of=words)
    made = {lang: [i for i in cloze if i.item_id.startswith(lang)] for lang in vocab}
    assert all(len(items) >= 10 for items in made.values()), {k: len(v) for k, v in made.items()}
    # Every wrong answer is a sentence of another document in the item's own language.
    of_lang = {lang: {s for d, t, lg in docs if lg == lang for s in sentences(t, lg)} for lang in vocab}
    for lang, items in made.items():
        assert all(c.strip() in of_lang[lang] for item in items for c in item.choices), lang
    assert cloze_items([(d, t, None) for d, t, _ in docs if d.startswith("zh")], 50, seed=0) == []  # "。" unsplit
