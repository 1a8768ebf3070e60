import numpy as np
import pytest
import torch

from helpers.analysis import attribution as A
from helpers.analysis import steering as S
from helpers.config import SAEConfig
from helpers.model.hooks import edit_block
from helpers.sae.model import make_sae
from helpers.stats import Interval
from tests.conftest import tiny_gpt2, tiny_llama

LAYER = 1
PROMPT = "the city and the rain is for music"


@pytest.fixture
def sae():
    """A tiny TopK SAE on the tiny models' 32-dim residual: 128 latents, 8 active per token."""
    return make_sae(SAEConfig(architecture="topk", d_in=32, expansion=4, k=8, seed=2)).requires_grad_(False)


@pytest.fixture
def model():
    return tiny_llama()


def _clean_logits(model, tokenizer, prompt=PROMPT):
    with torch.no_grad():
        return model(**tokenizer(prompt, return_tensors="pt")).logits[0, -1]


def test_splice_leaves_the_prediction_unchanged_and_removes_its_hook(model, sae, tokenizer):
    clean = _clean_logits(model, tokenizer)
    res = A.attribute_features(model, tokenizer, sae, LAYER, PROMPT)
    assert res.target == int(clean.argmax())  # default target: the model's top next token
    assert res.metric == pytest.approx(float(clean[res.target]), abs=1e-5)
    assert res.scores.shape == (sae.cfg.d_sae,)
    T = len(res.input_ids)
    assert res.fires.max() <= T - 1 and res.fires.sum() == 8 * (T - 1)  # k per spliced position
    assert np.all(res.scores[res.fires == 0] == 0)  # inactive latents get nothing
    torch.testing.assert_close(_clean_logits(model, tokenizer), clean, rtol=0, atol=0)


def test_attribution_is_the_derivative_along_each_feature(model, sae, tokenizer):
    """a_i = d/dα m(f with f_i scaled by α) at α = 1: central finite differences of the measured drop."""
    res = A.attribute_features(model, tokenizer, sae, LAYER, PROMPT)
    feats = res.top(6)["feature"].tolist()
    eps = 1e-2
    up = A.ablation_effects(model, sae, res, feats, factor=1 + eps)
    down = A.ablation_effects(model, sae, res, feats, factor=1 - eps)
    fd = (down - up) / (2 * eps)
    np.testing.assert_allclose(fd, res.top(6)["attribution"], rtol=2e-2, atol=2e-3)
    np.testing.assert_allclose(A.ablation_effects(model, sae, res, feats, factor=1.0), 0, atol=1e-5)


def test_ablation_is_first_order_when_features_are_small(model, sae, tokenizer):
    """With decoder rows 100x shorter each feature moves the residual a little: the linear estimate
    and the measured drop agree closely, sign and size."""
    with torch.no_grad():
        sae.W_dec.mul_(0.01)
    res = A.attribute_features(model, tokenizer, sae, LAYER, PROMPT)
    top = res.top(8)
    measured = A.ablation_effects(model, sae, res, n=8)
    np.testing.assert_allclose(measured, top["attribution"], rtol=0.05, atol=2e-5)
    chk = A.attribution_vs_ablation(model, tokenizer, sae, LAYER, [PROMPT, "sleep is for health"], 5)
    assert chk.pearson > 0.99 and chk.spearman > 0.9


@pytest.mark.parametrize("make", [tiny_llama, tiny_gpt2])
def test_ablation_equals_clamping_the_feature_to_zero(make, sae, tokenizer):
    """The widened batch (one row per feature from the splice on) measures what clamping each
    feature to 0 in its own forward pass does (steering's clamp edit, every position)."""
    model = make()
    res = A.attribute_features(model, tokenizer, sae, LAYER, PROMPT, skip_first=False)
    feats = res.top(5)["feature"].tolist()
    measured = A.ablation_effects(model, sae, res, feats, batch_size=2)  # 3 chunks
    ids = torch.tensor([list(res.input_ids)])
    want = []
    with torch.no_grad():
        for i in feats:
            with S.clamp_features(model, sae, LAYER, {i: 0.0}, keep_first=False):
                want.append(res.metric - float(model(input_ids=ids).logits[0, -1, res.target]))
    np.testing.assert_allclose(measured, want, rtol=1e-4, atol=1e-4)


