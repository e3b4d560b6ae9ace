import contextlib
from pathlib import Path

import pyarrow as pa
import pytest
import torch

from model.config import TrainConfig
from model.data import TokenLoader
from model.gpt import GPT, GPTConfig
from model.trainer import SpikeDetector, grad_accum_steps, lr_at, train
from storage.shards import write_parquet
from tasks.training_run import run_torchrun

TINY = GPTConfig(vocab_size=64, seq_len=16, n_layer=2, n_head=2, n_embd=32)
CFG = TrainConfig(max_steps=40, batch_size=8, lr=3e-3, warmup_steps=5, checkpoint_every=20, log_every=10,
                  threads=1, device="cpu")  # fmt: skip


@pytest.fixture(scope="module")
def token_files(tmp_path_factory) -> list[str]:
    # A learnable stream: each token is the previous one plus one, modulo the vocabulary.
    g = torch.Generator().manual_seed(0)
    rows = ((torch.randint(0, 64, (256, 1), generator=g) + torch.arange(17)) % 64).tolist()
    path = tmp_path_factory.mktemp("tokens") / "train-00000.parquet"
    write_parquet(pa.table({"tokens": pa.array(rows, pa.list_(pa.int32()))}), path, row_group_size=32)
    return [str(path)]


def test_forward_shapes_and_causality():
    model = GPT(TINY).eval()
    x = torch.randint(0, 64, (2, 16))
    logits, _ = model(x)
    assert logits.shape == (2, 16, 64)
    y = x.clone()
    y[:, -1] = (y[:, -1] + 1) % 64  # changing the last token must not change earlier positions
    assert torch.allclose(model(y)[0][:, :-1], logits[:, :-1], atol=1e-5)


def test_tied_and_untied_embeddings():
    tied, untied = GPT(TINY), GPT(GPTConfig(**{**TINY.__dict__, "tie_embeddings": False}))
    assert tied.head.weight is tied.embed.weight
    assert untied.num_params() == tied.num_params() + 64 * 32


def test_schedule_warms_up_then_decays_to_floor():
    cfg = TrainConfig(lr=1e-3, warmup_steps=10, max_steps=100, min_lr_ratio=0.1)
    assert lr_at(0, cfg) == 1e-4
    assert lr_at(9, cfg) == 1e-3
    assert abs(lr_at(100, cfg) - 1e-4) < 1e-12


def test_wsd_schedule_holds_the_peak_then_decays_linearly_over_the_last_fraction():
    cfg = TrainConfig(lr=1e-3, warmup_steps=10, max_steps=100, min_lr_ratio=0.1, schedule="wsd", decay_fraction=0.2)
    assert lr_at(0, cfg) == 1e-4 and lr_at(9, cfg) == 1e-3
    assert all(lr_at(s, cfg) == 1e-3 for s in range(10, 80))  # stable
    decay = [lr_at(s, cfg) for s in range(80, 100)]
    assert all(a > b for a, b in zip(decay, decay[1:], strict=False))  # strictly falling
    assert abs(decay[-1] - 1e-4) < 1e-12 and abs(decay[9] - (1e-3 - 0.9e-3 * 0.5)) < 1e-12  # linear, to the floor
    cosine = TrainConfig(lr=1e-3, warmup_steps=10, max_steps=100, min_lr_ratio=0.1)
    assert lr_at(50, cosine) < lr_at(50, cfg)  # cosine is already decaying mid-run


def test_tokens_per_step_sets_accumulation_and_presets_fill_dims():
    assert grad_accum_steps(TrainConfig(batch_size=8, tokens_per_step=1000), seq_len=16, world_size=2) == 4
    assert grad_accum_steps(TrainConfig(grad_accum=3), seq_len=16, world_size=1) == 3
    assert (TrainConfig(preset="124m").n_layer, TrainConfig(preset="124m").n_embd) == (12, 768)
    assert TrainConfig(preset="350m", n_layer=2).n_layer == 2


def test_spike_detector_flags_only_outliers():
    d = SpikeDetector(factor=2.0, warmup=5)
    assert not any(d.is_spike(v) for v in [3.0, 2.9, 2.8, 2.8, 2.7, 2.7])
    assert d.is_spike(9.0)
    assert not d.is_spike(2.6)


def test_loader_streams_deterministically_and_shards_ranks(token_files):
    single = TokenLoader(token_files, batch_size=8, seed=1)
    halves = [TokenLoader(token_files, batch_size=4, seed=1, rank=r, world_size=2) for r in range(2)]
    for _ in range(50):  # crosses an epoch boundary (32 batches of 8)
        assert torch.equal(single.next(), torch.cat([h.next() for h in halves]))
    assert len(single._cache) <= single._cache_groups  # never more than a few row groups in memory
    resumed = TokenLoader(token_files, batch_size=8, seed=1)
    resumed.load_state_dict(single.state_dict())
    assert torch.equal(resumed.next(), single.next())


