import numpy as np
import pandas as pd
import pytest
from scipy import sparse
from sklearn.metrics import roc_auc_score

from helpers.analysis import probing as P
from tests.unit.analysis.test_features import index_from_dense


def planted(n_groups=40, per=10, d=30, seed=0, shift=3.0, col=7):
    """Rows in groups (prompts) whose label is shared within a group half of the time; column ``col``
    carries the label, every other column is noise."""
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(n_groups), per)
    y = rng.random(len(g)) < 0.3
    X = rng.normal(size=(len(g), d))
    X[:, col] += shift * y
    return X, y, g


def test_token_properties_from_strings():
    props = P.token_properties([" The", " 2024", "ints", " AI", "\n", " 5G", " hello", "", " été", " Élan"])
    assert props["number"].tolist() == [0, 1, 0, 0, 0, 1, 0, 0, 0, 0]
    assert props["capitalised"].tolist() == [1, 0, 0, 1, 0, 0, 0, 0, 0, 1]
    assert set(props) == set(P.PROPERTIES)
    with pytest.raises(ValueError, match="not one string"):
        P.token_properties(" The")
    with pytest.raises(ValueError, match="empty"):
        P.token_properties([])


def test_token_texts_decodes_one_id_at_a_time():
    from tests.conftest import make_tokenizer

    tok = make_tokenizer()
    ids = tok("the solar film", add_special_tokens=False)["input_ids"]
    assert P.token_texts(tok, np.asarray(ids)) == ["the", "solar", "film"]


def test_to_csr_matches_the_dense_features():
    f = np.zeros((6, 4), np.float32)
    f[0, 1], f[2, 3], f[5, 0], f[5, 3] = 1.5, 2.0, 0.5, 4.0
    M = P.to_csr(index_from_dense(f))
    assert sparse.isspmatrix_csr(M) and M.shape == (6, 4)
    np.testing.assert_array_equal(M.toarray(), f)


def test_column_scores_standardise_take_the_size_and_zero_constant_columns():
    rng = np.random.default_rng(0)
    y = np.arange(200) % 2 == 0
    X = np.column_stack(
        [
            rng.normal(size=200) * 10 + 1.0 * y,  # big raw shift, small relative one
            rng.normal(size=200) * 0.1 - 0.3 * y,  # small raw shift, large relative one, negative sign
            np.full(200, 3.0),  # constant
            np.where(y, 2.0, 1.0),  # constant within each class: separates perfectly
        ]
    )
    s = P.column_scores(X, y)
    assert s[1] > 2 and s[0] < 0.3 and s[2] == 0 and np.isinf(s[3])
    np.testing.assert_allclose(P.column_scores(sparse.csr_matrix(X), y), s, rtol=1e-6)
    assert P.choose_columns(X, y, 2).tolist() == [3, 1]
    # by hand: |mean(pos) - mean(neg)| / pooled sd (ddof 1 pooled over both classes)
    a, b = X[y, 1], X[~y, 1]
    pooled = np.sqrt(((a.var() * len(a)) + (b.var() * len(b))) / (len(a) + len(b) - 2))
    assert s[1] == pytest.approx(abs(a.mean() - b.mean()) / pooled)


@pytest.mark.parametrize("method,k", [("sparse", 1), ("sparse", 5), ("dense", None), ("diff_means", None)])
@pytest.mark.parametrize("as_sparse", [False, True])
def test_probes_recover_a_planted_signal_and_not_noise(method, k, as_sparse):
    X, y, g = planted()
    wrap = sparse.csr_matrix if as_sparse else np.asarray
    s = P.probe_scores(wrap(X), y, g, method, k)
    assert s.shape == y.shape and roc_auc_score(y, s) > 0.95
    noise = np.random.default_rng(1).normal(size=X.shape)
    s = P.probe_scores(wrap(noise), y, g, method, k)
    assert abs(roc_auc_score(y, s) - 0.5) < 0.1


