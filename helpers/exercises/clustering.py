"""Graded exercises of Notebook 05 (clustering): cluster purity and the lift ranking of features."""

from __future__ import annotations

import numpy as np
import pandas as pd

from helpers.analysis import clustering
from helpers.exercises.common import Case, Exercise, arrays, close, first_match, make_check, scalar

# ----------------------------------------------------------------------------------------------
# purity(labels, themes): share of documents whose cluster's majority theme is their own

_THEMES = ("sport", "science", "cooking", "history", "music", "travel", "finance", "garden")


def _purity_variants(labels: np.ndarray, themes: np.ndarray) -> list[tuple[float, str]]:
    """The values of the usual mistakes, each with its hint."""
    t = pd.crosstab(np.asarray(labels), np.asarray(themes))
    top = t.max(axis=1)
    n = len(labels)
    return [
        (
            1.0,
            "count documents, not clusters: sum each cluster's majority count and divide by the number of "
            "documents",
        ),
        (
            float((top / t.sum(axis=1)).mean()),
            "that is the mean of the clusters' purities, which weighs a small cluster like a big one: sum "
            "each cluster's majority count, then divide by the number of documents",
        ),
        (
            float(t.max(axis=0).sum() / n),
            "that is the purity of themes over clusters (rows and columns swapped): take each *cluster's* "
            "majority theme",
        ),
        (float(top.sum() / len(t)), "divide by the number of documents, not the number of clusters"),
        (float(top.sum()), "purity is a share: divide the summed majority counts by the number of documents"),
        (
            float(1.0 - top.sum() / n),
            "that is the impurity (1 - purity): count the documents whose theme is their cluster's majority",
        ),
    ]


def _purity_case(rng: np.random.Generator) -> Case:
    """Clusters of unequal sizes (some tiny), each with a dominant theme, under non-contiguous label ids;
    drawn again until every usual mistake gives a different value from the right one."""
    while True:
        k = int(rng.integers(2, 7))
        ids = rng.choice(np.arange(-1, 40), size=k, replace=False)
        names = rng.choice(_THEMES, size=int(rng.integers(2, 6)), replace=False)
        sizes = rng.integers(1, 25, size=k)
        labels = np.repeat(ids, sizes)
        dominant = np.repeat(rng.choice(names, size=k), sizes)
        p = np.repeat(rng.uniform(0.3, 0.9, size=k), sizes)
        themes = np.where(rng.random(len(labels)) < p, dominant, rng.choice(names, len(labels)))
        order = rng.permutation(len(labels))
        labels, themes = labels[order], themes[order].astype(str)
        want = clustering.purity(labels, themes)
        if all(abs(v - want) > 1e-3 for v, _ in _purity_variants(labels, themes)):
            return arrays(labels=labels, themes=themes)


def _purity_solve(case: Case) -> Case:
    return arrays(value=clustering.purity(case["labels"], case["themes"]))


def _purity_judge(case: Case, out: Case) -> str | None:
    got = scalar(out)
    if close(got, scalar(_purity_solve(case))):
        return None
    return first_match(got, _purity_variants(case["labels"], case["themes"])) or (
        "purity is wrong on a case: cross-tabulate clusters against themes (pd.crosstab(labels, themes)), "
        "take each cluster's largest count, sum them and divide by the number of documents"
    )


PURITY = Exercise(
    name="purity",
    references=("helpers.analysis.clustering.purity",),
    public=lambda: [
        arrays(labels=np.array([0, 0, 0, 1, 1, 1, 1, 2, 2, 2]), themes=np.array(list("aabbbcbaac"))),
        _purity_case(np.random.default_rng(1)),
        _purity_case(np.random.default_rng(2)),
    ],
    hidden=lambda rng: [_purity_case(rng) for _ in range(4)],
    answer=lambda args, c: arrays(value=float(args[0](c["labels"], c["themes"]))),
    solve=_purity_solve,
    judge=_purity_judge,
)

# ----------------------------------------------------------------------------------------------
# lift_ranking(X, labels, c, n): the n features with the largest (in - out) / std, stable order


def _hand_lift_case(c: int) -> Case:
    """The old fixed case: a dense feature large everywhere and a small but perfectly distinctive one."""
    rng = np.random.default_rng(0)
    X = rng.exponential(0.2, size=(60, 8))
    X[:, 0] += 5.0
    labels = np.repeat([0, 1, 2], 20)
    X[labels == 1, 3] += 1.0
    X[labels == 1, 6] += 0.2 + rng.exponential(0.01, 20)
    return arrays(X=X, labels=labels, c=c, n=3)