def test_training_learns_and_resume_is_exact(tmp_path, token_files):
    full = train(token_files, TINY, CFG, tmp_path / "full")["history"]
    assert full[-1]["loss"] < full[0]["loss"] - 1.0

    class Killed(Exception):
        pass

    def kill_at_30(entry):
        if entry["step"] == 30:
            raise Killed

    # Die at step 30 (last checkpoint: 20), then resume: every later loss must match exactly.
    with pytest.raises(Killed):
        train(token_files, TINY, CFG, tmp_path / "resumed", on_log=kill_at_30)
    resumed = train(token_files, TINY, CFG, tmp_path / "resumed")["history"]
    assert len(resumed) == 40
    assert [h["loss"] for h in resumed[20:]] == [h["loss"] for h in full[20:]]
    state = torch.load(tmp_path / "full" / "model.pt", weights_only=True)
    assert set(state) == {"model", "config"}


def test_annealing_reads_the_anneal_split_for_the_last_steps_and_resumes_exactly(tmp_path, token_files):
    import model.trainer as trainer_module

    # The anneal split: a different rule (each token the previous one minus one), so its batches are known.
    g = torch.Generator().manual_seed(1)
    rows = ((torch.randint(0, 64, (64, 1), generator=g) - torch.arange(17)) % 64).tolist()
    anneal = tmp_path / "anneal-00000.parquet"
    write_parquet(pa.table({"tokens": pa.array(rows, pa.list_(pa.int32()))}), anneal, row_group_size=32)
    cfg = CFG.model_copy(update={"anneal": CFG.anneal.model_copy(update={"fraction": 0.25}), "schedule": "wsd"})
    seen: list[tuple[int, bool]] = []
    original = trainer_module.Batches.at

    def spy(self, step):
        loader = original(self, step)
        seen.append((step, loader is self.anneal))
        return loader

    trainer_module.Batches.at = spy
    try:
        full = train(token_files, TINY, cfg, tmp_path / "full", anneal_files=[str(anneal)])["history"]
    finally:
        trainer_module.Batches.at = original
    assert [a for _, a in seen] == [False] * 30 + [True] * 10  # the last quarter of 40 steps
    # Killed at the last step (last checkpoint 35, five steps into the anneal phase), resumed: the
    # anneal split's position comes back with the checkpoint, so every loss is the same.
    resume_cfg = cfg.model_copy(update={"checkpoint_every": 5})
    full = train(token_files, TINY, resume_cfg, tmp_path / "full5", anneal_files=[str(anneal)])["history"]

    class Killed(Exception):
        pass

    def kill_at_40(entry):
        if entry["step"] == 40:
            raise Killed

    with pytest.raises(Killed):
        train(token_files, TINY, resume_cfg, tmp_path / "resumed", on_log=kill_at_40, anneal_files=[str(anneal)])
    assert torch.load(tmp_path / "resumed" / "checkpoints" / "step-0000035.pt", weights_only=True)["anneal_loader"]
    resumed = train(token_files, TINY, resume_cfg, tmp_path / "resumed", anneal_files=[str(anneal)])["history"]
    assert [h["loss"] for h in resumed] == [h["loss"] for h in full]
    plain = train(token_files, TINY, CFG.model_copy(update={"schedule": "wsd"}), tmp_path / "plain")["history"]
    losses = lambda history: [h["loss"] for h in history]  # noqa: E731
    assert losses(plain)[:3] == losses(full)[:3] and losses(plain)[-1] != losses(full)[-1]  # same until annealing


def test_spikes_are_logged_and_optionally_skipped(tmp_path, token_files, monkeypatch):
    import model.trainer as trainer

    class CorruptBatch(TokenLoader):
        """Batch 25 is random tokens: a loss spike once the model has learned the sequence."""

        def next(self):
            batch = super().next()
            return torch.randint(0, 64, batch.shape) if self.batch == 25 else batch

    monkeypatch.setattr(trainer, "TokenLoader", CorruptBatch)
    cfg = CFG.model_copy(update={"max_steps": 30, "spike_factor": 1.3})
    logged = train(token_files, TINY, cfg, tmp_path / "log")["history"]
    skipped = train(token_files, TINY, cfg.model_copy(update={"skip_spikes": True}), tmp_path / "skip")["history"]
    assert [h["step"] for h in logged if h.get("spike")] == [25]
    assert [h["step"] for h in skipped if h.get("spike")] == [25]
    # Identical up to the spike; skipping its update changes what follows.
    assert [h["loss"] for h in logged[:25]] == [h["loss"] for h in skipped[:25]]
    assert logged[25]["loss"] != skipped[25]["loss"]