def test_selection_happens_inside_the_folds():
    """Pure noise, many more columns than rows: the column chosen on all rows separates the held-out rows
    too (the leak: AUROC ~0.78 under the same grouped cross-validation); chosen inside each training
    fold, it does not (~0.5)."""
    rng = np.random.default_rng(0)
    g = np.repeat(np.arange(30), 2)
    y = np.tile([True, False], 30)
    X = rng.normal(size=(len(g), 3000))
    oof = P.auroc(P.probe_scores(X, y, g, "sparse", k=1), y)
    leaked = P.auroc(P.probe_scores(X[:, P.choose_columns(X, y, 1)], y, g, "dense"), y)
    assert abs(oof - 0.5) < 0.1 and leaked > 0.7


def test_rotation_onto_the_row_span_keeps_the_dense_probe():
    """d > n takes the row-span shortcut; its out-of-fold scores rank the rows like the plain fit on the
    same standardised columns."""
    from sklearn.linear_model import LogisticRegression

    X, y, g = planted(n_groups=12, per=5, d=200, shift=1.0)
    folds = P.fold_ids(y, g)
    got = P.probe_scores(X, y, g, "dense")
    sd = X.std(0)
    A = (X - X.mean(0)) / sd
    want = np.empty(len(y))
    for f in np.unique(folds):
        tr, te = folds != f, folds == f
        m = LogisticRegression(C=1.0, max_iter=5000, tol=1e-10).fit(A[tr], y[tr])
        want[te] = m.decision_function(A[te])
    np.testing.assert_allclose(got, want, atol=0.05)  # lbfgs stops at its default tolerance
    Z = P._row_span(X)
    assert Z.shape == (60, 59)  # centred rows: rank n - 1
    np.testing.assert_allclose(Z @ Z.T, A @ A.T, atol=1e-8)  # same dot products, fewer columns


def test_folds_are_grouped_stratified_and_capped():
    X, y, g = planted(n_groups=25)
    f = P.fold_ids(y, g, folds=5, seed=3)
    assert all(len(np.unique(f[g == k])) == 1 for k in np.unique(g))  # a group never splits
    assert len(np.unique(f)) == 5
    assert all(y[f == k].any() and (~y[f == k]).any() for k in range(5))
    assert not np.array_equal(f, P.fold_ids(y, g, folds=5, seed=4))
    rare = np.zeros(len(y), bool)
    rare[g == 0], rare[g == 1], rare[g == 2] = True, True, True
    assert len(np.unique(P.fold_ids(rare, g, folds=5))) == 3  # capped at the groups holding a positive
    rare[(g == 1) | (g == 2)] = False
    with pytest.raises(ValueError, match=r"positives lie in 1 group"):
        P.fold_ids(rare, g)


def test_auroc_matches_sklearn_with_ties_and_the_interval_resamples_groups():
    rng = np.random.default_rng(0)
    g = np.repeat(np.arange(20), 6)
    y = rng.random(len(g)) < 0.4
    s = np.round(rng.normal(size=len(g)) + y, 1)  # ties
    assert P.auroc(s, y) == pytest.approx(roc_auc_score(y, s))
    iv = P.auroc_interval(s, y, g, n_boot=300)
    assert iv.value == pytest.approx(roc_auc_score(y, s))
    assert iv.low <= iv.value <= iv.high and iv.n == 20
    # a resample's AUROC equals sklearn's on the rows of the drawn groups, repeats kept
    stat = P._GroupAuroc(s, y, g)
    drawn = np.array([0, 0, 3, 7, 7, 7, 12])
    rows = np.concatenate([np.flatnonzero(g == k) for k in drawn])
    assert stat(drawn) == pytest.approx(roc_auc_score(y[rows], s[rows]))


def test_interval_survives_draws_with_one_class():
    g = np.repeat(np.arange(6), 3)
    y = g == 0  # one group holds every positive: most draws have none
    s = y + np.linspace(0, 0.1, len(g))
    iv = P.auroc_interval(s, y, g, n_boot=200)
    assert iv.value == 1.0 and np.isfinite(iv.low) and iv.high == 1.0