def test_first_token_is_left_alone_by_default(model, sae, tokenizer):
    res = A.attribute_features(model, tokenizer, sae, LAYER, PROMPT)
    i = int(res.top(1)["feature"][0])
    ids = torch.tensor([list(res.input_ids)])

    def edit(h):
        out = h.clone()
        f = sae.encode(h[0, 1:])
        out[0, 1:] -= f[:, i : i + 1] * sae.W_dec[i]
        return out

    with torch.no_grad(), edit_block(model, LAYER, edit):
        want = res.metric - float(model(input_ids=ids).logits[0, -1, res.target])
    assert A.ablation_effects(model, sae, res, [i])[0] == pytest.approx(want, abs=1e-4)


def test_logit_difference_is_the_difference_of_attributions(model, sae, tokenizer):
    t, c = "water", "music"
    diff = A.attribute_features(model, tokenizer, sae, LAYER, PROMPT, target=t, contrast=c)
    a_t = A.attribute_features(model, tokenizer, sae, LAYER, PROMPT, target=t)
    a_c = A.attribute_features(model, tokenizer, sae, LAYER, PROMPT, target=c)
    np.testing.assert_allclose(diff.scores, a_t.scores - a_c.scores, atol=1e-5)
    assert diff.metric == pytest.approx(a_t.metric - a_c.metric, abs=1e-5)
    assert diff.error == pytest.approx(a_t.error - a_c.error, abs=1e-4)
    assert "water" in diff.metric_name and "music" in diff.metric_name
    by_id = A.attribute_features(model, tokenizer, sae, LAYER, PROMPT, target=a_t.target)
    np.testing.assert_array_equal(by_id.scores, a_t.scores)


def test_top_next_tokens_are_the_softmax_top(model, tokenizer):
    clean = torch.softmax(_clean_logits(model, tokenizer), -1)
    top = A.top_next_tokens(model, tokenizer, PROMPT, 3)
    assert [i for i, _, _ in top] == torch.topk(clean, 3).indices.tolist()
    assert [p for _, _, p in top] == pytest.approx(torch.topk(clean, 3).values.tolist(), abs=1e-6)


def test_correlations_match_scipy():
    from scipy.stats import pearsonr, spearmanr

    rng = np.random.default_rng(0)
    a = rng.normal(size=30)
    m = a + rng.normal(size=30)
    p, s = A.correlations(a, m)
    assert p == pytest.approx(pearsonr(a, m)[0]) and s == pytest.approx(spearmanr(a, m)[0])
    assert np.isnan(A.correlations(a, np.ones(30))[0])
    with pytest.raises(ValueError, match="same length"):
        A.correlations(a, m[:-1])
    with pytest.raises(ValueError, match="at least 2 pairs"):
        A.correlations(a[:1], m[:1])


def test_attribution_vs_ablation_pairs_and_intervals(model, sae, tokenizer):
    prompts = [PROMPT, "sleep is for health", "a model of data and code"]
    chk = A.attribution_vs_ablation(model, tokenizer, sae, LAYER, prompts, n_features=4)
    p = chk.pairs
    assert len(p) == 12 and sorted(p["prompt_id"].unique()) == [0, 1, 2]
    assert (p.groupby("prompt_id")["rank"].max() == 3).all()
    assert (chk.pearson, chk.spearman) == pytest.approx(A.correlations(p["attributed"], p["measured"]))
    res = A.attribute_features(model, tokenizer, sae, LAYER, prompts[1])
    np.testing.assert_allclose(p.loc[p.prompt_id == 1, "attributed"], res.top(4)["attribution"], atol=1e-6)
    ci = chk.intervals(n_boot=50)
    assert set(ci) == {"pearson", "spearman"} and all(isinstance(v, Interval) for v in ci.values())
    assert ci["pearson"].n == 3 and ci["pearson"].value == pytest.approx(chk.pearson)
    assert chk.seconds > 0


