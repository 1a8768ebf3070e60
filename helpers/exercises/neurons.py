"""Graded check of notebook 04's neurons section: the AUROC by the rank-sum formula."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from helpers.exercises.common import CheckFailed, call, close, passed

# (fires, score): distinct scores; tied scores; a 0/1 detector (a label flags a token or not)
CASES = (
    (
        (1, 0, 1, 0, 0, 1, 0, 0, 1, 0, 0, 1),
        (0.9, 0.1, 0.35, 0.8, 0.2, 0.7, 0.05, 0.4, 0.6, 0.3, 0.15, 0.5),
    ),
    ((1, 0, 1, 0, 0, 1, 1, 0, 0, 0, 0, 1), (2, 0, 1, 1, 0, 2, 1, 0, 2, 0, 1, 1)),
    ((1, 0, 1, 0, 0, 1, 0, 1, 0, 0, 0, 0, 0, 1), (1, 0, 1, 0, 0, 0, 1, 1, 0, 0, 1, 0, 0, 0)),
)
# helpers.analysis.labels._auroc on CASES (tests/unit/exercises/test_neurons.py recomputes them)
EXPECTED = (0.8571428571428571, 0.8, 0.6888888888888889)


def _average_ranks(score: np.ndarray) -> np.ndarray:
    """1-based ranks, tied scores sharing the mean of their ranks."""
    order = np.argsort(score, kind="stable")
    ranks = np.empty(len(score))
    ranks[order] = np.arange(1, len(score) + 1)
    for v in np.unique(score):
        tie = score == v
        ranks[tie] = ranks[tie].mean()
    return ranks


def _hints(fires: np.ndarray, score: np.ndarray, want: float) -> list[tuple[float, str]]:
    """The value each likely mistake gives on this case, with what to say about it."""
    n_pos = int(fires.sum())
    n_neg = len(fires) - n_pos
    r_pos = float(_average_ranks(score)[fires].sum())
    u = r_pos - n_pos * (n_pos + 1) / 2
    ordinal = np.empty(len(score))
    ordinal[np.argsort(score, kind="stable")] = np.arange(1, len(score) + 1)
    pos, neg = score[fires][:, None], score[~fires][None, :]
    return [
        (
            1 - want,
            "positives and negatives are swapped (that is 1 - AUROC): sum the ranks of the firing tokens",
        ),
        (
            r_pos / (n_pos * n_neg),
            "forgot to subtract n_pos(n_pos+1)/2 from the rank sum: the smallest rank sum the firing tokens "
            "can have",
        ),
        (
            want - 1 / n_neg,
            "ranks start at 1, not 0: the lowest score has rank 1 (argsort gives 0-based positions)",
        ),
        (u, "divide by n_pos * n_neg: U counts the (firing, silent) pairs won, out of n_pos * n_neg pairs"),
        (u / (n_pos * len(fires)), "divide by n_pos * n_neg (the pairs), not by n_pos * n (all tokens)"),
        (
            float((pos > neg).mean()),
            "ties counted as losses: a firing token tied with a silent one counts half; give tied scores "
            "the average of their ranks (scipy.stats.rankdata does)",
        ),
        (
            float((pos >= neg).mean()),
            "ties counted as wins: a firing token tied with a silent one counts half; give tied scores the "
            "average of their ranks (scipy.stats.rankdata does)",
        ),
        (
            (float(ordinal[fires].sum()) - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg),
            "no tie handling: tied scores got different ranks (argsort); give them the average of their "
            "ranks (scipy.stats.rankdata does)",
        ),
    ]


def check_auroc(fn: Callable[[np.ndarray, np.ndarray], float]) -> None:
    """Exercise: AUROC = (sum of the firing tokens' ranks - n_pos(n_pos+1)/2) / (n_pos n_neg),
    tied scores sharing their average rank."""
    from helpers.analysis.labels import _auroc, auroc_rows

    for k, ((f, s), want) in enumerate(zip(CASES, EXPECTED, strict=True)):
        fires, score = np.array(f, dtype=bool), np.array(s, dtype=np.float64)
        got = call(fn, fires.copy(), score.copy(), forbidden=[_auroc, auroc_rows])
        try:
            got = float(np.asarray(got, dtype=np.float64))
        except (TypeError, ValueError) as err:
            raise CheckFailed("return one number, the AUROC (a float between 0 and 1)") from err
        if close(got, want):
            continue
        for value, hint in _hints(fires, score, want):
            if close(got, value):
                raise CheckFailed(hint)
        if k > 0:
            raise CheckFailed(
                f"right on distinct scores but {got:.4f} instead of {want:.4f} with tied scores: a tie "
                "between a firing and a silent token counts half; give tied scores the average of their ranks"
            )
        raise CheckFailed(
            f"auroc gave {got:.4f}, expected {want:.4f}: rank every score (1 = lowest), sum the ranks of the "
            "firing tokens, subtract n_pos(n_pos+1)/2, divide by n_pos * n_neg"
        )
    passed("auroc", "rank-sum AUROC on distinct scores, tied scores and a 0/1 detector")
