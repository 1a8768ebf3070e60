"""Graded exercise of Notebook 06 (steering): the clamp strength at which perplexity doubles."""

from __future__ import annotations

import numpy as np

from helpers.analysis import steering
from helpers.exercises.common import Case, Exercise, arrays, close, first_match, make_check

# ----------------------------------------------------------------------------------------------
# doubling_strength(strengths, perplexity): the first strength where perplexity reaches 2x its value at
# strength 0, interpolated linearly between the two sweep points around the crossing; inf if never


def _public_cases() -> list[Case]:
    """Four small sweeps, one of each situation: a rising curve crossing between two points; a curve
    that dips below the baseline, crosses, falls back and crosses again; one that never doubles; one
    that dips and reaches exactly 2x at its last point."""
    sweeps = [
        ([0.0, 1.0, 2.0, 4.0, 8.0], [5.0, 6.5, 9.0, 15.0, 40.0]),
        ([0.0, 0.5, 1.0, 2.0, 3.0, 5.0], [8.0, 6.0, 12.0, 20.0, 14.0, 30.0]),
        ([0.0, 1.0, 2.0, 3.0, 5.0, 7.5, 10.0], [4.0, 5.0, 3.5, 6.0, 7.0, 5.5, 7.9]),
        ([0.0, 1.0, 2.0, 4.0], [5.0, 7.0, 4.0, 10.0]),
    ]
    return [arrays(strengths=s, perplexity=p) for s, p in sweeps]


def _doubling_case(rng: np.random.Generator, kind: int) -> Case:
    """A random sweep (random length and spacing, strengths from 0, perplexity from a random baseline).
    kind 0: dips below the baseline, crosses 2x, falls back below and crosses again; 1: never reaches
    2x (but dips below the baseline, so 2 x the minimum is reached); 2: reaches exactly 2x at a point
    (often the last), after a dip; 3: a random walk, whatever it does."""
    n = int(rng.integers(6, 13))
    s = np.round(np.concatenate([[0.0], np.cumsum(rng.uniform(0.25, 3.0, n - 1))]), 2)
    b = float(rng.uniform(3.0, 12.0))
    if kind == 0:
        k = int(rng.integers(2, n - 2))  # the first crossing
        p = b * rng.uniform(0.7, 1.9, n)
        p[rng.integers(1, k)] = b * rng.uniform(0.6, 0.95)  # a dip before the crossing
        p[k] = 2 * b * rng.uniform(1.05, 1.6)
        p[k + 1] = 2 * b * rng.uniform(0.6, 0.95)
        p[k + 2 :] = b * rng.uniform(0.8, 3.5, n - k - 2)
        p[-1] = 2 * b * rng.uniform(1.3, 3.0)
    elif kind == 1:
        p = b * rng.uniform(0.6, 1.95, n)
        p[int(rng.integers(1, n))] = b * rng.uniform(0.55, 0.9)
    elif kind == 2:
        k = n - 1 if rng.random() < 0.5 else int(rng.integers(2, n - 1))
        p = b * rng.uniform(0.7, 1.9, n)
        p[rng.integers(1, k)] = b * rng.uniform(0.6, 0.95)
        p[k + 1 :] = b * rng.uniform(1.0, 4.0, n - k - 1)
    else:
        p = b * np.exp(np.cumsum(rng.normal(0.15, 0.35, n)))
    p[0] = b
    if kind == 2:
        p[k] = 2 * b  # exact in floating point
    return arrays(strengths=s, perplexity=p)


def _doubling_solve(case: Case) -> Case:
    return arrays(value=steering.doubling_strength(case["strengths"], case["perplexity"]))


def _doubling_answer(args: tuple, case: Case) -> Case:
    got = args[0](case["strengths"].copy(), case["perplexity"].copy())
    return arrays(value=np.nan if got is None else got)


def _crossing(
    s: np.ndarray,
    p: np.ndarray,
    target: float,
    last: bool = False,
    interpolate: bool = True,
    flip: bool = False,
    strict: bool = False,
) -> float:
    """Where ``p`` first (or last) rises to ``target``, interpolated; the flags are the usual ways of
    getting it wrong (last crossing, no interpolation, interpolating from the wrong end, > for >=)."""
    ups = [
        k
        for k in range(1, len(p))
        if (p[k] > target and p[k - 1] <= target if strict else p[k] >= target and p[k - 1] < target)
    ]
    if not ups:
        return float("inf")
    k = ups[-1] if last else ups[0]
    if not interpolate:
        return float(s[k])
    frac = (target - p[k - 1]) / (p[k] - p[k - 1])
    return float(s[k] - frac * (s[k] - s[k - 1]) if flip else s[k - 1] + frac * (s[k] - s[k - 1]))


