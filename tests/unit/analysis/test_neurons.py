"""Dense units turned into firings, labelled and scored like SAE features."""

import numpy as np
import pandas as pd
import pytest
import torch

from helpers.analysis import features as F
from helpers.analysis import labels as autolabel
from helpers.analysis import neurons as N
from helpers.stats import Interval


def test_dense_units_fire_on_their_heavier_tail():
    rng = np.random.default_rng(0)
    acts = rng.normal(size=(400, 3)).astype(np.float32)
    acts[:10, 1] = -20.0  # unit 1: a heavy low tail
    acts[10:20, 0] = 9.0  # unit 0: a heavy high tail
    train = np.arange(400) < 300
    u = N.dense_units(acts, train, 10 / 300, torch.eye(3), "residual dimension", chunk=64)
    assert u.signs.tolist()[:2] == [1, -1]
    np.testing.assert_array_equal(u.index.counts[:2], [10, 10])  # the 10 planted rows (all training rows)
    assert set(u.index.of(1)[0].tolist()) == set(range(10)) and (u.index.values > 0).all()
    torch.testing.assert_close(u.directions[1], -torch.eye(3)[1])  # what fires is the negative side
    assert N.train_density(u.index, train)[0] == pytest.approx(10 / 300)
    assert "below" in u.describe(1) and u.feature_id(2) == 2
    with pytest.raises(ValueError, match="density"):
        N.dense_units(acts, train, 0.7, torch.eye(3), "x")
    with pytest.raises(ValueError, match="directions"):
        N.dense_units(acts, train, 0.1, torch.eye(4), "x")


def test_a_unit_that_tracks_a_token_gets_a_perfect_label():
    rng = np.random.default_rng(1)
    tokens = rng.integers(0, 6, 600)
    docs = np.repeat(np.arange(20), 30)
    pos = np.tile(np.arange(1, 31), 20)
    acts = rng.normal(0, 0.1, size=(600, 2)).astype(np.float32)
    acts[:, 0] += 5.0 * (tokens == 3)  # unit 0 fires on token 3
    train, ev = docs < 15, docs >= 15
    density = (tokens[train] == 3).mean()
    u = N.dense_units(acts, train, float(density), torch.eye(2), "MLP neuron")
    W_U = torch.zeros(8, 2)
    W_U[6:, 0] = 1.0  # unit 0 promotes tokens 6 and 7, which never occur: only its enriched token counts
    nxt = autolabel.next_tokens(tokens, docs, pos)
    themes = ["x", "y"]
    out, counts = N.unit_labels(u, tokens, nxt, docs % 2, themes, train, ev, W_U, docs, seed=0)
    assert out.index.name == "MLP neuron" and out.loc[0, "token_auroc"] == 1.0
    assert out.loc[0, "next_token_auroc"] == 0.5 and "label" not in out.columns
    assert counts.groups.tolist() == [15, 16, 17, 18, 19]  # the held-out prompts are the groups
    cmp = N.compare_kinds({"a": counts, "b": counts}, n_boot=50)
    iv = cmp.loc["a", "mean"]
    assert isinstance(iv, Interval) and cmp.loc["a", "units"] == 2 and cmp.loc["a", "prompts"] == 5
    assert iv.n == 5 and iv.value == pytest.approx(out["token_auroc"].mean())
    # biased under prompt resampling (their percentile intervals missed their own point values): no intervals
    for col in ("median (no interval)", "share > 0.9 (no interval)", "random share > 0.9"):
        assert isinstance(cmp.loc["a", col], float), col
    assert cmp.loc["a", "median (no interval)"] == pytest.approx(round(out["token_auroc"].median(), 3))
    with pytest.raises(ValueError, match="too few"):
        N.compare_kinds({"a": counts.subset([0])})
    diff = N.kind_differences({"a": counts, "b": counts}, [("a", "b")], n_boot=50)
    assert diff.loc[0, "mean a - mean b"].value == 0 and not diff.loc[0, "clear"]