def test_random_active_features_are_the_baseline(model, sae, tokenizer):
    prompts = [PROMPT, "sleep is for health", "a model of data and code"]
    chk = A.attribution_vs_ablation(model, tokenizer, sae, LAYER, prompts, n_features=3, n_random=4, seed=5)
    p = chk.pairs
    assert p.groupby(["prompt_id", "kind"]).size().unstack().to_dict("list") == {
        "random": [4] * 3,
        "top": [3] * 3,
    }
    for pid, g in p.groupby("prompt_id"):
        res = A.attribute_features(model, tokenizer, sae, LAYER, prompts[pid])
        rnd = g[g["kind"] == "random"]["feature"].to_numpy()
        assert (res.fires[rnd] > 0).all() and not set(rnd) & set(g[g["kind"] == "top"]["feature"])
        np.testing.assert_allclose(g["attributed"], res.scores[g["feature"]], atol=1e-6)
        np.testing.assert_allclose(
            g["measured"], A.ablation_effects(model, sae, res, g["feature"].tolist()), atol=1e-5
        )
    top = p[p["kind"] == "top"]
    assert (chk.pearson, chk.spearman) == pytest.approx(A.correlations(top["attributed"], top["measured"]))
    again = A.attribution_vs_ablation(model, tokenizer, sae, LAYER, prompts, n_features=3, n_random=4, seed=5)
    assert again.pairs["feature"].tolist() == p["feature"].tolist()  # seeded
    table = chk.by_kind(n_boot=50)
    assert list(table.index) == ["top", "random"] and table.loc["random", "pairs"] == 12
    assert table.loc["top", "low"] <= table.loc["top", "mean |measured|"] <= table.loc["top", "high"]
    with pytest.raises(ValueError, match="no pairs of kind 'other'"):
        chk.intervals(kind="other")
    with pytest.raises(ValueError, match="n_random"):
        A.attribution_vs_ablation(model, tokenizer, sae, LAYER, prompts, n_random=-1)


def test_ablation_path_runs_from_untouched_to_ablated(model, sae, tokenizer):
    res = A.attribute_features(model, tokenizer, sae, LAYER, PROMPT)
    i = int(res.top(1)["feature"][0])
    path = A.ablation_path(model, sae, res, i, [0.0, 0.5, 1.0])
    assert path[0] == pytest.approx(0.0, abs=1e-5)
    assert path[2] == pytest.approx(A.ablation_effects(model, sae, res, [i])[0], abs=1e-5)
    assert path[1] == pytest.approx(A.ablation_effects(model, sae, res, [i], factor=0.5)[0], abs=1e-5)
    # near 0 removed the path follows the tangent: drop ≈ fraction × attribution
    small = A.ablation_path(model, sae, res, i, [1e-3])[0]
    assert small == pytest.approx(1e-3 * res.scores[i], rel=0.05, abs=1e-6)
    with pytest.raises(ValueError, match="one factor per feature"):
        A.ablation_effects(model, sae, res, [i, i], factor=[0.0])
    with pytest.raises(ValueError, match="at least one fraction"):
        A.ablation_path(model, sae, res, i, [])


def test_worst_misses_name_the_kind_of_miss():
    import pandas as pd

    pairs = pd.DataFrame({"attributed": [1.0, 2.0, -1.0, 0.5], "measured": [3.0, 0.5, 1.0, 0.6]})
    got = A.worst_misses(pairs, n=3)
    assert got["gap"].tolist() == [2.0, 2.0, -1.5]
    assert got["miss"].tolist() == ["saturated", "wrong sign", "overshoot"]


def test_text_prefixes(tokenizer):
    assert A.text_prefixes(tokenizer, ["the city and the rain", "sleep is for health"], [2, 3]) == [
        "the city",
        "sleep is for",
    ]
    assert A.text_prefixes(tokenizer, ["solar heat"], 5) == ["solar heat"]
    with pytest.raises(ValueError, match="one per text"):
        A.text_prefixes(tokenizer, ["solar heat"], [1, 2])
    # issue 25: one rule for whole numbers (validate.is_whole): 1.0 was a raw TypeError, True is refused
    assert A.text_prefixes(tokenizer, ["solar heat"], 1.0) == ["solar"]
    with pytest.raises(ValueError, match=r"^n_tokens = True must be a whole number >= 1$"):
        A.text_prefixes(tokenizer, ["solar heat"], True)


