"""Controls for readability: the PCA basis, random sparse features, top-token share, the detection
wrapper (the same numbers as notebook 04's own calls) and the one table."""

import numpy as np
import pandas as pd
import pytest
import torch

from helpers.analysis import clustering as C
from helpers.analysis import controls as K
from helpers.analysis import labels as autolabel
from helpers.analysis import neurons as N
from helpers.analysis.features import FeatureIndex, theme_lifts
from helpers.data.store import Store
from helpers.stats import Interval

THEMES = ("x", "y")


def make_store(n_docs=30, length=20, d=8, vocab=12, seed=0) -> Store:
    rng = np.random.default_rng(seed)
    n = n_docs * length
    tokens = rng.integers(0, vocab, n).astype(np.int32)
    emb = rng.normal(size=(vocab, d))
    acts = (emb[tokens] + 0.3 * rng.normal(size=(n, d))).astype(np.float32)  # tokens shape the residual
    return Store(
        acts=acts,
        token_ids=tokens,
        doc_ids=np.repeat(np.arange(n_docs), length).astype(np.int32),
        positions=np.tile(np.arange(1, length + 1), n_docs).astype(np.int32),
        layer=1,
        model="tiny",
    )


def row_meta(store: Store):
    prompt = store.doc_ids // 3  # 3 samples per prompt, 10 prompts
    theme = np.asarray(THEMES)[prompt % 2]
    ev = prompt >= 7  # prompts 7, 8, 9 held out
    return theme, prompt, ~ev, ev


# --- PCA ------------------------------------------------------------------------------------------------


def low_rank(n=500, d=10, seed=0):
    rng = np.random.default_rng(seed)
    basis = np.linalg.qr(rng.normal(size=(d, 3)))[0].T  # 3 orthonormal directions
    coef = rng.normal(size=(n, 3)) * np.array([5.0, 3.0, 1.5])
    mu = rng.normal(size=d)
    return (mu + coef @ basis + 1e-3 * rng.normal(size=(n, d))).astype(np.float32), basis, mu


def decode(index: FeatureIndex, directions: np.ndarray, mu: np.ndarray) -> np.ndarray:
    out = np.tile(mu, (index.n_tokens, 1))
    np.add.at(out, index.rows, index.values[:, None] * directions[index.latents])
    return out


def test_pca_features_reconstruct_the_top_components():
    acts, basis, _ = low_rank()
    index, directions = K.pca_features(acts, k=3, n_components=3)
    assert index.d_sae == 6 and directions.shape == (6, 10)
    np.testing.assert_allclose(directions[3:], -directions[:3])  # latent n + j is component j's - side
    cos = np.abs(directions[:3] @ basis.T)  # the components, largest variance first
    np.testing.assert_allclose(np.diag(cos), 1, atol=1e-3)
    svd = np.linalg.svd(acts - acts.mean(0), full_matrices=False)[2][:3]  # the sample's own axes
    np.testing.assert_allclose(np.abs(np.sum(directions[:3] * svd, 1)), 1, atol=1e-5)
    recon = decode(index, directions.astype(np.float64), acts.mean(0))
    np.testing.assert_allclose(recon, acts, atol=0.02)
    assert (index.values > 0).all()


def test_pca_features_l0_and_the_k_largest_projections():
    acts, _, _ = low_rank(d=6)
    index, directions = K.pca_features(acts, k=2)
    l0 = np.bincount(index.rows, minlength=index.n_tokens)
    assert l0.max() <= 2 and index.d_sae == 12
    proj = (acts - acts.mean(0)) @ directions[:6].T
    for r in (0, 7, 123):
        rows, lats = index.rows == r, index.latents[index.rows == r]
        want = np.argsort(-np.abs(proj[r]))[:2]
        assert sorted(lats % 6) == sorted(want)
        np.testing.assert_allclose(np.sort(index.values[rows]), np.sort(np.abs(proj[r, want])), rtol=1e-3)


