import numpy as np
import pytest

from helpers.analysis import clustering as C
from tests.unit.analysis.test_features import index_from_dense, tiny_store


def test_pooling_by_hand():
    store = tiny_store((2, 3))
    f = np.zeros((5, 3), np.float32)
    f[0, 0], f[1, 0], f[2, 1], f[4, 1] = 1.0, 3.0, 2.0, 4.0
    docs, Xmax = C.doc_feature_vectors(index_from_dense(f), store, "max")
    _, Xmean = C.doc_feature_vectors(index_from_dense(f), store, "mean")
    assert docs.tolist() == [0, 1]
    np.testing.assert_allclose(Xmax, [[3, 0, 0], [0, 4, 0]])
    np.testing.assert_allclose(Xmean, [[2, 0, 0], [0, 2, 0]])
    _, raw = C.pool_rows(np.arange(10.0).reshape(5, 2), store.doc_ids, "mean")
    np.testing.assert_allclose(raw, [[1, 2], [6, 7]])
    with pytest.raises(ValueError, match="pool must be one of"):
        C.doc_feature_vectors(index_from_dense(f), store, "median")


def test_lift_ranking_beats_a_dense_feature():
    X = np.array([[9.0, 1.0, 0.0], [9.4, 1.0, 0.0], [9.2, 0.0, 1.0], [9.2, 0.0, 1.0]])
    labels = np.array([0, 0, 1, 1])
    assert C.mean_ranking(X, labels, 0, 1).tolist() == [0]  # the dense feature wins the raw mean
    assert C.lift_ranking(X, labels, 0, 1).tolist() == [1]
    assert C.lift_ranking(X, labels, 1, 1).tolist() == [2]


def test_prepare_keeps_geometry_and_clustering_is_seeded():
    rng = np.random.default_rng(0)
    X = np.abs(rng.normal(size=(30, 200))) + np.repeat(np.eye(3), 10, axis=0) @ rng.normal(size=(3, 200)) * 3
    Z = C.prepare(X)
    assert Z.shape == (30, 30)
    sd = X.std(0)
    full = (X - X.mean(0)) / sd
    full /= np.linalg.norm(full, axis=1, keepdims=True)
    np.testing.assert_allclose(Z @ Z.T, full @ full.T, atol=1e-10)  # same dot products
    a, b = C.kmeans(Z, 3, seed=1), C.kmeans(Z, 3, seed=1)
    np.testing.assert_array_equal(a, b)
    assert C.agreement(a, np.repeat([0, 1, 2], 10))["ARI"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="k = 40 clusters needs"):
        C.kmeans(Z, 40)


def test_purity_by_hand():
    assert C.purity(np.array([0, 0, 1, 1]), np.array(["a", "b", "b", "b"])) == 0.75


def test_feature_families_refuses_feature_minus_one():
    """-1 silently clustered the last feature and returned a row labelled -1."""
    W = np.random.default_rng(0).normal(size=(6, 4))
    fam = C.feature_families(W, np.array([0, 2, 4, 5]), 2)
    assert fam["feature"].tolist() == [0, 2, 4, 5]
    with pytest.raises(ValueError, match="feature -1 is out of range: W_dec has features 0..5"):
        C.feature_families(W, np.array([0, 2, -1]), 2)
    with pytest.raises(ValueError, match="n_families = 5 must be a whole number in 1..3"):
        C.feature_families(W, np.array([0, 2, 4]), 5)


def _themed_docs(rng, n_prompts=12, samples=3, n_themes=3, d=40):
    """Documents in themes, several samples per prompt; each theme has its own direction."""
    prompt = np.repeat(np.arange(n_prompts), samples)
    theme = (prompt % n_themes).astype(str)
    centres = rng.normal(size=(n_themes, d)) * 3
    X = centres[prompt % n_themes] + rng.normal(size=(len(prompt), d))
    return X, theme, prompt