@pytest.mark.parametrize("strategy", ["ddp", "fsdp"])
def test_two_processes_match_one(tmp_path, token_files, strategy):
    """2 ranks x batch 4 under torchrun (gloo) vs 1 process x batch 8: same rows, same losses (1e-4)."""
    one = train(token_files, TINY, CFG.model_copy(update={"max_steps": 12, "log_every": 4}), tmp_path / "one")
    two_cfg = CFG.model_copy(update={"max_steps": 12, "log_every": 4, "batch_size": 4, "nproc": 2,
                                     "strategy": strategy, "checkpoint_every": 6})  # fmt: skip
    two = run_torchrun(token_files, TINY, two_cfg, tmp_path / "two")
    assert two["world_size"] == 2 and two["strategy"] == strategy
    # Unrounded: rounding both sides first can turn a 5e-5 difference into 1e-4 at a rounding boundary.
    assert [h["loss"] for h in two["history"]] == pytest.approx([h["loss"] for h in one["history"]], abs=1e-4)
    assert (Path(tmp_path / "two" / "model.pt")).exists()
    assert len(list((tmp_path / "two" / "checkpoints").glob("step-*.pt"))) == 2


def test_deferred_reads_give_the_same_history(tmp_path, token_files, monkeypatch):
    """The GPU path (loss and grad norm read at log/checkpoint steps only) records exactly what reading
    every step records: same losses, norms, spikes, and tokens/s at the same steps."""
    cfg = CFG.model_copy(update={"max_steps": 12, "log_every": 5, "checkpoint_every": 8, "spike_factor": 0.5})
    every = train(token_files, TINY, cfg, tmp_path / "every")["history"]
    monkeypatch.setattr("model.trainer.reads_every_step", lambda cfg, device: False)
    deferred = train(token_files, TINY, cfg, tmp_path / "deferred")["history"]
    strip = [{k: v for k, v in e.items() if k not in ("tokens_per_s",)} for e in every]
    assert strip == [{k: v for k, v in e.items() if k not in ("tokens_per_s",)} for e in deferred]
    assert [e["step"] for e in deferred if "tokens_per_s" in e] == [5, 10, 12]
    assert any(e.get("spike") for e in deferred)  # factor 0.5: every step after the 10-step warm-up is a "spike"


def test_steps_between_flushes_never_read_a_value_on_the_host(tmp_path, token_files, monkeypatch):
    """On a GPU every `.item()`, `float(t)` or `bool(t)` drains the queue; with deferred reads only
    the log and checkpoint steps (the flushes) may read a tensor's value: every other step must not."""
    monkeypatch.setattr("model.trainer.reads_every_step", lambda cfg, device: False)
    cfg = CFG.model_copy(update={"max_steps": 12, "log_every": 5, "checkpoint_every": 8, "grad_accum": 2})
    flush_steps = {5, 8, 10, 12}
    read_at: list[int] = []

    @contextlib.contextmanager
    def guarded_step(step: int):
        if step in flush_steps:
            yield
            return

        def host_read(*args, **kwargs):
            read_at.append(step)
            raise AssertionError(f"a tensor's value read on the host at step {step}")

        with monkeypatch.context() as guard:
            for name in ("item", "tolist", "numpy", "__bool__", "__float__", "__int__", "__index__"):
                guard.setattr(torch.Tensor, name, host_read)
            yield

    monkeypatch.setattr("model.trainer.step_scope", guarded_step)
    history = train(token_files, TINY, cfg, tmp_path / "run")["history"]
    assert read_at == []
    assert [e["step"] for e in history] == list(range(1, 13))  # every step still recorded, at the flushes


def test_training_many_epochs_over_a_small_corpus_is_a_warning():
    from model.config import TrainConfig
    from tasks.train.stage import repetition_warnings

    cfg = TrainConfig(max_steps=600, batch_size=16)  # 9,600 rows read
    assert repetition_warnings(cfg, 128, 3000) == []  # 3.2 epochs
    [warning] = repetition_warnings(cfg, 128, 384)
    assert "reads the 384 training rows 25.0 times" in warning
    assert repetition_warnings(TrainConfig(max_steps=10, batch_size=4, tokens_per_step=4096), 128, 64) != []