def _one_number(out: Case) -> float | None:
    """The answer as one float (NaN and inf kept), or None when it is not one number."""
    try:
        a = np.asarray(out["value"])
    except KeyError:
        return None
    return float(a.reshape(())) if a.size == 1 and a.dtype.kind in "iuf" else None


GENERIC = (
    "doubling_strength is wrong on a case: the baseline is perplexity[0] (strength 0); find the first "
    "point whose perplexity is >= 2 x baseline, interpolate linearly between it and the point before it, "
    "and return float('inf') if no point reaches 2 x baseline"
)


def _doubling_judge(case: Case, out: Case) -> str | None:
    s, p = case["strengths"].astype(np.float64), case["perplexity"].astype(np.float64)
    got = _one_number(out)
    if got is None:
        return "return one number (a float): the strength at which perplexity doubles"
    want = float(_doubling_solve(case)["value"])
    if close(got, want):
        return None
    if np.isinf(want) and np.isnan(got):
        return (
            "if perplexity never reaches twice the baseline, return float('inf') (not nan or None): "
            "an infinite strength compares and sorts correctly against the other features' strengths"
        )
    if np.isinf(want) and got == s[-1]:
        return (
            "if perplexity never reaches twice the baseline, return float('inf'), not the last strength "
            "of the sweep: the sweep does not say where (or whether) it would double further on"
        )
    t = 2 * p[0]
    first = np.flatnonzero(p >= t)
    prev = float(s[first[0] - 1]) if first.size else float("inf")
    rel_prev = [k for k in range(1, len(p)) if p[k] >= 2 * p[k - 1]]
    variants = [
        (
            _crossing(s, p, 2 * p.min()),
            "the baseline is the perplexity at strength 0 (perplexity[0]), not the smallest perplexity "
            "of the sweep: the curve can dip below its baseline before it rises",
        ),
        (
            _crossing(s, p, t, last=True),
            "that is the last crossing: perplexity can rise above 2 x baseline, fall back below and "
            "cross again; the answer is the smallest strength, the first crossing",
        ),
        (
            _crossing(s, p, t, interpolate=False),
            "that is a sweep point (the first at or above 2 x baseline): interpolate linearly between "
            "it and the point before it, where perplexity was still below the threshold",
        ),
        (
            _crossing(s, p, t, last=True, interpolate=False),
            "that is a sweep point of the last crossing: take the first crossing, and interpolate "
            "between the two sweep points around it",
        ),
        (
            prev,
            "that is the last sweep point below 2 x baseline: interpolate linearly between it and "
            "the next point, where perplexity reaches the threshold",
        ),
        (
            _crossing(s, p, t, strict=True),
            "a point at exactly 2 x baseline reaches the threshold: compare with >=, not >",
        ),
        (
            _crossing(s, p, t, flip=True),
            "the interpolation runs from the wrong end: the fraction (2·p0 − p[k−1]) / (p[k] − p[k−1]) "
            "is measured from strength[k−1], the point below the threshold",
        ),
        (
            float(np.interp(t, p, s)),
            "np.interp(threshold, perplexity, strengths) assumes perplexity increases along the "
            "sweep; it need not: find the first crossing yourself, then interpolate between its "
            "two points",
        ),
        (
            _crossing(s, p, p[0] ** 2),
            "double the perplexity, not its log (the NLL): the threshold is 2 x perplexity[0], "
            "not perplexity[0] squared",
        ),
        (
            _crossing(s, p, 2 * p[1]),
            "the threshold is relative to the wrong point: twice the perplexity at strength 0 "
            "(perplexity[0]), not at the first clamped strength",
        ),
        (
            float(s[rel_prev[0]]) if rel_prev else float("inf"),
            "compare every point with the baseline at strength 0, not with the point before it",
        ),
        (
            _crossing(s, p, 2 * float(np.mean(p))),
            "the threshold is twice the perplexity at strength 0 (perplexity[0]), not twice the mean",
        ),
    ]
    return first_match(got, variants) or GENERIC


DOUBLING = Exercise(
    name="doubling_strength",
    references=("helpers.analysis.steering.doubling_strength",),
    public=_public_cases,
    hidden=lambda rng: [_doubling_case(rng, k) for k in (0, 1, 2, 3, int(rng.integers(0, 4)))],
    answer=_doubling_answer,
    solve=_doubling_solve,
    judge=_doubling_judge,
    done="the first crossing of 2 x baseline, interpolated",
)

EXERCISES = (DOUBLING,)
check_doubling_strength = make_check(DOUBLING)