def test_prepare_drops_rare_columns_and_tfidf_keeps_them_small():
    rng = np.random.default_rng(0)
    X = np.abs(rng.normal(size=(20, 6)))
    X[:, 5] = 0.0
    X[3, 5] = 0.5  # one document fires a column nobody else does
    Z = C.prepare(X)
    assert abs(Z[3] @ Z[3]) == pytest.approx(1.0)
    # z-scored, the rare column carries most of document 3's length: sqrt(19) standard deviations
    full = (X - X.mean(0)) / X.std(0)
    assert full[3, 5] == pytest.approx(np.sqrt(19))
    kept = C.prepare(X, min_docs=2)
    np.testing.assert_allclose(kept @ kept.T, _cos(X[:, :5]), atol=1e-10)
    T = C.prepare(X, "tfidf")
    idf = np.log(21 / (1 + (X != 0).sum(0))) + 1
    want = X * idf
    want /= np.linalg.norm(want, axis=1, keepdims=True)
    np.testing.assert_allclose(T @ T.T, want @ want.T, atol=1e-10)
    assert idf.max() / idf.min() < np.log(21) + 1  # the rare column weighs a few times, not sqrt(n) times
    assert C.rare_share(X, 1) == pytest.approx(1 / 6)
    with pytest.raises(ValueError, match="tf-idf weighs non-negative"):
        C.prepare(X - 1.0, "tfidf")
    with pytest.raises(ValueError, match="weighting must be one of"):
        C.prepare(X, "idf")
    with pytest.raises(ValueError, match="no column is active in >= 20"):
        C.prepare(np.where(X > 1, X, 0), min_docs=20)


def _cos(X):
    Z = (X - X.mean(0)) / X.std(0)
    Z /= np.linalg.norm(Z, axis=1, keepdims=True)
    return Z @ Z.T


def test_seed_scores_and_ranking_need_seeds_and_respect_overlap():
    rng = np.random.default_rng(1)
    X, theme, _ = _themed_docs(rng)
    per_seed = C.seed_scores(C.prepare(X), theme, 3, range(3))
    assert per_seed.index.tolist() == [0, 1, 2] and list(per_seed.columns) == ["purity", "ARI", "NMI"]
    s = C.seed_summary(per_seed["ARI"])
    assert s["seeds"] == 3 and s["min"] <= s["mean"] <= s["max"]
    r = C.seed_ranking({"a": [0.5, 0.6, 0.55], "b": [0.1, 0.2, 0.15], "c": [0.12, 0.3, 0.2]})
    assert r[["above", "below"]].values.tolist() == [["a", "c"], ["a", "b"], ["c", "b"]]
    assert r["ranked"].tolist() == [True, True, False]  # c and b overlap: no claim
    with pytest.raises(ValueError, match="needs >= 3 k-means seeds"):
        C.seed_ranking({"a": [0.5, 0.6], "b": [0.1, 0.2, 0.3]})
    with pytest.raises(ValueError, match="seeds is empty"):
        C.seed_scores(C.prepare(X), theme, 3, [])


def test_probe_is_grouped_by_prompt_and_refuses_without_groups():
    rng = np.random.default_rng(2)
    X, theme, prompt = _themed_docs(rng)
    Z = C.prepare(X)
    with pytest.raises(ValueError, match="pass groups: one prompt id per document"):
        C.probe_correct(Z, theme, None)
    with pytest.raises(ValueError, match="one prompt id per document \\(36\\)"):
        C.probe_correct(Z, theme, prompt[:-1])
    with pytest.raises(ValueError, match="pass groups"):
        C.probe_interval(np.ones(len(theme), bool), None)
    correct = C.probe_correct(Z, theme, prompt, folds=4, seed=0)
    assert correct.shape == (36,) and correct.mean() > 0.9  # themes are linearly separable here
    iv = C.probe_interval(correct, prompt, n_boot=200)
    assert iv.n == 12  # resampled prompts, not documents
    assert iv.low <= iv.value <= iv.high