def test_bad_inputs_are_one_line():
    X, y, g = planted(n_groups=10)
    for call, match in [
        (lambda: P.probe_scores(X, y.astype(int) * 2, g, "dense"), "y must be binary"),
        (lambda: P.probe_scores(X, np.zeros(len(y), bool), g, "dense"), "one class only"),
        (lambda: P.probe_scores(X, y, g[:-1], "dense"), "groups must hold one prompt id per row"),
        (lambda: P.probe_scores(X, y[:-1], g, "dense"), "y must hold one label per row"),
        (lambda: P.probe_scores(X, y, g, "lasso"), "method must be one of"),
        (lambda: P.probe_scores(X, y, g, "sparse"), "needs k"),
        (lambda: P.probe_scores(X, y, g, "sparse", k=X.shape[1] + 1), "k = 31 must be"),
        (lambda: P.probe_scores(X, y, g, "dense", k=2), "k applies to the sparse probe only"),
        (lambda: P.probe_scores(np.where(X > 2, np.nan, X), y, g, "dense"), "NaN or inf"),
        (lambda: P.auroc_interval(np.zeros(3), y, g), "y must hold one label per row"),
        (lambda: P.balanced_rows(y, g, 2), "max_rows = 2 must be"),
        (lambda: P.probe_table({"a": X, "b": X[:-1]}, {"t": (y, g)}), "same rows"),
    ]:
        with pytest.raises(ValueError, match=match) as err:
            call()
        assert "\n" not in str(err.value)


def test_balanced_rows_keep_the_positives_up_to_half():
    rng = np.random.default_rng(0)
    y = rng.random(5000) < 0.02
    g = np.arange(5000) // 50
    rows = P.balanced_rows(y, g, 1000, seed=1)
    assert len(rows) == 1000 and np.all(np.diff(rows) > 0)
    assert y[rows].sum() == y.sum()  # every positive kept
    many = rng.random(5000) < 0.8
    rows = P.balanced_rows(many, g, 1000, seed=1)
    assert many[rows].sum() == 500 and len(rows) == 1000
    assert np.array_equal(P.balanced_rows(y, g, 10_000), np.arange(5000))
    assert not np.array_equal(P.balanced_rows(y, g, 1000, seed=2), P.balanced_rows(y, g, 1000, seed=1))


def test_probe_table_rows_and_columns():
    X, y, g = planted(n_groups=20, per=8)
    noise = np.random.default_rng(5).normal(size=X.shape)
    themes = np.array(["a", "b", "c"])[g % 3]
    tasks = {"planted": (y, g), **P.one_vs_rest(themes, g)}
    tab = P.probe_table({"signal": X, "noise": sparse.csr_matrix(noise)}, tasks, ks=(1, 3), n_boot=50)
    assert list(tab.columns) == [
        "task",
        "representation",
        "method",
        "AUROC",
        "low",
        "high",
        "n_groups",
        "n_rows",
    ]
    assert len(tab) == 4 * 2 * 4  # tasks x representations x (2 ks + dense + diff_means)
    assert set(tab.method) == {"k=1", "k=3", "dense", "diff_means"}
    assert (tab.n_groups == 20).all() and (tab.n_rows == len(y)).all()
    planted_rows = tab[tab.task == "planted"].set_index(["representation", "method"]).AUROC
    assert (planted_rows["signal"] > 0.95).all() and (planted_rows["noise"] < 0.7).all()
    assert ((tab.low <= tab.AUROC) & (tab.AUROC <= tab.high)).all()
    small = P.probe_table({"signal": X}, {"planted": (y, g)}, ks=(1,), max_rows=60, n_boot=20)
    assert (small.n_rows == 60).all()
    pd.testing.assert_frame_equal(
        small, P.probe_table({"signal": X}, {"planted": (y, g)}, ks=(1,), max_rows=60, n_boot=20)
    )
