import pytest

from model.config import MODEL_PRESETS
from model.gpt import GPT, GPTConfig
from model.sizing import chinchilla_loss, plan, preset_params


def test_token_budget_gives_twenty_tokens_per_parameter():
    optimal, small = plan(tokens=2e10, gpu="H100", mfu=0.5)
    assert optimal.params == pytest.approx(1e9)
    assert optimal.flops == pytest.approx(6 * 1e9 * 2e10)
    assert optimal.gpu_hours == pytest.approx(1.2e20 / (989e12 * 0.5) / 3600)
    # Same compute, a quarter of the parameters, 16x the tokens per parameter, slightly higher loss.
    assert small.flops == pytest.approx(optimal.flops)
    assert small.tokens_per_param == pytest.approx(320)
    assert small.est_loss > optimal.est_loss
    assert chinchilla_loss(1e9, 2e10) < chinchilla_loss(1e8, 2e9)


def test_preset_parameter_formula_matches_the_model():
    for preset in ("tiny", "small"):
        n_layer, n_head, n_embd = MODEL_PRESETS[preset]
        model = GPT(GPTConfig(vocab_size=1000, seq_len=64, n_layer=n_layer, n_head=n_head, n_embd=n_embd))
        assert preset_params(preset, 1000, 64) == model.num_params()


def test_bad_budgets_are_rejected():
    with pytest.raises(ValueError, match="exactly one"):
        plan(tokens=1e9, flops=1e18)
    with pytest.raises(ValueError, match="unknown GPU"):
        plan(tokens=1e9, gpu="Z9000")