def test_probe_never_trains_on_a_sample_of_the_test_prompt():
    """A memorising probe: each prompt's samples share a unique tag column and the theme is otherwise
    noise. Split by document, the tag gives the theme away; grouped by prompt it cannot."""
    rng = np.random.default_rng(3)
    prompt = np.repeat(np.arange(30), 4)
    theme = rng.permutation(np.repeat(["a", "b", "c"], 10))[prompt]
    X = np.concatenate([np.eye(30)[prompt] * 5, rng.normal(size=(120, 5))], axis=1)
    acc = C.probe_correct(C.prepare(X), theme, prompt, folds=5, C=100.0).mean()
    assert acc < 0.6  # chance is 1/3; a by-document split would score near 1


def test_seed_grid_covers_every_pool_and_skips_tfidf_for_signed_columns():
    rng = np.random.default_rng(4)
    X, theme, _ = _themed_docs(rng, n_prompts=6, samples=3, d=10)
    reps = {"max": {"sparse": np.abs(X), "signed": X}, "mean": {"sparse": np.abs(X) / 2, "signed": X / 2}}
    grid = C.seed_grid(reps, theme, 3, range(3), {"z": ("z", 1), "tf-idf": ("tfidf", 1)})
    sizes = grid.groupby(["pool", "representation", "weighting"]).size()
    assert sizes.to_dict() == {
        ("max", "signed", "z"): 3,
        ("max", "sparse", "tf-idf"): 3,
        ("max", "sparse", "z"): 3,
        ("mean", "signed", "z"): 3,
        ("mean", "sparse", "tf-idf"): 3,
        ("mean", "sparse", "z"): 3,
    }
    assert C.spread_text([0.1, 0.2, 0.3]) == "0.200 ± 0.100 [0.100, 0.300]"


def test_probe_ranking_pairs_by_prompt():
    groups = np.repeat(np.arange(10), 2)
    good = np.ones(20, bool)
    bad = np.zeros(20, bool)
    half = np.tile([True, False], 10)
    r = C.probe_ranking({"bad": bad, "good": good, "half": half}, groups, n_boot=200)
    assert r[["above", "below"]].values.tolist() == [["good", "half"], ["good", "bad"], ["half", "bad"]]
    assert r["ranked"].tolist() == [True, True, True]
    assert r["gap"][0].n == 10 and r["gap"][0].value == pytest.approx(0.5)
    noisy = np.tile([True, False, False, True], 5)
    assert not C.probe_ranking({"half": half, "noisy": noisy}, groups, n_boot=200)["ranked"][0]
    with pytest.raises(ValueError, match="pass groups"):
        C.probe_ranking({"good": good, "bad": bad}, None)


def test_grouped_folds_caps_at_the_fewest_prompts_of_a_theme():
    themes = np.array(list("aaaabbbbbb"))
    groups = np.array([0, 0, 1, 2, 3, 4, 5, 6, 7, 8])  # theme a: 3 prompts
    assert C.grouped_folds(themes, groups, 5) == 3
    with pytest.raises(ValueError, match="pass groups"):
        C.grouped_folds(themes, None, 5)
    with pytest.raises(ValueError, match=">= 2 prompts each"):
        C.grouped_folds(themes, np.array([0] * 4 + [1] * 6), 5)


def test_max_pool_is_each_documents_max_whatever_the_row_order():
    rng = np.random.default_rng(0)
    doc_ids = rng.integers(0, 7, 200) * 10  # unsorted, some documents with one row
    acts = rng.normal(size=(200, 5)).astype(np.float32)
    docs, got = C.pool_rows(acts, doc_ids, "max")
    want = np.stack([acts[doc_ids == d].max(0) for d in docs]).astype(np.float64)
    assert got.dtype == np.float64 and np.array_equal(got, want)
    assert C.pool_rows(acts[:0], doc_ids[:0], "max")[1].shape == (0, 5)
