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


def _per_text(effect: float, n_prompts: int = 16, seeds: int = 3, seed: int = 0):
    import pandas as pd

    rng = np.random.default_rng(seed)
    rows = []
    for method, shift in (("clamp", effect), ("difference of means", 0.0)):
        for p in range(n_prompts):
            base = rng.normal(0.2, 0.05)
            for s in range(seeds):
                rows.append(
                    {"feature": 7, "method": method, "strength": 1.0, "prompt": f"p{p}", "seed": s}
                    | {"text": "t", "theme score": base + shift + rng.normal(0, 0.01), "nll": np.log(8.0)}
                )
    return pd.DataFrame(rows)


def test_summary_and_comparison_carry_intervals_over_prompts():
    from helpers.analysis.steering import compare_methods, summarize_steering

    per_text = _per_text(0.1)
    summary = summarize_steering(per_text)
    assert len(summary) == 2 and set(summary["texts"]) == {48} and set(summary["prompts"]) == {16}
    assert set(summary["seeds"]) == {3} and set(summary["unscored"]) == {0}
    clamp = summary[summary["method"] == "clamp"].iloc[0]
    assert clamp["score low"] < clamp["theme score"] < clamp["score high"]
    assert clamp["perplexity"] == pytest.approx(8.0)
    cmp = compare_methods(per_text)
    assert cmp.iloc[0]["verdict"] == "clamp" and cmp.iloc[0]["difference"] == pytest.approx(0.1, abs=0.02)
    assert cmp.iloc[0]["seeds"] == 3 and 0.05 < cmp.iloc[0]["seed min"] <= cmp.iloc[0]["seed max"] < 0.15
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


def test_texts_without_a_content_word_score_zero_and_are_counted():
    vocab = {"solar"}
    texts = ["solar rain", "[ [ [ [", "the the of"]
    np.testing.assert_allclose(S.theme_score(texts, vocab), [0.5, 0.0, 0.0])
    assert np.isnan(S.theme_score(texts, vocab, empty=float("nan"))[1:]).all()
    assert S.content_words(texts).tolist() == [2, 0, 0]
    per_text = _per_text(0.1, n_prompts=4)
    per_text["content words"] = 3
    per_text.loc[per_text.index[:2], ["theme score", "content words"]] = [0.0, 0]
    per_text.loc[per_text.index[2], "theme score"] = np.nan  # a NaN score is left out and counted
    row = S.summarize_steering(per_text).iloc[0]
    assert (row["texts"], row["unscored"], row["no content word"]) == (11, 1, 2)


def test_a_ranking_needs_every_seed_to_agree():
    per_text = _per_text(0.1)
    flip = (per_text["method"] == "clamp") & (per_text["seed"] == 2)
    per_text.loc[flip, "theme score"] -= 0.15  # seed 2 alone ranks the other way
    row = S.compare_methods(per_text).iloc[0]
    assert row["low"] > 0 and row["seed min"] < 0 and row["verdict"] == "no winner"


def _curve_texts(clamp_ppl, dom_ppl, clamp_score, dom_score, base_ppl=4.0, n_prompts=8, seeds=3, noise=0.0):
    """Per-text results whose mean perplexity and score at strengths 1, 2, 4 are the given values."""
    import pandas as pd

    rng = np.random.default_rng(0)
    rows = []
    curves = {"clamp": (clamp_ppl, clamp_score), "difference of means": (dom_ppl, dom_score)}
    for p in range(n_prompts):
        for s in range(seeds):
            rows.append(
                {"method": "unsteered", "strength": 0.0, "ppl": base_ppl, "score": 0.0, "p": p, "s": s}
            )
            for method, (ppl, score) in curves.items():
                for k, level in enumerate((1.0, 2.0, 4.0)):
                    rows.append(
                        {
                            "method": method,
                            "strength": level,
                            "ppl": ppl[k],
                            "score": score[k],
                            "p": p,
                            "s": s,
                        }
                    )
    df = pd.DataFrame(rows)
    return pd.DataFrame(
        {
            "feature": 3,
            "method": df["method"],
            "strength": df["strength"],
            "prompt": "q" + df["p"].astype(str),
        }
        | {"seed": df["s"], "text": "t", "nll": np.log(df["ppl"])}
        | {"theme score": df["score"] + noise * rng.normal(size=len(df))}
    )


