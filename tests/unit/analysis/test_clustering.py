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