def test_pca_fit_rows_and_sign_convention():
    acts, _, _ = low_rank()
    mask = np.arange(len(acts)) < 250
    _, comps_m, _ = K.pca_basis(acts, 3, mask)
    _, comps_i, _ = K.pca_basis(acts, 3, np.flatnonzero(mask))
    np.testing.assert_allclose(comps_m, comps_i)
    mu, comps, var = K.pca_basis(acts[:250], 3)
    np.testing.assert_allclose(comps, comps_m, atol=1e-6)
    assert (np.diff(var) <= 0).all()
    top = comps[np.arange(3), np.abs(comps).argmax(1)]
    assert (top > 0).all()  # the largest coordinate of each component is positive
    with pytest.raises(ValueError, match="fit_rows"):
        K.pca_features(acts, 2, fit_rows=np.ones(3, bool))
    with pytest.raises(ValueError, match="n_components"):
        K.pca_features(acts, 2, n_components=11)
    with pytest.raises(ValueError, match="k = 0"):
        K.pca_features(acts, 0)


def test_random_sparse_features_are_notebook_05s():
    store = make_store()
    index, directions = K.random_sparse_features(store, width=16, k=3, seed=4)
    ref = C.random_features(store, 16, 3, seed=4)
    np.testing.assert_array_equal(index.rows, ref.rows)
    assert directions.shape == (16, 8)
    again = K.top_k_codes(store.acts, store.acts.mean(0), directions, 3)  # the directions are its encoder
    np.testing.assert_array_equal(again.rows, ref.rows)
    np.testing.assert_array_equal(again.latents, ref.latents)
    np.testing.assert_allclose(again.values, ref.values, rtol=1e-5)


def test_check_same_rows():
    a = make_store()
    K.check_same_rows(a, make_store(seed=0))
    b = make_store()
    b.token_ids[5] += 1
    with pytest.raises(ValueError, match="token_ids"):
        K.check_same_rows(a, b)


# --- top-token share ------------------------------------------------------------------------------------


def test_top_token_share_by_hand():
    store = make_store(vocab=12)
    t = store.token_ids
    on_7 = np.flatnonzero(t == 7)
    other = np.flatnonzero(t != 7)[:30]
    rows = np.concatenate([on_7, other, np.arange(5)])
    lat = np.concatenate([np.zeros(len(on_7)), np.ones(30), np.full(5, 2)]).astype(int)
    # feature 1: its 20 largest values on rows other[:20], whose tokens we count by hand
    vals = np.concatenate([np.ones(len(on_7)), np.linspace(3, 1, 30), np.ones(5)])
    index = FeatureIndex.from_entries(rows, lat, vals, len(store), 4)
    out = K.top_token_share(index, store, n_top=20, min_fires=20)
    assert out.index.tolist() == [0, 1]  # feature 2 fires 5 times (< min_fires), feature 3 never
    assert out.loc[0, "top_token_share"] == 1 and out.loc[0, "distinct_tokens"] == 1
    assert out.loc[0, "top_token"] == 7
    top = pd.Series(t[other[:20]]).value_counts()
    assert out.loc[1, "top_token_share"] == pytest.approx(top.iloc[0] / 20)
    assert out.loc[1, "distinct_tokens"] == len(top) and out.loc[1, "fires"] == 30
    few = K.top_token_share(index, store, n_top=20, min_fires=5)
    assert few.loc[2, "n_top"] == 5 and few.loc[2, "top_token_share"] == pytest.approx(
        pd.Series(t[:5]).value_counts().iloc[0] / 5
    )
    with pytest.raises(ValueError, match="rows"):
        K.top_token_share(FeatureIndex.from_entries(rows, lat, vals, len(store) + 1, 4), store)


# --- detection: the same numbers as notebook 04's own calls -------------------------------------------


