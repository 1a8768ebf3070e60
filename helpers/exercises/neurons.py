"""Graded exercise of notebook 04's neurons section: the AUROC by the rank-sum formula."""

from __future__ import annotations

import numpy as np

from helpers.analysis import labels
from helpers.exercises.common import (
    Case,
    CheckFailed,
    Exercise,
    arrays,
    close,
    first_match,
    make_check,
    scalar,
)

_FORMAT = "return one number, the AUROC (a float between 0 and 1)"

# (fires, score): distinct scores; tied scores; a 0/1 detector (a label flags a token or not)
_FIXED = (
    (
        (1, 0, 1, 0, 0, 1, 0, 0, 1, 0, 0, 1),
        (0.9, 0.1, 0.35, 0.8, 0.2, 0.7, 0.05, 0.4, 0.6, 0.3, 0.15, 0.5),
    ),
    ((1, 0, 1, 0, 0, 1, 1, 0, 0, 0, 0, 1), (2, 0, 1, 1, 0, 2, 1, 0, 2, 0, 1, 1)),
    ((1, 0, 1, 0, 0, 1, 0, 1, 0, 0, 0, 0, 0, 1), (1, 0, 1, 0, 0, 0, 1, 1, 0, 0, 1, 0, 0, 0)),
)


def _fixed_case(fires, score) -> Case:
    return arrays(fires=np.array(fires, dtype=bool), score=np.array(score, dtype=np.float64))


def _auroc_case(rng: np.random.Generator, kind: int) -> Case:
    """``kind`` 0: distinct continuous scores; 1: a detector's small whole-number scores (many ties);
    2: a 0/1 detector. Firing tokens score higher on average; both classes hold a few tokens at least."""
    n = int(rng.integers(12, 60))
    n_pos = int(rng.integers(3, n - 3))
    fires = np.zeros(n, dtype=bool)
    fires[rng.choice(n, n_pos, replace=False)] = True
    signal = fires * rng.uniform(0.3, 1.5) + rng.normal(size=n)
    if kind == 0:
        score = signal + rng.uniform(-3, 3)
    elif kind == 1:
        score = np.clip(np.round(signal + 1), 0, 3)
    else:
        score = (signal > np.quantile(signal, rng.uniform(0.4, 0.8))).astype(np.float64)
    return arrays(fires=fires, score=score.astype(np.float64))


def _average_ranks(score: np.ndarray) -> np.ndarray:
    """1-based ranks, tied scores sharing the mean of their ranks."""
    order = np.argsort(score, kind="stable")
    ranks = np.empty(len(score))
    ranks[order] = np.arange(1, len(score) + 1)
    for v in np.unique(score):
        tie = score == v
        ranks[tie] = ranks[tie].mean()
    return ranks


def _auroc_answer(args: tuple, case: Case) -> Case:
    got = args[0](case["fires"].copy(), case["score"].copy())
    try:
        value = np.asarray(got.detach().cpu().numpy() if hasattr(got, "detach") else got, dtype=np.float64)
        if value.size != 1:
            raise ValueError
    except (TypeError, ValueError) as err:
        raise CheckFailed(_FORMAT) from err
    return arrays(value=float(value.reshape(-1)[0]))


def _auroc_solve(case: Case) -> Case:
    return arrays(value=labels._auroc(case["fires"].astype(bool), case["score"]))


def _auroc_judge(case: Case, out: Case) -> str | None:
    fires, score = case["fires"].astype(bool), case["score"]
    got = scalar(out)
    want = scalar(_auroc_solve(case))
    if close(got, want):
        return None
    if not np.isfinite(got):
        return _FORMAT
    n_pos = int(fires.sum())
    n_neg = len(fires) - n_pos
    r_pos = float(_average_ranks(score)[fires].sum())
    u = r_pos - n_pos * (n_pos + 1) / 2
    ordinal = np.empty(len(score))
    ordinal[np.argsort(score, kind="stable")] = np.arange(1, len(score) + 1)
    pos, neg = score[fires][:, None], score[~fires][None, :]
    ties = "a firing token tied with a silent one counts half; give tied scores the average of their ranks"
    hint = first_match(
        got,
        [
            (
                1 - want,
                "positives and negatives are swapped (that is 1 - AUROC): sum the ranks of the firing tokens",
            ),
            (
                r_pos / (n_pos * n_neg),
                "forgot to subtract n_pos(n_pos+1)/2 from the rank sum: the smallest rank sum the firing "
                "tokens can have",
            ),
            (
                want - 1 / n_neg,
                "ranks start at 1, not 0: the lowest score has rank 1 (argsort gives 0-based positions)",
            ),
            (
                u,
                "divide by n_pos * n_neg: U counts the (firing, silent) pairs won, out of n_pos * n_neg "
                "pairs",
            ),
            (u / (n_pos * len(fires)), "divide by n_pos * n_neg (the pairs), not by n_pos * n (all tokens)"),
            (float((pos > neg).mean()), f"ties counted as losses: {ties} (scipy.stats.rankdata does)"),
            (float((pos >= neg).mean()), f"ties counted as wins: {ties} (scipy.stats.rankdata does)"),
            (
                (float(ordinal[fires].sum()) - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg),
                "no tie handling: tied scores got different ranks (argsort); give them the average of their "
                "ranks (scipy.stats.rankdata does)",
            ),
        ],
    )
    if hint:
        return hint
    if len(np.unique(score)) < len(score):
        return f"wrong on a case with tied scores: {ties} (scipy.stats.rankdata does)"
    return (
        "auroc is wrong on a case: rank every score (1 = lowest), sum the ranks of the firing tokens, "
        "subtract n_pos(n_pos+1)/2, divide by n_pos * n_neg"
    )


AUROC = Exercise(
    name="auroc",
    references=("helpers.analysis.labels._auroc", "helpers.analysis.labels.auroc_rows"),
    public=lambda: [_fixed_case(f, s) for f, s in _FIXED],
    hidden=lambda rng: [_auroc_case(rng, k) for k in (0, 1, 2, int(rng.integers(0, 3)))],
    answer=_auroc_answer,
    solve=_auroc_solve,
    judge=_auroc_judge,
    done="rank-sum AUROC on distinct scores, tied scores and a 0/1 detector",
)

EXERCISES = (AUROC,)
check_auroc = make_check(AUROC)