def _lift_case(rng: np.random.Generator, long: bool) -> Case:
    """Random documents × features with a dense feature, a strong noisy one and a small consistent one for
    cluster c, constant columns (lift 0, not NaN), and an exact copy of a distinctive feature (a tie:
    the lower index first); ``long``: n reaches past the positive lifts into the constant columns."""
    n_docs, n_feat, k = int(rng.integers(30, 120)), int(rng.integers(8, 24)), int(rng.integers(2, 5))
    ids = rng.choice(30, size=k, replace=False)
    labels = ids[np.arange(n_docs) % k][rng.permutation(n_docs)]  # every cluster holds documents
    c = int(rng.choice(ids))
    inside = labels == c
    X = rng.exponential(rng.uniform(0.05, 0.5, n_feat), size=(n_docs, n_feat))
    dense, strong, subtle, zero, flat, copy = rng.permutation(n_feat)[:6]
    X[:, dense] += rng.uniform(3.0, 8.0)
    X[inside, strong] += rng.uniform(0.5, 2.0) * rng.exponential(1.0, inside.sum())
    X[inside, subtle] += rng.uniform(0.1, 0.3) + rng.exponential(0.01, inside.sum())
    X[:, zero] = 0.0  # a dead feature
    X[:, flat] = float(rng.integers(1, 8)) / 4  # constant and exact: its std is 0, not rounding noise
    original = rng.choice([strong, subtle])
    X[:, copy] = X[:, original]
    ranked = np.argsort(-clustering.lift_scores(X, labels, c), kind="stable")
    tie_rank = int(max(np.flatnonzero(ranked == copy)[0], np.flatnonzero(ranked == original)[0]))
    positive = int((clustering.lift_scores(X, labels, c) > 0).sum())
    n = positive + int(rng.integers(1, 4)) if long else int(rng.integers(3, 7))
    n = min(max(n, tie_rank + 1), n_feat)
    return arrays(X=X, labels=labels, c=c, n=n)


def _lift_solve(case: Case) -> Case:
    return arrays(features=clustering.lift_ranking(case["X"], case["labels"], int(case["c"]), int(case["n"])))


def _top(score: np.ndarray, n: int) -> np.ndarray:
    return np.argsort(-score, kind="stable")[:n]


def _lift_judge(case: Case, out: Case) -> str | None:
    X, labels, c, n = case["X"], case["labels"], int(case["c"]), int(case["n"])
    fmt = "return the n feature indices as an int array, largest lift first"
    try:
        got = np.asarray(out["features"])
        if got.shape != (n,) or got.dtype.kind not in "iuf" or not np.array_equal(got, np.round(got)):
            return fmt
        got = got.astype(np.int64)
    except (KeyError, TypeError, ValueError, OverflowError):
        return fmt
    want = _lift_solve(case)["features"]
    if np.array_equal(got, want):
        return None
    if got.min() < 0 or got.max() >= X.shape[1]:
        return "feature indices run from 0 to X.shape[1] - 1"
    lift = clustering.lift_scores(X, labels, c)
    if len(set(got.tolist())) == n and np.array_equal(lift[got], lift[want]):
        return (
            "features with equal lift must keep their order, the lower index first: "
            "np.argsort(-lift, kind='stable') (reversing an ascending sort flips tied features)"
        )
    inside = labels == c
    diff = X[inside].mean(0) - X[~inside].mean(0)
    with np.errstate(divide="ignore", invalid="ignore"):
        by_nan = diff / X.std(0)
        by_inside = diff / X[inside].std(0)
    for variant, hint in (
        (
            _top(X[inside].mean(0), n),
            "that is the raw in-cluster mean, which puts a dense feature on top of every cluster; "
            "subtract the out-of-cluster mean",
        ),
        (
            _top(diff, n),
            "divide the difference by each feature's standard deviation, so small but consistent "
            "features count",
        ),
        (np.argsort(lift, kind="stable")[:n], "largest lift first: sort by -lift, not lift"),
        (
            _top(by_nan, n),
            "a constant feature (std 0) has lift 0, not NaN: divide only where the std is positive "
            "(np.where(sd > 0, ...))",
        ),
        (
            _top(by_inside, n),
            "divide by each feature's standard deviation over all documents, not inside the cluster",
        ),
    ):
        if np.array_equal(got, variant):
            return hint
    return (
        "lift_ranking is wrong on a case: lift = (mean inside cluster c - mean outside) / the feature's std "
        "over all documents (0 where the std is 0); return np.argsort(-lift, kind='stable')[:n]"
    )


LIFT_RANKING = Exercise(
    name="lift_ranking",
    references=("helpers.analysis.clustering.lift_ranking", "helpers.analysis.clustering.lift_scores"),
    public=lambda: [
        _hand_lift_case(1),
        _hand_lift_case(2),
        _lift_case(np.random.default_rng(1), long=False),
        _lift_case(np.random.default_rng(2), long=True),
    ],
    hidden=lambda rng: [_lift_case(rng, long=bool(i % 2)) for i in range(4)],
    answer=lambda args, c: arrays(features=args[0](c["X"], c["labels"], int(c["c"]), int(c["n"]))),
    solve=_lift_solve,
    judge=_lift_judge,
)

EXERCISES = (PURITY, LIFT_RANKING)
check_purity = make_check(PURITY)
check_lift_ranking = make_check(LIFT_RANKING)