def test_detection_table_equals_the_direct_calls():
    store = make_store()
    theme, prompt, train, ev = row_meta(store)
    index, W = K.pca_features(store.acts, k=3, fit_rows=train)
    rnd, Wr = K.random_sparse_features(store, 20, 3, seed=1)
    W_U = torch.as_tensor(np.random.default_rng(2).normal(size=(12, 8)), dtype=torch.float32)
    det = K.detection_table(
        {"pca": (index, W), "random": (rnd, Wr)},
        store,
        theme,
        THEMES,
        prompt,
        train,
        ev,
        W_U,
        seed=3,
        n_boot=60,
    )
    # what notebook 04 runs, by hand
    nxt = autolabel.next_tokens(store.token_ids, store.doc_ids, store.positions)
    codes = pd.Categorical(theme, categories=list(THEMES)).codes
    direct, counts = {}, {}
    for name, (ix, w) in {"pca": (index, W), "random": (rnd, Wr)}.items():
        u = N.sae_units(ix, torch.as_tensor(w), kind=name)
        direct[name], counts[name] = N.unit_labels(
            u, store.token_ids, nxt, codes, THEMES, train, ev, W_U, prompt, seed=3
        )
        pd.testing.assert_frame_equal(det.scores[name], direct[name])
        np.testing.assert_array_equal(det.counts[name].own, counts[name].own)
    kinds = N.compare_kinds(counts, n_boot=60, seed=3)
    assert det.kinds.astype(str).equals(kinds.astype(str))
    diff = det.differences([("pca", "random")])
    want = N.kind_differences(counts, [("pca", "random")], n_boot=60, seed=3)
    assert str(diff.loc[0, "mean a - mean b"]) == str(want.loc[0, "mean a - mean b"])
    # and the SAE's own path in notebook 04 (label_parts + detection_counts) gives the same counts
    enr = autolabel.enrichment(index, store.token_ids, train)
    parts = autolabel.label_parts(
        theme_lifts(index, codes, THEMES, train), enr, autolabel.top_logit_tokens(torch.as_tensor(W), W_U)
    )
    nb04 = autolabel.detection_counts(index, store.token_ids, ev, parts, prompt, seed=3)
    np.testing.assert_array_equal(nb04.own, det.counts["pca"].own)


def test_detection_table_refuses_misaligned_inputs():
    store = make_store()
    theme, prompt, train, ev = row_meta(store)
    index, W = K.pca_features(store.acts, k=2)
    W_U = torch.zeros(12, 8)
    with pytest.raises(ValueError, match="directions"):
        K.detection_table({"p": (index, W[:3])}, store, theme, THEMES, prompt, train, ev, W_U)
    with pytest.raises(ValueError, match="prompt_of_row"):
        K.detection_table({"p": (index, W)}, store, theme, THEMES, prompt[:5], train, ev, W_U)
    with pytest.raises(ValueError, match="at least one"):
        K.detection_table({}, store, theme, THEMES, prompt, train, ev, W_U)


# --- the table ------------------------------------------------------------------------------------------


def test_readability_table_units_and_intervals():
    store = make_store()
    theme, prompt, train, ev = row_meta(store)
    index, W = K.pca_features(store.acts, k=3, fit_rows=train)
    rnd, Wr = K.random_sparse_features(store, 20, 3)
    W_U = torch.as_tensor(np.random.default_rng(2).normal(size=(12, 8)), dtype=torch.float32)
    reps = {"pca": (index, W), "random": (rnd, Wr)}
    det = K.detection_table(reps, store, theme, THEMES, prompt, train, ev, W_U, n_boot=50)
    shares = {n: K.top_token_share(ix, store, n_top=10, min_fires=5) for n, (ix, _) in reps.items()}
    doc_prompt = np.arange(30) // 3
    correct = {"pca": np.arange(30) % 2 == 0, "random": np.ones(30, bool)}
    seeds = {n: pd.DataFrame({"NMI": [0.1, 0.3, 0.2], "ARI": [0.0, 0.1, 0.05]}) for n in reps}
    tab = K.readability_table(shares, det, correct, doc_prompt, seeds, n_boot=50)
    row = tab.loc[("top-token share (top 10)", "pca")]
    assert row["over"] == "features" and row["n"] == len(shares["pca"]) == row["units"]
    assert row["value"] == pytest.approx(shares["pca"]["top_token_share"].mean())
    assert row["low"] <= row["value"] <= row["high"]
    d = tab.loc[("token-list detection AUROC", "random")]
    assert (
        d["over"] == "held-out prompts"
        and d["n"] == 3
        and d["value"] == det.kinds.loc["random", "mean"].value
    )
    p = tab.loc[("theme probe accuracy", "pca")]
    assert p["value"] == 0.5 and p["n"] == 10 and p["units"] == 30 and p["over"] == "prompts"
    assert tab.loc[("theme probe accuracy", "random"), "high"] == 1.0
    km = tab.loc[("k-means NMI vs themes", "random")]
    assert (km["value"], km["low"], km["high"], km["n"]) == pytest.approx((0.2, 0.1, 0.3, 3))
    with pytest.raises(ValueError, match="probe_groups"):
        K.readability_table(probe=correct)
    with pytest.raises(ValueError, match="at least one"):
        K.readability_table()
    assert isinstance(det.kinds.loc["pca", "mean"], Interval)
