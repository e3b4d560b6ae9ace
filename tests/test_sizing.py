import pytest

from model.config import MODEL_PRESETS
from model.gpt import GPT, GPTConfig
from model.sizing import chinchilla_loss, plan, preset_params


def test_token_budget_gives_twenty_tokens_per_parameter_and_never_more_tokens():
    optimal, small = plan(tokens=2e10, gpu="H100", mfu=0.5)
    assert optimal.params == pytest.approx(1e9) and optimal.tokens == pytest.approx(2e10)
    assert optimal.flops == pytest.approx(6 * 1e9 * 2e10)
    assert optimal.gpu_hours == pytest.approx(1.2e20 / (989e12 * 0.5) / 3600)
    # The smaller model reads the same data (a token budget is what the team has), not 4x as much.
    assert small.tokens == pytest.approx(2e10) and small.params == pytest.approx(2.5e8)
    assert small.tokens_per_param == pytest.approx(80) and small.est_loss > optimal.est_loss
    assert chinchilla_loss(1e9, 2e10) < chinchilla_loss(1e8, 2e9)


def test_compute_budget_keeps_the_inference_aware_option_at_the_same_compute():
    optimal, small = plan(flops=1.2e20)
    assert small.flops == pytest.approx(optimal.flops) and small.tokens_per_param == pytest.approx(320)


def test_epochs_repeat_the_data_with_diminishing_returns():
    from model.sizing import effective_tokens

    [one, _], [four, _], [forty, _] = (plan(tokens=1e9, epochs=e) for e in (1, 4, 40))
    assert four.tokens == pytest.approx(4e9) and four.epochs == 4
    # Muennighoff et al.: 4 epochs are worth nearly 4x fresh data, 40 epochs far less than 40x.
    assert 3.5e9 < four.effective_tokens < 4e9 and forty.effective_tokens < 17e9
    assert four.params > one.params and four.est_loss < one.est_loss
    assert effective_tokens(1e9, 1) == 1e9
    with pytest.raises(ValueError, match="only with a token budget"):
        plan(flops=1e20, epochs=2)


def test_numbers_read_as_people_write_them():
    from model.sizing import human

    assert [human(x) for x in (124e6, 2.0e9, 350e3, 1.2e12, 7)] == ["124M", "2B", "350K", "1.2T", "7"]


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