def test_matched_perplexity_interpolates_each_method_at_the_same_cost():
    # clamp reaches 2 x 4 = 8 at strength 1.5 (score 0.3 there); difference of means at 1.0 (score 0.2)
    per_text = _curve_texts((6.0, 10.0, 20.0), (8.0, 16.0, 32.0), (0.2, 0.4, 0.5), (0.2, 0.3, 0.35))
    row = S.matched_perplexity(per_text, ratio=2.0, n_boot=50).iloc[0]
    assert row["clamp at (x max act)"] == pytest.approx(1.5) and row["clamp score"] == pytest.approx(0.3)
    assert row["difference of means at (x max act)"] == pytest.approx(1.0)
    assert row["difference"] == pytest.approx(0.1) and row["seeds"] == 3 and row["prompts"] == 8
    assert row["low"] == pytest.approx(0.1) and row["verdict"] == "clamp"  # no noise: every draw agrees
    never = S.matched_perplexity(per_text, ratio=10.0, n_boot=20).iloc[0]  # clamp tops out at 20 < 40
    assert np.isnan(never["clamp score"]) and never["verdict"] == "not reached"
    noisy = _curve_texts((6.0, 10.0, 20.0), (8.0, 16.0, 32.0), (0.2, 0.3, 0.5), (0.2, 0.3, 0.35), noise=0.3)
    assert S.matched_perplexity(noisy, n_boot=200).iloc[0]["verdict"] == "no winner"
    with pytest.raises(ValueError, match="ratio"):
        S.matched_perplexity(per_text, ratio=1.0)
    with pytest.raises(ValueError, match="unsteered"):
        S.matched_perplexity(per_text[per_text["method"] != "unsteered"])


def test_no_matched_verdict_when_a_method_misses_the_target_in_many_draws():
    """06 once ranked Technology's methods at 2x perplexity on the 1,420 of 2,000 draws in which both
    reached it: an interval over the draws left after dropping 29% of them is no 95% interval."""
    per_text = _curve_texts((5.0, 6.0, 20.0), (8.0, 16.0, 32.0), (0.2, 0.3, 0.5), (0.1, 0.1, 0.1))
    late = (per_text["method"] == "clamp") & (per_text["strength"] == 4.0)
    low = per_text["prompt"].isin([f"q{p}" for p in range(4, 8)])
    per_text.loc[late & low, "nll"] = np.log(6.5)  # half the prompts never reach 8: resamples of them miss it
    row = S.matched_perplexity(per_text, ratio=2.0, n_boot=400).iloc[0]
    reached = int(row["draws"].split("/")[0])
    assert np.isfinite(row["difference"]) and reached < 0.975 * 400
    assert row["verdict"] == f"no verdict: reached in {reached / 400:.0%} of draws"
    assert (
        S._matched_verdict(None, np.array([1.0]), "a", "b", 0.1, 1420, 2000)
        == "no verdict: reached in 71% of draws"
    )


def test_strength_at_and_value_at():
    assert S.strength_at(np.array([0, 1, 2.0]), np.array([4, 6, 12.0]), 8.0) == pytest.approx(4 / 3)
    assert S.strength_at(np.array([0, 1.0]), np.array([4, 6.0]), 8.0) == float("inf")
    assert np.isnan(S.value_at(np.array([0, 1.0]), np.array([0, 1.0]), float("inf")))
    assert S.value_at(np.array([0, 2.0]), np.array([0, 1.0]), 0.5) == pytest.approx(0.25)


@pytest.mark.parametrize("make", ["llama", "gpt2"])
@pytest.mark.parametrize("keep_first", [True, False])
def test_the_first_token_is_left_unedited(sae, tokenizer, make, keep_first):
    """Block 1's output as the next block reads it: every sequence's first real token (column 2 of a row
    left-padded by two, position 0) keeps its clean value unless keep_first=False; the rest is edited."""
    from helpers.model.hooks import edit_block
    from tests.conftest import tiny_gpt2

    model = tiny_llama() if make == "llama" else tiny_gpt2()
    ids = torch.tensor([[0, 0, 5, 6, 7], [8, 9, 10, 11, 12]])
    mask = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]])
    pos = (mask.cumsum(-1) - 1).clamp(min=0)
    first = torch.tensor([[False, False, True, False, False], [True, False, False, False, False]])

    def block_1(steer, **kw):
        seen = []
        with steer, edit_block(model, 1, seen.append):  # registered after the steering edit: sees its output
            model(input_ids=ids, attention_mask=mask, **kw)
        return seen[0]

    for kw in ({"position_ids": pos}, {}):  # positions given (generation) or read from the mask
        clean = block_1(torch.no_grad(), **kw)
        for steer in (
            S.add_vector(model, 1, torch.ones(32), 3.0, keep_first=keep_first),
            S.clamp_features(model, sae, 1, {3: 5.0}, keep_first=keep_first),
        ):
            moved = (block_1(steer, **kw) - clean).norm(dim=-1) > 1e-4
            assert moved[mask.bool() & ~first].all()
            assert moved[first].all() == (not keep_first) and moved[first].any() == (not keep_first)


def test_first_positions_from_positions_mask_or_column_zero():
    ids = torch.zeros(2, 4, dtype=torch.long)
    pos = torch.tensor([[0, 0, 0, 1], [0, 1, 2, 3]])  # row 0 left-padded by two
    assert S.first_positions((), {"input_ids": ids, "position_ids": pos}).tolist() == (pos == 0).tolist()
    mask = torch.tensor([[0, 0, 1, 1], [1, 1, 1, 1]])
    got = S.first_positions((ids,), {"attention_mask": mask})
    assert got.tolist() == [[False, False, True, False], [True, False, False, False]]
    assert S.first_positions((ids,), {}).tolist() == [[True, False, False, False]] * 2

    class Cached:
        def get_seq_length(self):
            return 5

    assert S.first_positions((ids[:, :1],), {"past_key_values": Cached()}) is None
