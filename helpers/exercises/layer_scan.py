"""Graded exercises of Notebook 01 (layer scan): the attention-sink ratio and the participation ratio."""

from __future__ import annotations

import numpy as np

from helpers.data import layer_scan
from helpers.exercises.common import Case, Exercise, arrays, close, first_match, make_check, scalar

# ----------------------------------------------------------------------------------------------
# sink_ratio(x, positions): mean norm of first tokens / mean norm of the other tokens


def _sink_case(rng: np.random.Generator) -> Case:
    """Tokens of a few documents; the first token of each is several times larger, as in a real model."""
    lengths = rng.integers(2, 8, size=int(rng.integers(2, 6)))
    positions = np.concatenate([np.arange(n) for n in lengths])
    x = rng.normal(size=(len(positions), int(rng.integers(4, 24)))) * rng.uniform(0.5, 2.0)
    x[positions == 0] *= rng.uniform(3.0, 12.0)
    return arrays(x=x, positions=positions)


def _sink_solve(case: Case) -> Case:
    return arrays(value=layer_scan.sink_ratio(case["x"], case["positions"]))


def _sink_judge(case: Case, out: Case) -> str | None:
    x, pos = case["x"], case["positions"]
    got = scalar(out)
    if close(got, scalar(_sink_solve(case))):
        return None
    norms = np.linalg.norm(x, axis=1)
    first = pos == 0
    return first_match(
        got,
        [
            (
                norms[first].mean() / norms.mean(),
                "the denominator must leave the first tokens out (positions > 0), "
                "not average over all tokens",
            ),
            (
                norms[~first].mean() / norms[first].mean(),
                "the ratio is upside down: first-token norm divided by the others",
            ),
            (
                (x[first] ** 2).sum(1).mean() / (x[~first] ** 2).sum(1).mean(),
                "that is a ratio of squared norms; "
                "take the square root per token (np.linalg.norm(x, axis=-1))",
            ),
            (
                np.linalg.norm(x[first], axis=0).mean() / np.linalg.norm(x[~first], axis=0).mean(),
                "the norm was taken over tokens (axis 0); "
                "take it over dimensions (axis=-1), one norm per token",
            ),
            (
                np.abs(x[first]).mean() / np.abs(x[~first]).mean(),
                "mean |value| is not a norm; take each token's L2 norm first",
            ),
        ],
    ) or (
        "sink_ratio is wrong on a case: compute each token's L2 norm, then the mean over position 0 "
        "divided by the mean over the other positions"
    )


SINK = Exercise(
    name="sink_ratio",
    references=("helpers.data.layer_scan.sink_ratio",),
    public=lambda: [_sink_case(np.random.default_rng(s)) for s in (0, 1, 2)],
    hidden=lambda rng: [_sink_case(rng) for _ in range(4)],
    answer=lambda args, c: arrays(value=float(args[0](c["x"], c["positions"]))),
    solve=_sink_solve,
    judge=_sink_judge,
)

# ----------------------------------------------------------------------------------------------
# participation_ratio(x): (sum of covariance eigenvalues)^2 / sum of squared eigenvalues


def _participation_case(rng: np.random.Generator, kind: int) -> Case:
    d = int(rng.integers(5, 12))
    n = int(rng.integers(40, 200))
    if kind == 0:  # offset: catches a forgotten centring
        x = rng.normal(size=(n, d)) * np.sort(rng.uniform(0.1, 5.0, d))[::-1] + rng.uniform(2, 6)
    elif kind == 1:
        x = rng.normal(size=(n, d)) @ rng.normal(size=(d, d)) - rng.uniform(1, 3)
    else:  # nearly one direction
        x = np.repeat(rng.normal(size=(n, 1)), d, axis=1) + 0.01 * rng.normal(size=(n, d)) + 1.0
    return arrays(x=x)


def _participation_solve(case: Case) -> Case:
    return arrays(value=layer_scan.participation_ratio(case["x"]))


def _participation_judge(case: Case, out: Case) -> str | None:
    x = case["x"]
    got = scalar(out)
    want = scalar(_participation_solve(case))
    if close(got, want, rtol=1e-3):
        return None
    xc = x - x.mean(0)
    lam = np.linalg.eigvalsh(xc.T @ xc / (len(x) - 1))
    raw = np.linalg.eigvalsh(x.T @ x / len(x))
    sv = np.linalg.svd(xc, compute_uv=False)
    return first_match(
        got,
        [
            (
                raw.sum() ** 2 / (raw**2).sum(),
                "centre the data first (x - x.mean(0)): without it the mean direction dominates the spectrum",
            ),
            (1.0 / want, "the ratio is upside down: (sum λ)² / sum λ², which lies between 1 and d"),
            (
                sv.sum() ** 2 / (sv**2).sum(),
                "those are singular values of the data; "
                "the covariance eigenvalues are their squares / (n - 1)",
            ),
            (lam.sum() / (lam**2).sum(), "square the sum in the numerator: (sum λ)², not sum λ"),
            (1.0, "the denominator is the sum of squared eigenvalues, not the squared sum"),
        ],
        rtol=1e-3,
    ) or (
        "participation_ratio is wrong on a case: centre x, take the covariance's eigenvalues λ, "
        "return (sum λ)² / sum λ²"
    )


PARTICIPATION = Exercise(
    name="participation_ratio",
    references=("helpers.data.layer_scan.participation_ratio",),
    public=lambda: [_participation_case(np.random.default_rng(0), k) for k in range(3)],
    hidden=lambda rng: [_participation_case(rng, k) for k in (0, 1, 2, int(rng.integers(0, 3)))],
    answer=lambda args, c: arrays(value=float(args[0](c["x"]))),
    solve=_participation_solve,
    judge=_participation_judge,
)

EXERCISES = (SINK, PARTICIPATION)
check_sink_ratio = make_check(SINK)
check_participation_ratio = make_check(PARTICIPATION)
