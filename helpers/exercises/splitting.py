"""Graded check of notebook 04's feature-splitting section: each small decoder row's best match."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from helpers.exercises.common import CheckFailed, call, close, passed

# expected answers on the fixed cases below (helpers.analysis.splitting.best_match's; a unit test keeps
# them equal): per case, the best row of W_large for each row of W_small and its cosine
BEST_MATCH = (
    (
        (3, 9, 6, 1, 8),
        (0.9060491880319468, 0.6886434592791495, 0.7733129719799389, 0.8684203949083396, 0.732421553953467),
    ),
    ((5, 2, 2), (0.704513137012044, 0.8286318508134513, 0.5836622109915983)),
)


def _unit(W: np.ndarray) -> np.ndarray:
    return W / np.linalg.norm(W, axis=1, keepdims=True)


def _cases() -> list[tuple[np.ndarray, np.ndarray]]:
    """Two synthetic decoder pairs. In the first, small row 0's best match (row 3) is short while a
    long, weaker row (7) wins the plain dot product, and row 5 points almost opposite small row 1."""
    rng = np.random.default_rng(17)
    d = 8
    small = rng.normal(size=(5, d)) * np.array([[0.5], [2.0], [1.0], [3.0], [0.8]])
    large = rng.normal(size=(12, d)) * rng.uniform(0.5, 2.0, size=(12, 1))
    u0, u1 = _unit(small[:2])
    large[3] = 0.2 * _unit((u0 + 0.25 * rng.normal(size=d))[None])[0]
    large[7] = 6.0 * _unit((u0 + 1.0 * rng.normal(size=d))[None])[0]
    large[5] = -1.0 * _unit((u1 + 0.1 * rng.normal(size=d))[None])[0]
    large[9] = 1.0 * _unit((u1 + 0.4 * rng.normal(size=d))[None])[0]
    rng = np.random.default_rng(11)
    second = (
        rng.normal(size=(3, 4)) * np.array([[1.0], [0.3], [4.0]]),
        rng.normal(size=(7, 4)) * rng.uniform(0.2, 3.0, size=(7, 1)),
    )
    return [(small, large), second]


def _as_pair(got) -> tuple[np.ndarray, np.ndarray]:
    try:
        idx, cos = got
        return np.asarray(idx).reshape(-1), np.asarray(cos, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError) as err:
        raise CheckFailed("return two arrays: (indices, cosines), one entry each per row of W_small") from err


def _hint(A: np.ndarray, B: np.ndarray, idx: np.ndarray, cos: np.ndarray) -> str | None:
    """The likely mistake behind a wrong answer, found by computing each wrong variant."""
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
    if same(idx, dot.argmax(1)) and close(cos, dot.max(1)):
        return (
            "that is the plain dot product, not the cosine: long decoder rows win; divide by both rows' "
            "lengths (normalise every row to length 1 first)"
        )
    if same(idx, dot.argmax(1)) and close(cos, (_unit(A) @ B.T).max(1)):
        return "forgot to normalise the rows of W_large: long rows win; scale every row of both to length 1"
    if same(idx, right.argmax(1)) and close(cos, (A @ _unit(B).T).max(1)):
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
    return None


def check_best_match(fn: Callable) -> None:
    """Exercise: for each row of W_small, the row of W_large with the largest cosine, and that cosine."""
    from helpers.analysis import splitting

    forbidden = [splitting.best_match, splitting.best_matches, splitting.unit_rows]
    for (A, B), (want_idx, want_cos) in zip(_cases(), BEST_MATCH, strict=True):
        got = call(fn, A.copy(), B.copy(), forbidden=forbidden)
        idx, cos = _as_pair(got)
        if len(idx) == len(want_idx) and np.array_equal(idx, want_idx) and close(cos, want_cos):
            continue
        hint = _hint(A, B, idx, cos)
        raise CheckFailed(
            hint
            or f"expected indices {list(want_idx)} and cosines {np.round(want_cos, 3).tolist()}, got "
            f"{idx.tolist()} and {np.round(cos, 3).tolist()}: cosine = dot product of rows scaled to length 1"
        )
    passed("best_match", "best signed cosine per small row on 2 synthetic cases")
