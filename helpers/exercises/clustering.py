"""Graded checks of Notebook 05 (clustering)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from helpers.exercises.common import CheckFailed, call, close, passed

LIFT_RANKING = {1: [3, 6, 1], 2: [4, 5, 2]}  # the expected answers on the case below (top 3 per cluster)
PURITY = 0.7  # (2 + 3 + 2) / 10 on the hand case


def check_lift_ranking(fn: Callable) -> None:
    """Exercise: features ranked by (in-cluster mean - out-of-cluster mean) / overall std."""
    from helpers.analysis import clustering

    rng = np.random.default_rng(0)
    X = rng.exponential(0.2, size=(60, 8))
    X[:, 0] += 5.0  # a dense feature, large everywhere
    labels = np.repeat([0, 1, 2], 20)
    X[labels == 1, 3] += 1.0
    X[labels == 1, 6] += 0.2 + rng.exponential(0.01, 20)  # small but perfectly distinctive
    for c in (1, 2):
        want = LIFT_RANKING[c]
        got = [
            int(g)
            for g in call(fn, X, labels, c, 3, forbidden=[clustering.lift_ranking, clustering.lift_scores])
        ]
        if got == want:
            continue
        inside = labels == c
        if got == np.argsort(-X[inside].mean(0), kind="stable")[:3].tolist():
            raise CheckFailed(
                "that is the raw in-cluster mean, which puts the dense feature 0 on top of every cluster; "
                "subtract the out-of-cluster mean"
            )
        unscaled = np.argsort(-(X[inside].mean(0) - X[~inside].mean(0)), kind="stable")[:3].tolist()
        if got == unscaled:
            raise CheckFailed(
                "divide the difference by each feature's standard deviation, so small but consistent "
                "features count"
            )
        raise CheckFailed(
            f"expected features {want} for cluster {c}, got {got}; largest (in - out) / std first"
        )
    passed("lift_ranking", "distinctive features, not dense ones, on 2 clusters")


def check_purity(fn: Callable) -> None:
    """Exercise: purity = share of documents whose cluster's majority theme is their own."""
    from helpers.analysis import clustering

    labels = np.array([0, 0, 0, 1, 1, 1, 1, 2, 2, 2])
    themes = np.array(list("aabbbcbaac"))
    want = PURITY
    got = call(fn, labels, themes, forbidden=[clustering.purity])
    if close(got, want):
        passed("purity", f"{want:.2f} on the hand case")
        return
    if close(got, 1.0):
        raise CheckFailed(
            "count documents, not clusters: sum each cluster's majority count and divide by the number of "
            "documents"
        )
    if close(got, _purity_by_theme(labels, themes)):
        raise CheckFailed(
            "that is the purity of themes over clusters (rows and columns swapped): take each *cluster's* "
            "majority theme"
        )
    raise CheckFailed(
        f"purity gave {float(got):.3f}, expected {want:.3f} = (2 + 3 + 2) / 10 on the hand case"
    )


def _purity_by_theme(labels, themes) -> float:
    import pandas as pd

    t = pd.crosstab(np.asarray(themes), np.asarray(labels))
    return float(t.max(axis=1).sum() / t.to_numpy().sum())
