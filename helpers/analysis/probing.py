"""Sparse probing: are SAE latents *useful*, compared with what? (notebook 07, after Kantamneni et al.
2025 and SAEBench's sparse-probing evaluation).

A representation (SAE latents, residual dimensions, MLP neurons, random sparse features) is useful for
a property when a probe that may read only **k** of its columns already tells the property apart. Per
binary task we train, with folds grouped by prompt (the samples of one prompt are not independent):

- a **k-sparse** logistic probe: the k columns with the largest standardised class-mean difference
  (:func:`column_scores`), chosen *inside* each training fold (choosing them on all rows would leak the
  held-out labels into the choice), then an L2 logistic regression on those k columns;
- a **dense** L2 logistic probe on every column (the ceiling a linear reader reaches);
- the **difference of means** direction of the training fold (no fitting at all).

Each gives out-of-fold scores per row; AUROC is computed on them and resampled over prompts
(:func:`auroc_interval`). :func:`probe_table` runs every representation, task and method.

Tasks: token properties read off the token's string (:func:`token_properties`: no model, no
annotator) and the document's theme, one-vs-rest.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import sparse
from threadpoolctl import threadpool_limits

from helpers.analysis.features import FeatureIndex
from helpers.stats import Interval, bootstrap
from helpers.validate import as_count

PROPERTIES = ("number", "capitalised")
METHODS = ("sparse", "dense", "diff_means")

# ----------------------------------------------------------------------------------------------
# tasks


def token_texts(tokenizer, token_ids: Sequence[int] | np.ndarray) -> list[str]:
    """Each token id decoded on its own (``" The"``, ``"ints"``, ``"2"``), the text :func:`token_properties`
    reads; ``tokenizer`` is the model's (``load_model`` or ``AutoTokenizer.from_pretrained`` of its cache)."""
    return list(tokenizer.batch_decode([[int(t)] for t in np.asarray(token_ids).ravel()]))


def token_properties(token_texts: Sequence[str]) -> dict[str, np.ndarray]:
    """Binary token-level properties labelled from the token's own text, one bool array per property:

    - ``number``: the text holds a digit (``"2"``, ``"199"``, ``"5G"``);
    - ``capitalised``: the stripped text starts with an uppercase letter (``" The"``, ``" AI"``).

    Why these two: they are unambiguous from the string alone (no model and no annotator decides them,
    so the labels carry no probe's bias) and frequent enough in our ~26k tokens to fill every fold
    (measured on the themed store: ``number`` 280 tokens, 1.1%, in 56 of the 100 prompts;
    ``capitalised`` 1,676 tokens, 6.4%, in all 100). Capitalisation is a property of the word, not
    of its place: the store leaves out each document's position 0, and a capitalised word after a full
    stop counts like any other."""
    if isinstance(token_texts, str):
        raise ValueError("token_texts must be a sequence of token strings (one per row), not one string")
    texts = [str(t) for t in token_texts]
    if not texts:
        raise ValueError("token_texts is empty; pass one decoded string per token (token_texts())")
    return {
        "number": np.array([any(c.isdigit() for c in t) for t in texts], dtype=bool),
        "capitalised": np.array([t.strip()[:1].isupper() for t in texts], dtype=bool),
    }


