"""Graded exercise of notebook 04's feature-splitting section: each small decoder row's best match."""

from __future__ import annotations

import numpy as np

from helpers.analysis import splitting
from helpers.exercises.common import Case, CheckFailed, Exercise, arrays, make_check

_FORMAT = "return two arrays: (indices, cosines), one entry each per row of W_small"


def _unit(W: np.ndarray) -> np.ndarray:
    return W / np.linalg.norm(W, axis=1, keepdims=True)


def _match_case(rng: np.random.Generator) -> Case:
    """Two decoder matrices with rows of very different lengths. Small row 0's best match is a short row
    while a long, less similar row wins the plain dot product; a row points almost opposite small row 1
    (|cosine| would pick it). Every small row's best cosine beats its second by 0.05 at least, so float32
    and float64 answers pick the same rows."""
    while True:
        d = int(rng.integers(4, 13))
        n_small = int(rng.integers(3, 8))
        n_large = n_small + int(rng.integers(2, 9))
        small = rng.normal(size=(n_small, d)) * rng.uniform(0.3, 4.0, size=(n_small, 1))
        large = rng.normal(size=(n_large, d)) * rng.uniform(0.3, 3.0, size=(n_large, 1))
        u0, u1 = _unit(small[:2])
        short, long, opposite, near = rng.choice(n_large, 4, replace=False)
        large[short] = 0.2 * _unit((u0 + 0.25 * rng.normal(size=d))[None])[0]
        large[long] = 6.0 * _unit((u0 + 1.0 * rng.normal(size=d))[None])[0]
        large[opposite] = -1.0 * _unit((u1 + 0.1 * rng.normal(size=d))[None])[0]
        large[near] = 1.0 * _unit((u1 + 0.4 * rng.normal(size=d))[None])[0]
        cos = _unit(small) @ _unit(large).T
        top2 = np.sort(cos, axis=1)[:, -2:]
        dot = small @ large.T
        if (
            (top2[:, 1] - top2[:, 0]).min() > 0.05
            and cos[0].argmax() == short
            and dot[0].argmax() == long
            and np.abs(cos[1]).argmax() == opposite != cos[1].argmax()
        ):
            return arrays(W_small=small, W_large=large)


def _match_answer(args: tuple, case: Case) -> Case:
    got = args[0](case["W_small"].copy(), case["W_large"].copy())
    try:
        idx, cos = got
        return arrays(idx=idx, cos=cos)
    except (TypeError, ValueError, CheckFailed) as err:
        raise CheckFailed(_FORMAT) from err


def _match_solve(case: Case) -> Case:
    idx, cos = splitting.best_match(case["W_small"], case["W_large"])
    return arrays(idx=idx.astype(np.int64), cos=cos.astype(np.float64))


def _pair(out: Case) -> tuple[np.ndarray, np.ndarray] | None:
    try:
        idx = np.asarray(out["idx"]).reshape(-1)
        cos = np.asarray(out["cos"], dtype=np.float64).reshape(-1)
        if idx.dtype.kind not in "iuf" or len(idx) != len(cos):
            return None
        return idx, cos
    except (KeyError, TypeError, ValueError):
        return None


def _near(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and bool(np.allclose(a, b, rtol=1e-4, atol=1e-5))


def _match_judge(case: Case, out: Case) -> str | None:
    A, B = case["W_small"], case["W_large"]
    got = _pair(out)
    if got is None:
        return _FORMAT
    idx, cos = got
    want = _match_solve(case)
    if np.array_equal(idx, want["idx"]) and _near(cos, want["cos"]):
        return None
    right = _unit(A) @ _unit(B).T
    dot = A @ B.T
    if len(idx) == len(B) != len(A) and np.array_equal(idx, right.argmax(0)):
        return (
            "argmax over the wrong axis: that is the best small row for each large row; take the best "
            "large row for each small row (axis=1 of the [n_small, n_large] cosine matrix)"
        )
    if len(idx) != len(A):
        return f"return one index and one cosine per row of W_small ({len(A)}), not {len(idx)}"
    same = np.array_equal
    if same(idx, dot.argmax(1)) and _near(cos, dot.max(1)):
        return (
            "that is the plain dot product, not the cosine: long decoder rows win; divide by both rows' "
            "lengths (normalise every row to length 1 first)"
        )
    if same(idx, dot.argmax(1)) and _near(cos, (_unit(A) @ B.T).max(1)):
        return "forgot to normalise the rows of W_large: long rows win; scale every row of both to length 1"
    if same(idx, right.argmax(1)) and _near(cos, (A @ _unit(B).T).max(1)):
        return (
            "forgot to normalise the rows of W_small: the right rows, but each cosine is scaled by the "
            "small row's length"
        )
    col = (A / np.linalg.norm(A, axis=0)) @ (B / np.linalg.norm(B, axis=0)).T
    if same(idx, col.argmax(1)) and not same(idx, right.argmax(1)):
        return (
            "normalised the columns (axis=0); normalise each row, one decoder direction, to length 1 (axis=1)"
        )
    if same(idx, np.abs(right).argmax(1)) and not same(idx, right.argmax(1)):
        return (
            "took |cosine|: a row pointing the opposite way (cos near -1) writes the opposite direction, "
            "a different feature; compare the signed cosines"
        )
    if same(idx, right.argmin(1)):
        return "that is the least similar row (argmin); take the largest cosine (argmax)"
    if same(idx, right.argmax(1)):
        return "the right rows but not their cosines: return each small row's largest cosine (the max)"
    return (
        "best_match is wrong on a case: scale every row of both matrices to length 1, take the "
        "[n_small, n_large] matrix of their dot products (the cosines), and for each small row its argmax "
        "and max over the large rows"
    )


BEST_MATCH = Exercise(
    name="best_match",
    references=(
        "helpers.analysis.splitting.best_match",
        "helpers.analysis.splitting.best_matches",
        "helpers.analysis.splitting.unit_rows",
        "helpers.sae.superposition.match_features",
    ),
    public=lambda: [_match_case(np.random.default_rng(s)) for s in (0, 1, 2)],
    hidden=lambda rng: [_match_case(rng) for _ in range(4)],
    answer=_match_answer,
    solve=_match_solve,
    judge=_match_judge,
    done="best signed cosine per small row on every public case",
)

EXERCISES = (BEST_MATCH,)
check_best_match = make_check(BEST_MATCH)