def test_bad_inputs_are_one_clear_line(model, sae, tokenizer):
    run = A.attribute_features
    with pytest.raises(ValueError, match="non-empty text"):
        run(model, tokenizer, sae, LAYER, "")
    with pytest.raises(ValueError, match="non-empty text"):
        run(model, tokenizer, sae, LAYER, "   ")
    with pytest.raises(ValueError, match="at least two tokens"):
        run(model, tokenizer, sae, LAYER, "rain")
    with pytest.raises(ValueError, match="not one token of the vocabulary.*unknown"):
        run(model, tokenizer, sae, LAYER, PROMPT, target="zebra")
    with pytest.raises(ValueError, match="encodes to 2 token"):
        run(model, tokenizer, sae, LAYER, PROMPT, target="the city")
    with pytest.raises(ValueError, match="token id 999 is out of range"):
        run(model, tokenizer, sae, LAYER, PROMPT, target=999)
    with pytest.raises(ValueError, match="same token"):
        run(model, tokenizer, sae, LAYER, PROMPT, target="rain", contrast="rain")
    with pytest.raises(ValueError, match="layer 9 is out of range"):
        run(model, tokenizer, sae, 9, PROMPT)
    wide = make_sae(SAEConfig(architecture="topk", d_in=16, expansion=2, k=4))
    with pytest.raises(ValueError, match="d_in = 16"):
        run(model, tokenizer, wide, LAYER, PROMPT)
    res = run(model, tokenizer, sae, LAYER, PROMPT)
    for bad in (0, -3, 2.5):
        with pytest.raises(ValueError, match=">= 1"):
            res.top(bad)
    with pytest.raises(ValueError, match="n = 0 must be"):
        A.ablation_effects(model, sae, res, n=0)
    with pytest.raises(ValueError, match="feature 999 is out of range"):
        A.ablation_effects(model, sae, res, [999])
    with pytest.raises(ValueError, match="n_features"):
        A.attribution_vs_ablation(model, tokenizer, sae, LAYER, [PROMPT], n_features=0)
    with pytest.raises(ValueError, match="at least one prompt"):
        A.attribution_vs_ablation(model, tokenizer, sae, LAYER, [])
    with pytest.raises(ValueError, match="non-empty"):
        A.top_next_tokens(model, tokenizer, "")
    # every hook is gone after the failures
    torch.testing.assert_close(
        _clean_logits(model, tokenizer),
        tiny_llama().eval()(**tokenizer(PROMPT, return_tensors="pt")).logits[0, -1],
    )


def test_a_prompt_too_long_is_refused_before_any_pass(model, sae, tokenizer, monkeypatch):
    # issue 28: a 10,000-word prompt (11,006 tokens) ran attribution 90 s, then failed to allocate; past the
    # model's context (64 tokens for the tiny models) llama ran silently
    calls = []
    model.register_forward_pre_hook(lambda m, a: calls.append(1))
    long = " ".join(["rain"] * 65)
    context = (
        r"^the prompt \(the model's context is 64 tokens\) is 65 tokens long; the limit is 64: shorten it$"
    )
    with pytest.raises(ValueError, match=context):
        A.attribute_features(model, tokenizer, sae, LAYER, long)
    with pytest.raises(ValueError, match=context):
        A.top_next_tokens(model, tokenizer, long)
    with pytest.raises(ValueError, match=r"^prompt 1: the prompt \(the model's context is 64 tokens\)"):
        A.attribution_vs_ablation(model, tokenizer, sae, LAYER, [PROMPT, long])  # before prompt 0 runs
    monkeypatch.setattr(A, "MAX_ATTRIBUTION_TOKENS", 8)  # what fits in memory (2,048 for SmolLM2)
    with pytest.raises(
        ValueError,
        match=r"^the prompt \(attribution's backward pass holds ~1.3 MiB per token\) is 9 tokens long; "
        r"the limit is 8: shorten it$",
    ):
        A.attribute_features(model, tokenizer, sae, LAYER, " ".join(["rain"] * 9))
    assert calls == []  # every refusal came before a forward pass
    assert A.top_next_tokens(model, tokenizer, " ".join(["rain"] * 9), 2)  # no backward: the context only
    assert len(A.attribute_features(model, tokenizer, sae, LAYER, " ".join(["rain"] * 8)).input_ids) == 8


def test_whole_number_arguments_share_one_guard(model, sae, tokenizer):
    res = A.attribute_features(model, tokenizer, sae, LAYER, PROMPT)
    for bad in ("3", None, float("nan"), True):  # was a raw TypeError for "3" and None
        with pytest.raises(ValueError, match=r"^n = .* must be a whole number >= 1$"):
            res.top(bad)
    with pytest.raises(ValueError, match=r"^batch_size = 2.5 must be a whole number >= 1$"):
        A.ablation_effects(model, sae, res, batch_size=2.5)
    with pytest.raises(ValueError, match=r"^factor = '0' must be a number$"):  # was a raw TypeError
        A.ablation_effects(model, sae, res, factor="0")
