"""Post-training: instruction and preference formats, the chat template's loss masks, DPO, and the
sft and dpo stages in a run (with evaluate's chat section)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import torch

from model.chat import END, IGNORE, chat_vocab, encode_conversation, fixed_length, grow_embedding
from model.data import inputs_and_targets
from storage.errors import UserError
from tasks.conversations import ReadStats, read_instructions, read_preferences
from tasks.instructions import InstructionPrompt


def _write(path: Path, records: list, jsonl: bool = True) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in records) if jsonl else json.dumps(records))
    return str(path)


def test_each_instruction_shape_reads_as_the_same_conversation(tmp_path):
    alpaca = _write(tmp_path / "a.jsonl", [{"instruction": "Add.", "input": "1 and 2", "output": "3"}])
    turns = [{"from": "human", "value": "Add.\n\n1 and 2"}, {"from": "gpt", "value": "3"}]
    sharegpt = _write(tmp_path / "s.json", [{"conversations": turns}], jsonl=False)
    messages = _write(tmp_path / "m.jsonl", [{"messages": [{"role": "user", "content": "Add.\n\n1 and 2"},
                                                           {"role": "assistant", "content": "3"}]}])  # fmt: skip
    expected = [{"role": "user", "content": "Add.\n\n1 and 2"}, {"role": "assistant", "content": "3"}]
    for path, fmt in [(alpaca, "alpaca"), (sharegpt, "sharegpt"), (messages, "messages")]:
        for chosen in (fmt, "auto"):
            assert list(read_instructions([path], chosen, ReadStats())) == [expected], (path, chosen)


def test_a_file_in_no_known_shape_is_one_error_naming_its_keys(tmp_path):
    path = _write(tmp_path / "x.jsonl", [{"question": "q", "answer": "a"}])
    with pytest.raises(UserError, match=r"x.jsonl: records in no known shape.*\['answer', 'question'\]"):
        list(read_instructions([path], "auto", ReadStats()))
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"messages": []}\n{not json\n')
    with pytest.raises(UserError, match=r"bad.jsonl:2: not valid JSON Lines"):
        list(read_instructions([str(bad)], "auto", ReadStats()))


def test_records_that_do_not_fit_are_counted_and_skipped(tmp_path):
    good = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}
    path = _write(tmp_path / "m.jsonl", [good, {"messages": "oops"}, {"messages": [{"role": "user", "content": "x"}]},
                                         {"messages": [{"role": "wizard", "content": "x"}]}, good])  # fmt: skip
    stats = ReadStats()
    assert len(list(read_instructions([path], "auto", stats))) == 2
    assert stats.records == 5
    assert stats.skipped == {"not_messages": 1, "no_assistant_turn": 1, "unknown_role": 1}


def test_each_preference_shape_reads_as_prompt_chosen_rejected(tmp_path):
    pairs = _write(tmp_path / "p.jsonl", [{"prompt": "Say hi.", "chosen": "Hi!", "rejected": "No."}])
    ultra = _write(tmp_path / "u.jsonl", [{"prompt": "Say hi.",
                                           "chosen": [{"role": "user", "content": "Say hi."},
                                                      {"role": "assistant", "content": "Hi!"}],
                                           "rejected": [{"role": "user", "content": "Say hi."},
                                                        {"role": "assistant", "content": "No."}]}])  # fmt: skip
    hh = _write(tmp_path / "h.jsonl", [{"chosen": "\n\nHuman: Say hi.\n\nAssistant: Hi!",
                                        "rejected": "\n\nHuman: Say hi.\n\nAssistant: No."}])  # fmt: skip
    for path in (pairs, ultra, hh):
        (pair,) = read_preferences([path], "auto", ReadStats())
        assert (pair.prompt, pair.chosen, pair.rejected) == ([{"role": "user", "content": "Say hi."}], "Hi!", "No.")


def _fake_vocab():
    return chat_vocab(lambda piece: 0, base_size=100)  # a tokenizer without the chat tokens


def test_the_loss_mask_covers_the_assistant_content_and_its_end_token_only():
    vocab = _fake_vocab()
    encode = {"sys": [10], "question": [11, 12, 13], "answer": [20, 21], "more": [14], "again": [22]}.__getitem__
    conversation = [{"role": "system", "content": "sys"}, {"role": "user", "content": "question"},
                    {"role": "assistant", "content": "answer"}, {"role": "user", "content": "more"},
                    {"role": "assistant", "content": "again"}]  # fmt: skip
    tokens, mask = encode_conversation(conversation, encode, vocab)
    trained = [t for t, m in zip(tokens, mask, strict=True) if m]
    assert trained == [20, 21, vocab.end_id, 22, vocab.end_id]
    assert vocab.added == 4 and vocab.ids[END] == 103 and sorted(vocab.ids.values()) == [100, 101, 102, 103]
    row = fixed_length(tokens, mask, 24)
    assert row is not None and len(row[0]) == 24 and row[1][len(tokens) :] == [0] * (24 - len(tokens))
    # Through the trainer's batch: targets are the trained tokens, everything else ignored.
    batch = torch.tensor([[row[0], row[1]]])
    _, targets = inputs_and_targets(batch)
    assert [t for t in targets[0].tolist() if t != IGNORE] == trained
    # A prompt longer than the row leaves nothing to train: no row.
    assert fixed_length(tokens, mask, 6) is None


def test_the_masked_loss_is_the_mean_over_assistant_tokens_only():
    from model.gpt import GPT, GPTConfig

    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=128, seq_len=16, n_layer=1, n_head=2, n_embd=32))
    tokens = torch.randint(3, 100, (1, 17))
    mask = torch.zeros_like(tokens)
    mask[0, 9:14] = 1
    inputs, targets = inputs_and_targets(torch.stack([tokens, mask], 1))
    _, loss = model(inputs, targets)
    logits, _ = model(inputs)
    by_hand = torch.nn.functional.cross_entropy(logits[0, 8:13], tokens[0, 9:14])
    assert torch.allclose(loss, by_hand, atol=1e-6)


def test_added_chat_tokens_start_at_the_mean_embedding_and_old_rows_stay():
    vocab = _fake_vocab()
    old = torch.randn(100, 8)
    grown = grow_embedding({"embed.weight": old, "head.weight": old}, 128, vocab)
    assert grown["embed.weight"].shape == (128, 8)
    assert torch.equal(grown["embed.weight"][:100], old)
    assert torch.allclose(grown["embed.weight"][100:104], old.mean(0).expand(4, 8))
    assert torch.equal(grown["head.weight"], grown["embed.weight"])


def test_a_tokenizer_trained_with_the_chat_tokens_keeps_its_own_ids(tmp_path):
    import io

    import sentencepiece as spm

    from model.chat import CHAT_TOKENS

    model = io.BytesIO()
    text = [f"line {i} of some text about functions and modules" for i in range(200)]
    spm.SentencePieceTrainer.train(sentence_iterator=iter(text), model_writer=model, vocab_size=50,
                                   user_defined_symbols=list(CHAT_TOKENS), unk_id=0, eos_id=1, bos_id=2,
                                   pad_id=-1)  # fmt: skip
    sp = spm.SentencePieceProcessor(model_proto=model.getvalue())
    vocab = chat_vocab(sp.piece_to_id, sp.get_piece_size())
    assert vocab.added == 0 and vocab.size == sp.get_piece_size()
    assert all(sp.id_to_piece(i) == t for t, i in vocab.ids.items())


def test_instruction_constraints_are_checked_per_language():
    prompt = InstructionPrompt("k", "What does it do?", ("uppercase", "quoted"))
    assert prompt.check('"IT ADDS TWO NUMBERS."') == {"uppercase": True, "quoted": True}
    assert prompt.check("It adds two numbers.") == {"uppercase": False, "quoted": False}
    short = InstructionPrompt("k", "q", ("max_words",), lang="ja")
    # Japanese has no spaces: words come from the language's segmenter, not from str.split.
    assert short.check("関数は二つの数を足して結果を返します。") == {"max_words": False}
    assert short.check("数を足す。") == {"max_words": True}


def _planted_pairs(n: int, seed: int) -> torch.Tensor:
    """(n, 2, 2, 17) pairs: a random prompt, then a chosen answer from ids 41-50 or a rejected one from 51-60."""
    g = torch.Generator().manual_seed(seed)
    pairs = torch.zeros(n, 2, 2, 17, dtype=torch.long)
    for i in range(n):
        prompt = torch.randint(10, 40, (10,), generator=g)
        for side, low in ((0, 41), (1, 51)):
            answer = torch.randint(low, low + 10, (4,), generator=g)
            pairs[i, side, 0, :14] = torch.cat([torch.tensor([2]), prompt, answer[:3]])
            pairs[i, side, 1, 11:14] = 1
    return pairs


def _dpo_run(out: Path, max_steps: int, init: dict, train: torch.Tensor, val: torch.Tensor) -> dict:
    from model.config import TrainConfig
    from model.dpo import train_dpo
    from model.gpt import GPTConfig

    cfg = TrainConfig(n_layer=1, n_head=2, n_embd=32, batch_size=16, max_steps=max_steps, lr=3e-3, warmup_steps=2,
                      val_every=20, checkpoint_every=20, log_every=10, device="cpu", spike_factor=None)  # fmt: skip
    model_cfg = GPTConfig(vocab_size=64, seq_len=16, n_layer=1, n_head=2, n_embd=32)
    return train_dpo(train, val, model_cfg, cfg, 0.5, out, init)


def test_dpo_learns_a_planted_preference_on_held_out_pairs_and_resumes_exactly(tmp_path, caplog):
    from model.gpt import GPT, GPTConfig

    torch.manual_seed(0)
    init = GPT(GPTConfig(vocab_size=64, seq_len=16, n_layer=1, n_head=2, n_embd=32)).state_dict()
    train, val = _planted_pairs(256, seed=1), _planted_pairs(64, seed=2)
    result = _dpo_run(tmp_path / "full", 60, init, train, val)
    accuracy = [(e["step"], e["pref_accuracy"]) for e in result["val_history"]]
    assert accuracy[0] == (0, 0.5)  # the starting model is the reference: every margin is 0
    assert accuracy[-1][0] == 60 and accuracy[-1][1] > 0.9, accuracy
    assert result["val_history"][-1]["reward_margin"] > 0
    # A run whose last checkpoint is step 40 (the later ones lost) resumes there: the same weights.
    shutil.copytree(tmp_path / "full", tmp_path / "split")
    (tmp_path / "split" / "model.pt").unlink()
    (tmp_path / "split" / "checkpoints" / "step-0000060.pt").unlink()
    with caplog.at_level("INFO", logger="crawl2model"):
        resumed = _dpo_run(tmp_path / "split", 60, init, train, val)
    assert "dpo: resumed from step-0000040.pt at step 40" in caplog.text
    assert resumed["val_history"] == result["val_history"]
    full = torch.load(tmp_path / "full" / "model.pt", weights_only=True)["model"]
    split = torch.load(tmp_path / "split" / "model.pt", weights_only=True)["model"]
    assert all(torch.equal(full[k], split[k]) for k in full)


@pytest.fixture(scope="module")
def post_trained(tmp_path_factory) -> tuple[Path, str, list[str]]:
    """A tiny run with sft on the user's own instructions (one of them contaminated) and dpo on the sample's pairs."""
    from tasks.sample.instructions import evaluation_prompts, instruction_set
    from tests.conftest import TINY_PIPELINE, invoke

    work = tmp_path_factory.mktemp("post")
    leaked = evaluation_prompts()[0][1]  # a held-out function's reference answer: the chat evaluation's
    records = [{"instruction": c["messages"][0]["content"], "output": c["messages"][1]["content"]}
               for c in instruction_set()[:300]]  # fmt: skip
    records.append({"instruction": "What does it do?", "output": leaked})
    data = _write(work / "instructions.jsonl", records)
    sets = [*TINY_PIPELINE, "tokenize.seq_len=64", "train.max_steps=40", "sft.enabled=true", f"sft.data=[{data}]",
            "sft.max_steps=20", "sft.batch_size=8", "sft.val_every=10", "dpo.enabled=true", "dpo.max_steps=10",
            "dpo.batch_size=8", "dpo.val_every=5", "evaluate.chat_prompts=6", "evaluate.chat_max_new_tokens=8",
            "evaluate.max_new_tokens=4"]  # fmt: skip
    args = [a for s in sets for a in ("--set", s)]
    invoke("run", "--workdir", str(work / "w"), *args)
    return work / "w", invoke("run", "--workdir", str(work / "w"), *args), args


def _manifest(work: Path, stage: str) -> dict:
    (path,) = (work / "artifacts" / stage).glob("*/manifest.json")
    return json.loads(path.read_text())


@pytest.mark.slow
def test_sft_trains_on_masked_chat_rows_and_drops_a_contaminated_example(post_trained):
    import sentencepiece as spm

    work, rerun, _ = post_trained
    sft = _manifest(work, "sft")
    # Every example is kept or counted: some of the sample's answers repeat held-out ones (docstrings
    # shared between functions), and the planted leak is among those dropped.
    assert sum(sft["info"]["examples"].values()) + sum(sft["info"]["dropped"].values()) == 301
    assert sft["info"]["dropped"]["decontaminated"] >= 1
    assert sft["info"]["chat_tokens_added"] == 4 and sft["info"]["vocab_size"] % 128 == 0
    out = Path(sft["output_dir"])
    chat = json.loads((out / "chat.json").read_text())
    (tokenizer,) = (work / "artifacts" / "tokenize").glob("*/tokenizer.model")
    sp = spm.SentencePieceProcessor(model_file=str(tokenizer))
    rows = [
        r for split in ("train", "val") for r in pq.read_table(out / "examples" / f"{split}-00000.parquet").to_pylist()
    ]
    records = [json.loads(line) for line in (work.parent / "instructions.jsonl").read_text().splitlines()]
    answers = {r["output"] for r in records[:-1]}
    for row in rows:
        trained = [t for t, m in zip(row["tokens"], row["loss_mask"], strict=True) if m]
        if trained[-1] == chat["ids"]["<|end|>"]:  # not cut by the row's end
            # Exactly an assistant answer, nothing of the prompt; never the leaked one.
            assert sp.decode(trained[:-1]) in answers, sp.decode(trained[:-1])
    base = sp.get_piece_size()
    assert not any(records[-1]["output"] in sp.decode([t for t in r["tokens"] if t < base]) for r in rows)
    losses = [m for m in sft["metrics"] if m["name"] == "sft_val_loss"]
    assert [m["step"] for m in losses] == [10, 20]
    assert "sft" in rerun and "cached" in rerun.split("sft")[1].split("\n")[0]


@pytest.mark.slow
def test_dpo_and_the_chat_evaluation_are_recorded(post_trained):
    from storage.catalog import Catalog

    work, _, _ = post_trained
    dpo = _manifest(work, "dpo")
    assert dpo["info"]["heldout_before"]["pref_accuracy"] == 0.5
    assert [m["step"] for m in dpo["metrics"] if m["name"] == "heldout_pref_accuracy"] == [0, 5, 10]
    evaluate = _manifest(work, "evaluate")
    report = (Path(evaluate["output_dir"]) / "report.md").read_text()
    assert "## Post-training" in report and "| sft |" in report and "| dpo |" in report
    chat = json.loads((Path(evaluate["output_dir"]) / "eval.json").read_text())["chat"]
    assert set(chat["models"]) == {"base", "sft", "dpo"} and chat["prompts"] == 6
    for model in chat["models"].values():
        assert 0 <= model["following"]["prompt_level"]["value"] <= 1 and model["heldout_loss"]["ci"]
    _, rows = Catalog(work).query(
        "select stage, count(*) from metrics where name in ('sft_loss', 'dpo_loss', 'chat.sft.prompt_level') "
        "group by 1 order by 1"
    )
    assert [r[0] for r in rows] == ["dpo", "evaluate", "sft"]


def test_a_missing_instruction_file_is_an_error_before_any_stage(tmp_path):
    from typer.testing import CliRunner

    from flows.cli import app

    missing = tmp_path / "nowhere.jsonl"
    result = CliRunner().invoke(app, ["run", "--workdir", str(tmp_path / "w"), "--set", f"sft.data=[{missing}]"])
    assert result.exit_code == 2 and "error:" in result.output and "nowhere.jsonl" in result.output
    assert not (tmp_path / "w" / "artifacts").exists()


def test_dpo_without_sft_is_a_config_error_before_any_stage(tmp_path):
    from typer.testing import CliRunner

    from flows.cli import app

    result = CliRunner().invoke(app, ["run", "--workdir", str(tmp_path / "w"), "--set", "sft.enabled=false",
                                      "--set", "dpo.enabled=true"])  # fmt: skip
    assert result.exit_code == 2
    assert "error:" in result.output and "dpo.enabled=true needs sft.enabled=true" in result.output
    assert not (tmp_path / "w" / "artifacts").exists()


@pytest.mark.slow
def test_generate_and_chat_talk_to_the_chat_model(post_trained, tmp_path):
    from typer.testing import CliRunner

    from flows.cli import app
    from tasks.chat_session import converse, generate

    work, _, _ = post_trained
    sft = Path(_manifest(work, "sft")["output_dir"]) / "model.pt"
    reply = generate(sft, "What does json.dumps do?", None, 6)
    assert isinstance(reply, str) and "<|" not in reply  # chat tokens never reach the text
    said: list[str] = []
    lines = iter(["What does json.dumps do?", "", "And json.loads?", "exit", "never read"])
    assert converse(sft, None, lambda: next(lines), said.append, "Be brief.", 6) == 2
    assert len(said) == 2
    result = CliRunner().invoke(app, ["chat", str(sft), "--max-new-tokens", "4"], input="Hello\n")
    assert result.exit_code == 0 and "model> " in result.output
    # A base model has no chat template: chat says so in one line; generate continues text with --tokenizer.
    base = Path(_manifest(work, "train")["output_dir"]) / "model.pt"
    result = CliRunner().invoke(app, ["chat", str(base)], input="Hello\n")
    assert result.exit_code == 2 and "error: no tokenizer beside" in result.output
    (tokenizer,) = (work / "artifacts" / "tokenize").glob("*/tokenizer.model")
    result = CliRunner().invoke(app, ["chat", str(base), "--tokenizer", str(tokenizer)], input="Hello\n")
    assert result.exit_code == 2 and "is a base model" in result.output
    result = CliRunner().invoke(app, ["generate", str(base), "The module", "--tokenizer", str(tokenizer),
                                      "--max-new-tokens", "5"])  # fmt: skip
    assert result.exit_code == 0 and result.output.strip()


@pytest.mark.slow
def test_the_hf_export_of_a_chat_model_templates_and_generates_as_ours(post_trained, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from model.chat import reply_ids
    from tasks.conversations import ReadStats, read_instructions
    from tasks.post_training import StartingModel
    from tests.conftest import invoke

    work, _, args = post_trained
    out = tmp_path / "hf"
    invoke("export", "--workdir", str(work), *args, "--stage", "sft", "--format", "hf", "--out", str(out))
    assert "chat_template" in json.loads((out / "tokenizer_config.json").read_text())
    tokenizer, hf = AutoTokenizer.from_pretrained(out), AutoModelForCausalLM.from_pretrained(out).eval()
    model_file = Path(_manifest(work, "sft")["output_dir"]) / "model.pt"
    start = StartingModel(str(model_file), str(model_file.parent / "tokenizer.model"))
    conversations = list(read_instructions([str(work.parent / "instructions.jsonl")], "auto", ReadStats()))
    for messages in conversations[:100]:
        ids = tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True)["input_ids"]
        assert list(ids) == encode_conversation(messages, start.encode, start.vocab)[0]
    for messages in conversations[:3]:
        prompt = tokenizer.apply_chat_template(messages[:1], add_generation_prompt=True, return_tensors="pt",
                                               return_dict=True)["input_ids"]  # fmt: skip
        got = hf.generate(prompt, max_new_tokens=10, do_sample=False, pad_token_id=0)[0, prompt.shape[1] :].tolist()
        ours = reply_ids(start.gpt(), prompt[0].tolist(), start.vocab.end_id, 10)
        assert got[: len(ours)] == ours and got[len(ours) :] in ([], [start.vocab.end_id])


def test_length_control_removes_a_win_rate_that_only_length_explains():
    import numpy as np

    from tasks.evaluate.win_rate import length_controlled, parse_winner, win_rates

    rng = np.random.default_rng(0)
    diff = rng.normal(40, 60, 400)  # the model answers longer, on average
    by_length = (rng.random(400) < 1 / (1 + np.exp(-np.tanh(diff / diff.std()) * 3))).astype(float)
    assert by_length.mean() > 0.65 and abs(length_controlled(by_length, diff) - 0.5) < 0.08
    better = (rng.random(400) < 0.8).astype(float)  # wins that do not depend on length
    assert abs(length_controlled(better, diff) - better.mean()) < 0.08
    rates = win_rates([*better[:50].tolist(), None], ["x" * 10] * 51, ["y" * 5] * 51)
    assert rates["judged"] == 50 and rates["malformed"] == 1
    low, high = rates["win_rate"]["ci"]
    assert low < rates["win_rate"]["value"] < high
    assert parse_winner("B is better.\nWinner: B") == "B" and parse_winner("**Winner:** a") == "A"
    assert parse_winner("Winner: A\nActually both are fine.") is None and parse_winner("") is None


@pytest.mark.slow
def test_the_win_rate_against_the_base_model_is_judged_cached_and_keyed_by_environment(post_trained, monkeypatch):
    from tests.conftest import invoke
    from tests.fake_judge import FakeJudge, pairwise_by_constraints

    work, _, args = post_trained
    server = FakeJudge(api_key="judge-key-for-win-rate", reply=pairwise_by_constraints)
    monkeypatch.setenv("CRAWL2MODEL_TEST_WIN_KEY", "judge-key-for-win-rate")
    judge = json.dumps({"endpoint": server.url, "model": "fake-judge", "api_key_env": "CRAWL2MODEL_TEST_WIN_KEY",
                        "concurrency": 3})  # fmt: skip
    try:
        invoke("run", "--workdir", str(work), *args, "--set", f"evaluate.judge={judge}")
        asked = sum(server.attempts.values())
        invoke("run", "--workdir", str(work), *args, "--set", f"evaluate.judge={judge}", "--force", "evaluate")
        # 6 prompts x (sft, dpo), one request per distinct judge prompt; the forced rerun asks nothing again.
        assert 6 <= asked <= 12 and sum(server.attempts.values()) == asked
    finally:
        server.close()
    evals = [json.loads((p.parent / "eval.json").read_text())["chat"] for p in
             (work / "artifacts" / "evaluate").glob("*/manifest.json")]  # fmt: skip
    rates = [c["models"]["sft"].get("win_rate") for c in evals if c["models"]["sft"].get("win_rate")]
    assert rates and rates[0]["judged"] == 6 and 0 <= rates[0]["win_rate"]["value"] <= 1
    assert rates[0]["lc_win_rate"]["ci"] is not None
    assert "judge-key-for-win-rate" not in "".join(p.read_text(errors="ignore") for p in work.rglob("*.json*"))


def test_post_train_gives_every_recipe_the_same_post_training():
    from tasks.experiments import post_train_overrides

    assert post_train_overrides(None) == []
    assert post_train_overrides("sft, dpo") == ["sft.enabled=true", "dpo.enabled=true"]
    assert post_train_overrides("none") == ["sft.enabled=false", "dpo.enabled=false"]
    with pytest.raises(UserError, match="--post-train 'dpo': one of none, sft, sft,dpo"):
        post_train_overrides("dpo")


@pytest.mark.slow
def test_recipes_with_post_training_give_chat_verdicts_beside_the_base_ones(tmp_path):
    from tests.conftest import TINY_PIPELINE, invoke

    sets = [*TINY_PIPELINE, "tokenize.seq_len=64", "train.max_steps=30", "sft.max_steps=10", "sft.batch_size=8",
            "evaluate.chat_prompts=12", "evaluate.chat_max_new_tokens=6", "evaluate.max_new_tokens=4"]  # fmt: skip
    work = tmp_path / "work"
    invoke("experiment", "recipes", "--recipes", "raw,full", "--post-train", "sft", "--workdir", str(work),
           *[a for s in sets for a in ("--set", s)])  # fmt: skip
    (path,) = (work / "experiments").glob("recipes-*/result.json")
    result = json.loads(path.read_text())
    compared = {c["metric"]: c for c in result["comparisons"]}
    for metric in ("yardstick_bits_per_byte", "task.chat_following_base.acc", "task.chat_following_sft.acc"):
        assert metric in compared and compared[metric]["verdict"] in ("better", "worse", "not distinguishable")
    assert result["recipes"]["full"]["task.chat_following_sft.acc"]["ci"] is not None


def _chat_rows(path: Path, n: int, seed: int) -> str:
    """n masked rows of 17 tokens (prompt ids 10-39, a trained answer of ids 41-50 and its end token)."""
    import pyarrow as pa

    g = torch.Generator().manual_seed(seed)
    rows = []
    for i in range(n):
        tokens = [
            2,
            *torch.randint(10, 40, (8,), generator=g).tolist(),
            *torch.randint(41, 51, (8,), generator=g).tolist(),
        ]
        rows.append({"example_id": str(i), "tokens": tokens, "loss_mask": [0] * 9 + [1] * 8})
    pq.write_table(pa.Table.from_pylist(rows), path)
    return str(path)


def test_fine_tuning_starts_from_the_given_weights_in_one_process_and_under_torchrun(tmp_path):
    """sft's path through the trainer: masked rows, weights to start from; torchrun's 2 ranks (gloo)
    receive the same starting weights and match 1 process."""
    from model.config import TrainConfig
    from model.gpt import GPT, GPTConfig
    from tasks.training_run import run_training

    model_cfg = GPTConfig(vocab_size=64, seq_len=16, n_layer=1, n_head=2, n_embd=32)
    torch.manual_seed(7)
    start = GPT(model_cfg).state_dict()
    files = [_chat_rows(tmp_path / "rows.parquet", 64, seed=3)]
    cfg = TrainConfig(n_layer=1, n_head=2, n_embd=32, batch_size=8, max_steps=6, lr=1e-3, warmup_steps=1,
                      log_every=2, checkpoint_every=3, val_every=0, device="cpu", spike_factor=None)  # fmt: skip
    one = run_training(files, model_cfg, cfg, tmp_path / "one", "sft", init_state=start)
    two = run_training(files, model_cfg, cfg.model_copy(update={"batch_size": 4, "nproc": 2}), tmp_path / "two", "sft",
                       init_state=start)  # fmt: skip
    assert two["world_size"] == 2
    assert [h["loss"] for h in two["history"]] == pytest.approx([h["loss"] for h in one["history"]], abs=1e-4)
    # The first step's loss is the given weights' (not a fresh initialisation's) on trained tokens only.
    model = GPT(model_cfg)
    model.load_state_dict(start)
    rows = torch.tensor([[r["tokens"], r["loss_mask"]] for r in pq.read_table(files[0]).to_pylist()])
    with torch.no_grad():
        losses = [model(*inputs_and_targets(rows[i : i + 8]))[1] for i in range(0, 64, 8)]
    assert min(losses) - 0.05 <= one["history"][0]["loss"] <= max(losses) + 0.05
