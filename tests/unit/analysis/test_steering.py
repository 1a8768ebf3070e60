import numpy as np
import pytest
import torch

from helpers.analysis import steering as S
from helpers.config import SAEConfig
from helpers.sae.model import make_sae
from tests.conftest import TEXTS, tiny_llama


@pytest.fixture
def sae():
    s = make_sae(SAEConfig(architecture="l1", d_in=32, expansion=2, seed=1)).requires_grad_(False)
    s.b_enc.fill_(0.2)  # make features fire
    return s


def test_clamp_to_own_value_is_identity_and_to_zero_removes_the_contribution(sae):
    h = torch.randn(5, 32)
    f = sae.encode(h)
    i = int(f.sum(0).argmax())
    same = S.clamp_edit(h, sae, [i], [f[:, i]])
    torch.testing.assert_close(same, h)
    zero = S.clamp_edit(h, sae, [i], [0.0])
    torch.testing.assert_close(zero, h - f[:, i : i + 1] * sae.W_dec[i])


def test_hook_is_removed_even_when_generation_raises(sae, tokenizer):
    model = tiny_llama()
    enc = tokenizer(TEXTS[:2], return_tensors="pt", padding=True)
    before = model(**enc).logits
    with pytest.raises(RuntimeError, match="boom"):
        with S.clamp_features(model, sae, 1, {3: 5.0}):
            changed = model(**enc).logits
            assert not torch.equal(changed, before)
            raise RuntimeError("boom")
    torch.testing.assert_close(model(**enc).logits, before, rtol=0, atol=0)
    with S.add_vector(model, 1, torch.ones(32), 0.5):
        assert not torch.equal(model(**enc).logits, before)
    assert torch.equal(model(**enc).logits, before)


def test_bad_clamps_are_clear(sae):
    model = tiny_llama()
    with pytest.raises(ValueError, match="feature 999 is out of range"):
        with S.clamp_features(model, sae, 1, {999: 1.0}):
            pass
    with pytest.raises(ValueError, match="clamp value of feature 2 = nan must be a finite number"):
        with S.clamp_features(model, sae, 1, {2: float("nan")}):
            pass
    with pytest.raises(ValueError, match="out of range"):
        with S.clamp_features(model, sae, 9, {2: 1.0}):
            pass


@pytest.mark.parametrize(
    ("value", "match"),
    [
        (float("nan"), "clamp value of feature 0 = nan must be a finite number in"),  # returned NaN silently
        (3e38, r"= 3e\+38 must be a finite number in \[-1e\+06, 1e\+06\]"),  # failed later, in sampling
        ("5", "clamp value of feature 0 = '5' must be a number"),  # raw TypeError
        (None, "clamp value of feature 0 = None must be a number"),  # raw TypeError
        ([1.0, float("nan")], "clamp value of feature 0 holds 1 NaN or inf value"),
        (torch.tensor([1.0, -2e6]), r"clamp value of feature 0 reaches 2e\+06, beyond ±1e\+06"),
        (["5"], "clamp value of feature 0 must be a number or one number per batch row"),
    ],
)
def test_clamp_values_are_checked_everywhere(sae, value, match):
    h = torch.randn(2, 3, 32)
    with pytest.raises(ValueError, match=match):
        S.clamp_edit(h, sae, [0], [value])
    model = tiny_llama()
    with pytest.raises(ValueError, match=match):
        with S.clamp_features(model, sae, 1, {0: value}):
            pass
    with pytest.raises(ValueError, match=match.replace("clamp value of feature 0", "scale")):
        with S.add_vector(model, 1, torch.ones(32), value):
            pass


def test_add_vector_refuses_a_nan_vector():
    with pytest.raises(ValueError, match="vector holds 1 NaN"):
        with S.add_vector(tiny_llama(), 1, torch.tensor([1.0, float("nan")] + [0.0] * 30), 1.0):
            pass


def test_per_row_clamp_values_equal_one_row_at_a_time(sae):
    h = torch.randn(3, 4, 32)
    out = S.clamp_edit(h, sae, [0], [torch.tensor([0.0, 1.0, 2.0]).view(3, 1)])
    for r, c in enumerate([0.0, 1.0, 2.0]):
        torch.testing.assert_close(out[r], S.clamp_edit(h[r], sae, [0], [c]))


def test_theme_score_and_nll(tokenizer):
    assert S.theme_score(["solar solar rain the", "music"], {"solar"}).tolist() == [pytest.approx(2 / 3), 0.0]
    model = tiny_llama()
    nll = S.continuation_nll(
        model, tokenizer, ["the city", "sleep is"], ["and the rain", "for health and data"]
    )
    assert nll.shape == (2,) and np.isfinite(nll).all() and (nll > 0).all()
    one = S.continuation_nll(model, tokenizer, ["sleep is"], ["for health and data"])
    assert one[0] == pytest.approx(nll[1], rel=1e-4)  # batching and padding do not change it


def _per_text(effect: float, n_prompts: int = 16, samples: int = 3, seed: int = 0):
    import pandas as pd

    rng = np.random.default_rng(seed)
    rows = []
    for method, shift in (("clamp", effect), ("difference of means", 0.0)):
        for p in range(n_prompts):
            base = rng.normal(0.2, 0.05)
            for s in range(samples):
                rows.append(
                    {"feature": 7, "method": method, "strength": 1.0, "prompt": f"p{p}", "sample": s}
                    | {"text": "t", "theme score": base + shift + rng.normal(0, 0.01), "nll": np.log(8.0)}
                )
    return pd.DataFrame(rows)


def test_summary_and_comparison_carry_intervals_over_prompts():
    from helpers.analysis.steering import compare_methods, summarize_steering

    per_text = _per_text(0.1)
    summary = summarize_steering(per_text)
    assert len(summary) == 2 and set(summary["texts"]) == {48} and set(summary["prompts"]) == {16}
    clamp = summary[summary["method"] == "clamp"].iloc[0]
    assert clamp["score low"] < clamp["theme score"] < clamp["score high"]
    assert clamp["perplexity"] == pytest.approx(8.0)
    cmp = compare_methods(per_text)
    assert cmp.iloc[0]["verdict"] == "clamp" and cmp.iloc[0]["difference"] == pytest.approx(0.1, abs=0.02)
    assert compare_methods(_per_text(0.0))["verdict"].iloc[0] == "no winner"
    with pytest.raises(ValueError, match="columns"):
        summarize_steering(per_text.drop(columns="nll"))
    with pytest.raises(ValueError, match="both"):
        compare_methods(per_text[per_text["method"] == "clamp"])


def test_tradeoff_plot_draws_error_bars():
    import matplotlib

    matplotlib.use("Agg")
    from helpers.analysis.steering import summarize_steering
    from helpers.viz.steering_plots import plot_tradeoff

    fig = plot_tradeoff(summarize_steering(_per_text(0.1)), {7: "Fitness"})
    assert len(fig.axes) == 1 and len(fig.axes[0].containers) == 2  # one errorbar container per method
