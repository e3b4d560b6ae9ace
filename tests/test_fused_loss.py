"""The training levers that only pay on a GPU, checked on the CPU: the fused (chunked) loss gives the
plain loss and gradients, the micro-batch search, the padded vocabulary never generated."""

import pyarrow as pa
import pytest
import torch
import torch.nn.functional as F

import model.loss as loss_module
import model.trainer as trainer_module
from model.config import TrainConfig
from model.gpt import GPT, GPTConfig
from model.loss import chunked_linear_cross_entropy
from model.micro_batch import largest_fitting
from model.trainer import resolve_fused_loss, train
from storage.shards import write_parquet

TINY = GPTConfig(vocab_size=128, seq_len=16, n_layer=2, n_head=2, n_embd=32)


@pytest.mark.parametrize("chunk", [7, 64, 4096])
def test_chunked_loss_equals_the_plain_loss_and_gradients(chunk):
    g = torch.Generator().manual_seed(0)
    hidden = torch.randn(50, 24, generator=g, dtype=torch.float64).float().requires_grad_()
    weight = (torch.randn(300, 24, generator=g) * 0.1).requires_grad_()
    targets = torch.randint(0, 300, (50,), generator=g)
    targets[[3, 17]] = -100  # ignored positions count in neither the loss nor its mean
    plain = F.cross_entropy(hidden @ weight.t(), targets)
    plain.backward()
    expected = hidden.grad.clone(), weight.grad.clone()
    hidden.grad = weight.grad = None
    fused = chunked_linear_cross_entropy(hidden, weight, targets, chunk_rows=chunk)
    (fused * 2.0).backward()  # the incoming gradient scales the saved ones
    assert fused.item() == pytest.approx(plain.item(), abs=1e-5)
    assert torch.allclose(hidden.grad, 2 * expected[0], atol=1e-5)
    assert torch.allclose(weight.grad, 2 * expected[1], atol=1e-5)


def test_the_model_with_the_fused_loss_has_the_plain_loss_and_gradients():
    """Tied embeddings: the head's gradient and the embedding's add up in the one weight."""
    torch.manual_seed(0)
    model = GPT(TINY)
    x = torch.randint(0, 128, (4, 17))
    grads = {}
    for mode in ("off", "chunked"):
        model.zero_grad(set_to_none=True)
        model.fused_loss, model.loss_chunk_rows = mode, 10
        logits, loss = model(x[:, :-1], x[:, 1:], return_logits=False)
        assert logits is None
        loss.backward()
        grads[mode] = (loss.item(), {n: p.grad.clone() for n, p in model.named_parameters()})
    assert grads["chunked"][0] == pytest.approx(grads["off"][0], abs=1e-5)
    for name, grad in grads["off"][1].items():
        assert torch.allclose(grads["chunked"][1][name], grad, atol=1e-5), name


def token_rows(tmp_path) -> list[str]:
    g = torch.Generator().manual_seed(0)
    rows = ((torch.randint(0, 128, (128, 1), generator=g) + torch.arange(17)) % 128).tolist()
    path = tmp_path / "train-00000.parquet"
    write_parquet(pa.table({"tokens": pa.array(rows, pa.list_(pa.int32()))}), path, row_group_size=32)
    return [str(path)]


def losses_of(files: list[str], out, steps: int, **settings) -> list[float]:
    cfg = TrainConfig(max_steps=steps, batch_size=8, lr=3e-3, warmup_steps=2, checkpoint_every=100, log_every=4,
                      threads=1, device="cpu", loss_chunk_rows=64, **settings)  # fmt: skip
    return [h["loss"] for h in train(files, TINY, cfg, out)["history"]]


def test_training_with_the_chunked_loss_follows_the_plain_run(tmp_path):
    files = token_rows(tmp_path)
    losses = {mode: losses_of(files, tmp_path / mode, 12, fused_loss=mode) for mode in ("off", "chunked")}
    assert losses["chunked"] == pytest.approx(losses["off"], abs=1e-4)
    assert losses["off"][-1] < losses["off"][0]


@pytest.mark.slow
def test_the_compiled_step_is_one_graph_and_trains_as_the_eager_one(tmp_path):
    """What the GPU runs (torch.compile over the model and the chunked loss), compiled here by inductor
    for the CPU: one graph (a graph break would split the step and cost the fusion), the same losses."""
    model = GPT(TINY)
    model.fused_loss, model.loss_chunk_rows = "chunked", 24
    x = torch.randint(0, 128, (4, 17))
    explained = torch._dynamo.explain(model)(x[:, :-1], x[:, 1:], return_logits=False)
    assert (explained.graph_count, explained.graph_break_count) == (1, 0), explained.break_reasons
    files = token_rows(tmp_path)
    eager = losses_of(files, tmp_path / "eager", 8, fused_loss="off")
    compiled = losses_of(files, tmp_path / "compiled", 8, fused_loss="chunked", compile="on")
    assert compiled == pytest.approx(eager, abs=1e-4)


def test_fused_loss_auto_is_off_on_the_cpu():
    assert resolve_fused_loss(TrainConfig(), torch.device("cpu")) == "off"
    assert resolve_fused_loss(TrainConfig(fused_loss="chunked"), torch.device("cpu")) == "chunked"


def test_fused_loss_auto_on_cuda_takes_liger_only_when_its_kernel_runs(monkeypatch):
    """A Liger that imports but fails when its Triton kernel is built falls back to our chunked loss."""
    monkeypatch.setattr(loss_module, "liger_available", lambda: True)

    def broken_kernel(hidden, weight, targets):
        raise RuntimeError("triton: unsupported")

    for kernel, usable in ((broken_kernel, False), (chunked_linear_cross_entropy, True)):
        loss_module.liger_usable.cache_clear()
        monkeypatch.setattr(loss_module, "liger_linear_cross_entropy", kernel)
        assert loss_module.liger_usable("cpu") is usable  # the trial, run on the CPU here
    loss_module.liger_usable.cache_clear()
    for usable, expected in ((False, "chunked"), (True, "liger")):
        monkeypatch.setattr(trainer_module, "liger_usable", lambda device, usable=usable: usable)
        assert resolve_fused_loss(TrainConfig(), torch.device("cuda")) == expected


def test_micro_batch_search_halves_until_it_fits():
    tried = []

    def fits(batch: int) -> bool:
        tried.append(batch)
        return batch <= 24

    assert largest_fitting(fits, 128) == 16 and tried == [128, 64, 32, 16]
    assert largest_fitting(lambda b: False, 8) == 1


def test_generation_never_produces_the_padding_ids():
    torch.manual_seed(0)
    model = GPT(TINY).eval()
    plain = model.forward

    def padding_wins(idx, *args, **kwargs):  # the padded ids would win every argmax
        logits, loss = plain(idx, *args, **kwargs)
        logits[..., 100:] += 1000.0
        return logits, loss

    model.forward = padding_wins
    out = model.generate(torch.tensor([[1, 2, 3]]), 8, temperature=0, vocab_limit=100)
    assert out[0, 3:].max() < 100
    assert model.generate(torch.tensor([[1, 2, 3]]), 8, temperature=0)[0, 3:].max() >= 100