def test_compare_kinds_resamples_prompts_not_units():
    """Every interval is over groups (prompts): one prompt where the label fails widens the interval,
    however many units there are; and kinds counted on other prompts are refused."""
    rng = np.random.default_rng(5)
    n_units, n_groups = 40, 6
    own = np.zeros((n_units, n_groups, 2, 2), np.int64)
    own[:, :, 1, 1] = 5  # flagged and firing
    own[:, :, 0, 0] = 50  # silent, not flagged
    own[:, 0, 1, 1], own[:, 0, 0, 1] = 0, 5  # prompt 0: every firing missed
    rnd = rng.integers(1, 20, own.shape)
    c = autolabel.DetectionCounts(np.arange(n_units), np.arange(n_groups), own, rnd)
    per_unit = autolabel.auroc_from_counts(own)
    assert per_unit == pytest.approx(np.full(n_units, (25 / 30 + 1) / 2))
    cmp = N.compare_kinds({"k": c}, n_boot=300)
    iv = cmp.loc["k", "mean"]
    assert iv.n == n_groups and iv.low < iv.value < iv.high and iv.high - iv.low > 0.05
    other = autolabel.DetectionCounts(np.arange(n_units), np.arange(1, n_groups + 1), own, rnd)
    with pytest.raises(ValueError, match="other held-out prompts"):
        N.compare_kinds({"k": c, "o": other})
    d = N.prompt_draws(n_groups, 10, seed=3)
    assert d.shape == (10, n_groups) and (d.sum(1) == n_groups).all()
    np.testing.assert_array_equal(d, N.prompt_draws(n_groups, 10, seed=3))


def test_sae_units_fire_where_positive():
    f = np.zeros((5, 3), np.float32)
    f[[1, 3], 2] = [0.5, 2.0]
    r, c = np.nonzero(f)
    index = F.FeatureIndex.from_entries(r, c, f[r, c], 5, 3)
    u = N.sae_units(index, torch.ones(3, 4))
    assert u.describe(2) == "SAE feature 2: fires where > 0" and u.W_dec.shape == (3, 4)
    pd.testing.assert_index_equal(pd.Index(u.index.of(2)[0]), pd.Index([1, 3], dtype=np.int32))


def test_sae_units_score_as_the_feature_labels_do():
    """Notebook 04 reuses section 5's feature scores for the SAE row: they must be unit_labels' own."""
    rng = np.random.default_rng(2)
    tokens = rng.integers(0, 8, 300)
    docs = np.repeat(np.arange(10), 30)
    pos = np.tile(np.arange(1, 31), 10)
    f = np.maximum(rng.normal(size=(300, 5)), 0).astype(np.float32) * (rng.random((300, 5)) < 0.2)
    f[:, 0] += 3.0 * (tokens == 2)
    r, c = np.nonzero(f)
    index = F.FeatureIndex.from_entries(r, c, f[r, c], 300, 5)
    W_dec, W_U = torch.randn(5, 4), torch.randn(8, 4)
    train, ev = docs < 7, docs >= 7
    codes, themes = docs % 3, ["a", "b", "c"]
    nxt = autolabel.next_tokens(tokens, docs, pos)
    lifts = F.theme_lifts(index, codes, themes, train)
    enr = autolabel.enrichment(index, tokens, train)
    parts = autolabel.label_parts(lifts, enr, autolabel.top_logit_tokens(W_dec, W_U))
    want = autolabel.label_detection_scores(index, tokens, nxt, ev, parts, seed=4, theme_codes=codes)
    got, counts = N.unit_labels(
        N.sae_units(index, W_dec), tokens, nxt, codes, themes, train, ev, W_U, docs, seed=4
    )
    pd.testing.assert_frame_equal(got[want.columns], want, check_names=False)
    want_counts = autolabel.detection_counts(index, tokens, ev, parts, docs, seed=4)
    np.testing.assert_array_equal(counts.own, want_counts.own)
    np.testing.assert_allclose(autolabel.auroc_from_counts(counts.own), want["token_auroc"], equal_nan=True)
    np.testing.assert_allclose(
        autolabel.auroc_from_counts(counts.random), want["token_auroc_random"], equal_nan=True
    )