def one_vs_rest(labels: np.ndarray, groups: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """One binary task per class of ``labels`` (``theme == t``), each with the same ``groups``: the form
    :func:`probe_table` takes; the notebook averages the per-theme AUROCs."""
    labels = np.asarray(labels)
    g = _check_groups(groups, len(labels))
    return {str(c): (labels == c, g) for c in np.unique(labels)}


# ----------------------------------------------------------------------------------------------
# inputs


def to_csr(index: FeatureIndex) -> sparse.csr_matrix:
    """The index's non-zero activations as a ``[n_tokens, d_sae]`` CSR matrix (float32): O(non-zeros)
    memory, and row slices (folds, subsamples) stay cheap."""
    return sparse.csr_matrix(
        (index.values, (index.rows, index.latents)), shape=(index.n_tokens, index.d_sae), dtype=np.float32
    )


def _check_X(X) -> np.ndarray | sparse.csr_matrix:
    if sparse.issparse(X):
        X = sparse.csr_matrix(X, dtype=np.float64)
        data = X.data
    else:
        X = np.asarray(X, dtype=np.float64)
        data = X
    if X.ndim != 2 or X.shape[0] < 2 or X.shape[1] < 1:
        raise ValueError(f"X must be [rows, columns] (numpy or scipy.sparse) with >= 2 rows, got {X.shape}")
    if not np.isfinite(data).all():
        raise ValueError("X holds NaN or inf; drop or fix those rows before probing")
    return X


def _check_y(y, n: int | None = None) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim != 1 or (n is not None and len(y) != n):
        raise ValueError(f"y must hold one label per row ({n}), got shape {y.shape}")
    if y.dtype != bool:
        if y.dtype.kind not in "iuf" or not np.isin(y, (0, 1)).all():
            raise ValueError("y must be binary (bool or 0/1); make one task per class (one_vs_rest)")
        y = y.astype(bool)
    if y.all() or not y.any():
        raise ValueError("y holds one class only; a probe needs positives and negatives")
    return y


def _check_groups(groups, n: int) -> np.ndarray:
    g = np.asarray(groups)
    if g.ndim != 1 or len(g) != n:
        raise ValueError(f"groups must hold one prompt id per row ({n}), got shape {g.shape}")
    return g


def balanced_rows(y, groups, max_rows: int, seed: int = 0) -> np.ndarray:
    """At most ``max_rows`` row indices (sorted) for a cheap probe on a rare property: every positive row
    while they fit in half of ``max_rows`` (else a random half's worth of them), the rest negatives drawn
    at random. AUROC does not depend on the class balance, only its noise does, and a few thousand rows
    make a 4,608-column probe cost well under a second instead of ~10 s on 26k rows. ``groups`` is
    checked against ``y`` and kept implicitly (rows are drawn uniformly, so each prompt keeps its share)."""
    y = _check_y(y)
    _check_groups(groups, len(y))
    max_rows = as_count(max_rows, "max_rows", 4)
    if max_rows >= len(y):
        return np.arange(len(y))
    rng = np.random.default_rng(as_count(seed, "seed", 0))
    pos, neg = np.flatnonzero(y), np.flatnonzero(~y)
    if len(pos) > max_rows // 2:
        pos = rng.choice(pos, max_rows // 2, replace=False)
    neg = rng.choice(neg, min(len(neg), max_rows - len(pos)), replace=False)
    return np.sort(np.concatenate([pos, neg]))


# ----------------------------------------------------------------------------------------------
# choosing columns and probing


def _class_moments(X, y: np.ndarray) -> tuple[np.ndarray, ...]:
    """Per column: mean and variance of the positive and the negative rows, and the two counts (dense X
    in two passes; sparse X from E[x^2] - E[x]^2 in float64, keeping it sparse)."""
    if not sparse.issparse(X):
        a, b = X[y], X[~y]
        return a.mean(0), b.mean(0), a.var(0), b.var(0), len(a), len(b)
    w = np.stack([y, ~y]).astype(np.float64)  # [2, n]
    n = w.sum(1)
    mean = np.asarray(X.T @ w.T).T / n[:, None]
    ex2 = np.asarray(X.multiply(X).T @ w.T).T / n[:, None]
    var = np.clip(ex2 - mean**2, 0.0, None)
    return mean[0], mean[1], var[0], var[1], n[0], n[1]


def _scores(X, y: np.ndarray) -> np.ndarray:
    """:func:`column_scores` without the input checks (X and y already checked)."""
    mp, mn, vp, vn, n_p, n_n = _class_moments(X, y)
    pooled_var = (n_p * vp + n_n * vn) / max(n_p + n_n - 2, 1)
    diff = np.abs(mp - mn)
    # what rounding leaves of a constant column: variance ~eps * mean^2, mean difference ~eps * |mean|
    size = np.maximum(np.abs(mp), np.abs(mn))
    flat = pooled_var <= 64 * np.finfo(np.float64).eps * size**2
    apart = diff > 64 * np.finfo(np.float64).eps * size
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(flat, np.where(apart, np.inf, 0.0), diff / np.sqrt(pooled_var))


def column_scores(X, y) -> np.ndarray:
    """Per column ``|mean(pos) - mean(neg)| / pooled sd``: how far apart the classes lie in units of the
    column's spread within a class. Unstandardised, a high-variance column with a small relative shift
    would win; signed, a column that is *lower* for the positives would lose. A constant column scores
    0 (not NaN); one constant within each class but different between them scores inf (it separates
    perfectly)."""
    X = _check_X(X)
    return _scores(X, _check_y(y, X.shape[0]))


def choose_columns(X_train, y_train, k: int) -> np.ndarray:
    """The ``k`` columns of the largest :func:`column_scores` (ties: the lower index first), as int64."""
    X_train = _check_X(X_train)
    k = as_count(k, "k", 1, X_train.shape[1])
    score = _scores(X_train, _check_y(y_train, X_train.shape[0]))
    return np.argsort(-score, kind="stable")[:k].astype(np.int64)


def heldout_auroc(X_train, y_train, X_test, y_test, columns, C: float = 1.0) -> float:
    """Test AUROC of the k-sparse probe on ``columns``: columns scaled and an L2 logistic regression fitted
    on the training rows, scored on the test rows (how the exercise judges a choice of columns)."""
    X_train, X_test = _check_X(X_train), _check_X(X_test)
    cols = np.asarray(columns, dtype=np.int64)
    y_train = _check_y(y_train, X_train.shape[0])
    model = _logistic(C, few=True).fit(_dense_rows(X_train, cols), y_train)
    return auroc(model.decision_function(_dense_rows(X_test, cols)), _check_y(y_test, X_test.shape[0]))


def fold_ids(y, groups, folds: int = 5, seed: int = 0) -> np.ndarray:
    """The test fold of every row: folds grouped by ``groups`` (all rows of a prompt in one fold) and
    stratified by ``y``. ``folds`` is capped at the number of groups holding a positive (and a negative),
    so every training fold sees both classes; fewer than 2 such groups is one line."""
    from sklearn.model_selection import StratifiedGroupKFold

    y = _check_y(y)
    g = _check_groups(groups, len(y))
    folds = as_count(folds, "folds", 2)
    n_pos, n_neg = len(np.unique(g[y])), len(np.unique(g[~y]))
    use = min(folds, n_pos, n_neg)
    if use < 2:
        raise ValueError(
            f"the positives lie in {n_pos} group(s) and the negatives in {n_neg}; grouped folds need >= 2 "
            "groups of each: pick a more frequent property or more prompts"
        )
    out = np.empty(len(y), np.int64)
    split = StratifiedGroupKFold(n_splits=use, shuffle=True, random_state=as_count(seed, "seed", 0))
    for f, (_, test) in enumerate(split.split(np.zeros(len(y)), y, g)):
        out[test] = f
    return out


def _logistic(C: float = 1.0, sparse_input: bool = False, scale: bool = True, few: bool = False):
    """Columns scaled (unless ``scale`` is False: already done), then L2-penalised logistic regression
    (strength ``1 / C``). ``few`` columns (a k-sparse probe): liblinear, ~2 ms a fit; all columns: lbfgs,
    ~0.25 s on 3,200 x 1,536 dense rows where liblinear takes ~3.5 s (one BLAS thread, measured)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if few:  # liblinear penalises the intercept too; intercept_scaling softens that
        model = LogisticRegression(C=C, solver="liblinear", intercept_scaling=10.0, max_iter=1000)
    else:
        model = LogisticRegression(C=C, solver="lbfgs", max_iter=1000)
    # with_mean=False keeps a sparse matrix sparse; the unpenalised intercept absorbs the shift
    return make_pipeline(StandardScaler(with_mean=not sparse_input), model) if scale else model


def _diff_means(X_tr, y_tr: np.ndarray, X_te) -> np.ndarray:
    """``x · (mean_pos - mean_neg)`` centred on the midpoint of the class means and in units of the
    training projections' sd, so scores from different folds share one scale (AUROC pools them)."""
    mp, mn = (np.asarray(X_tr[y_tr].mean(0)).ravel(), np.asarray(X_tr[~y_tr].mean(0)).ravel())
    d = mp - mn
    proj = np.asarray(X_tr @ d).ravel()
    sd = proj.std() or 1.0
    return (np.asarray(X_te @ d).ravel() - (mp + mn) @ d / 2) / sd


def _row_span(X: np.ndarray) -> np.ndarray:
    """``X`` standardised per column and rotated onto its rows' span: ``[n, rank]`` instead of ``[n, d]``
    for d > n. An L2-penalised linear model's weights lie in the span of its training rows (a subset of
    these), and the rotation keeps lengths and dot products, so the dense probe's fit and its test scores
    are unchanged, d / n times faster (400 documents x 4,608 latents: ~0.02 s a fit instead of ~1.5 s).
    The scaling uses no labels, so computing it on every row leaks nothing about the held-out fold."""
    sd = X.std(0)
    A = (X - X.mean(0)) / np.where(sd > 0, sd, 1.0)
    lam, U = np.linalg.eigh(A @ A.T)
    keep = lam > max(lam.max(), 1e-300) * 1e-10
    return U[:, keep] * np.sqrt(lam[keep])  # = A V with V = A^T U / sqrt(lam), orthonormal columns


def _dense_rows(X, cols: np.ndarray) -> np.ndarray:
    sub = X[:, cols]
    return sub.toarray() if sparse.issparse(sub) else np.asarray(sub)


def _all_scores(
    X, y: np.ndarray, folds: np.ndarray, ks: Sequence[int], methods: Sequence[str], C: float = 1.0
) -> dict[str, np.ndarray]:
    """Out-of-fold scores of every asked method in one pass over the folds (the column scores of a
    fold are computed once for every k). Keys: ``"k=1"``..., ``"dense"``, ``"diff_means"``."""
    keys = [f"k={k}" for k in ks] * ("sparse" in methods) + [m for m in methods if m != "sparse"]
    out = {key: np.empty(len(y)) for key in keys}
    is_sparse = sparse.issparse(X)
    rotated = "dense" in methods and not is_sparse and X.shape[1] > X.shape[0]
    Z = _row_span(X) if rotated else X
    for f in np.unique(folds):
        tr, te = np.flatnonzero(folds != f), np.flatnonzero(folds == f)
        X_tr, X_te, y_tr = X[tr], X[te], y[tr]
        if "sparse" in methods:
            order = np.argsort(-_scores(X_tr, y_tr), kind="stable")
            for k in ks:
                cols = np.sort(order[:k])
                model = _logistic(C, few=True).fit(_dense_rows(X_tr, cols), y_tr)
                out[f"k={k}"][te] = model.decision_function(_dense_rows(X_te, cols))
        if "dense" in methods:
            model = _logistic(C, sparse_input=is_sparse, scale=not rotated).fit(Z[tr], y_tr)
            out["dense"][te] = model.decision_function(Z[te])
        if "diff_means" in methods:
            out["diff_means"][te] = _diff_means(X_tr, y_tr, X_te)
    return out


def probe_scores(
    X, y, groups, method: str, k: int | None = None, folds: int = 5, seed: int = 0, C: float = 1.0
) -> np.ndarray:
    """Out-of-fold scores (one per row, higher = more likely positive) of one probe: ``method`` is
    ``"sparse"`` (k columns chosen inside each training fold, then L2 logistic regression), ``"dense"``
    (L2 logistic regression on every column, scaled; sparse X stays sparse) or ``"diff_means"``. Folds
    come from :func:`fold_ids` (grouped by prompt, stratified by class)."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    X = _check_X(X)
    y = _check_y(y, X.shape[0])
    g = _check_groups(groups, X.shape[0])
    if method == "sparse":
        if k is None:
            raise ValueError("a sparse probe needs k, the number of columns it may read")
        k = as_count(k, "k", 1, X.shape[1])
    elif k is not None:
        raise ValueError(f"k applies to the sparse probe only; leave it out for {method!r}")
    scores = _all_scores(X, y, fold_ids(y, g, folds, seed), [k] if k else [], [method], C)
    return scores[f"k={k}" if method == "sparse" else method]


# ----------------------------------------------------------------------------------------------
# AUROC with an interval over prompts


class _GroupAuroc:
    """AUROC of scores when each group is drawn ``w[g]`` times, as the Mann-Whitney statistic with row
    weights: ``w @ wins @ w / ((w @ n_pos) (w @ n_neg))``, where ``wins[g, h]`` counts the pairs (a
    positive of group g, a negative of group h) that the scores order rightly, ties one half. ``wins`` is
    built once from the sorted scores, so a bootstrap draw costs a [groups x groups] product (~10 us)."""

    def __init__(self, scores: np.ndarray, y: np.ndarray, groups: np.ndarray):
        _, block = np.unique(scores, return_inverse=True)  # tied scores share a block, blocks ascend
        _, gi = np.unique(groups, return_inverse=True)
        self.n_groups = n_groups = int(gi.max()) + 1
        shape = (int(block.max()) + 1, n_groups)
        pos = sparse.csr_matrix((np.ones(y.sum()), (block[y], gi[y])), shape=shape)
        neg = sparse.csr_matrix((np.ones((~y).sum()), (block[~y], gi[~y])), shape=shape).toarray()
        below = np.cumsum(neg, axis=0) - 0.5 * neg  # negatives of group h scored lower (ties: half)
        self.wins = np.asarray(pos.T @ below)  # [groups, groups]
        self.n_pos = np.bincount(gi[y], minlength=n_groups).astype(np.float64)
        self.n_neg = np.bincount(gi[~y], minlength=n_groups).astype(np.float64)

    def __call__(self, drawn: np.ndarray) -> float:
        w = np.bincount(drawn, minlength=self.n_groups).astype(np.float64)
        tp, tn = w @ self.n_pos, w @ self.n_neg
        if tp == 0 or tn == 0:
            return float("nan")  # a resample with one class only: dropped by the bootstrap
        return float(w @ self.wins @ w / (tp * tn))


def auroc(scores, y) -> float:
    """Area under the ROC curve of ``scores`` for binary ``y`` (ties count one half)."""
    s = np.asarray(scores, dtype=np.float64)
    y = _check_y(y, len(s))
    return _GroupAuroc(s, y, np.zeros(len(s), np.int64))(np.zeros(1, np.int64))


def auroc_interval(scores, y, groups, n_boot: int = 1000, seed: int = 0, level: float = 0.95) -> Interval:
    """AUROC of ``scores`` with a percentile bootstrap interval that resamples whole groups (prompts):
    :func:`helpers.stats.bootstrap` over the groups, each draw weighting a group's rows by how often it
    was drawn. A draw left with one class only is dropped (not a crash); the interval's ``n`` is the
    number of groups."""
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim != 1 or not np.isfinite(s).all():
        raise ValueError(f"scores must be 1-D and finite, got shape {s.shape}")
    y = _check_y(y, len(s))
    stat = _GroupAuroc(s, y, _check_groups(groups, len(s)))
    return bootstrap(stat, stat.n_groups, as_count(n_boot, "n_boot", 1), level, as_count(seed, "seed", 0))


# ----------------------------------------------------------------------------------------------
# every representation, task and method


def probe_table(
    reps: Mapping[str, object],
    tasks: Mapping[str, tuple[np.ndarray, np.ndarray]],
    ks: Sequence[int] = (1, 2, 5, 20),
    folds: int = 5,
    seed: int = 0,
    max_rows: int | None = 4000,
    n_boot: int = 1000,
    C: float = 1.0,
) -> pd.DataFrame:
    """One row per (task, representation, method) with ``AUROC, low, high, n_groups, n_rows``: every
    representation in ``reps`` (``[n, d]`` numpy or CSR, the same n rows each) probed on every binary
    task ``name -> (y, groups)``. Methods: ``k=<k>`` for each k, ``dense``, ``diff_means``. Per task the
    rows (:func:`balanced_rows` with ``max_rows``; None keeps all) and the folds are the same for every
    representation, so their AUROCs are compared on equal terms."""
    if not reps or not tasks:
        raise ValueError("pass at least one representation and one task")
    mats = {name: _check_X(X) for name, X in reps.items()}
    n = {X.shape[0] for X in mats.values()}
    if len(n) != 1:
        raise ValueError(f"every representation needs the same rows; got row counts {sorted(n)}")
    n_rows = n.pop()
    d_min = min(X.shape[1] for X in mats.values())
    ks = [as_count(k, "k", 1, d_min) for k in ks]
    # One BLAS thread: the matrices here are small (<= a few thousand rows), where a second thread gains
    # at most 2x on an idle machine and loses 10-50x when the two cores are shared (eigh of 400 x 400:
    # 1.07 s with 2 threads vs 0.02 s with 1, measured with other jobs running).
    with threadpool_limits(1, user_api="blas"):
        return _probe_table(mats, tasks, n_rows, ks, folds, seed, max_rows, n_boot, C)


def _probe_table(mats, tasks, n_rows, ks, folds, seed, max_rows, n_boot, C) -> pd.DataFrame:
    records = []
    for t_name, (y, groups) in tasks.items():
        y = _check_y(y, n_rows)
        g = _check_groups(groups, n_rows)
        rows = np.arange(n_rows) if max_rows is None else balanced_rows(y, g, max_rows, seed)
        y_r, g_r = y[rows], g[rows]
        f = fold_ids(y_r, g_r, folds, seed)
        for r_name, X in mats.items():
            scores = _all_scores(X[rows], y_r, f, ks, METHODS, C)
            for method, s in scores.items():
                iv = auroc_interval(s, y_r, g_r, n_boot=n_boot, seed=seed)
                records.append(
                    {
                        "task": t_name,
                        "representation": r_name,
                        "method": method,
                        "AUROC": iv.value,
                        "low": iv.low,
                        "high": iv.high,
                        "n_groups": iv.n,
                        "n_rows": len(rows),
                    }
                )
    return pd.DataFrame.from_records(records)
