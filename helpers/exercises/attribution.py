"""Graded check of Notebook 06's attribution exercise: activation × gradient, summed over positions.

The inputs are fixed small matrices of binary fractions (exact in float32), the expected answers
are stored below as constants; wrong answers are recognised by computing the usual mistakes on the
same inputs."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from helpers.exercises.common import CheckFailed, call, close, passed

# case 1: T = 4 positions, 7 features (one never active); case 2: T = 3, 5 features
F1 = [
    [2.0, 0.0, 1.5, 0.0, 0.0, 0.5, 0.0],
    [0.0, 3.0, 1.0, 0.0, 0.0, 0.0, 0.75],
    [1.0, 0.0, 0.0, 0.0, 2.5, 0.0, 0.0],
    [0.5, 0.0, 2.0, 0.0, 0.0, 1.0, 1.25],
]
G1 = [
    [0.5, -1.0, 0.25, 2.0, -0.5, 1.0, 0.5],
    [-1.5, 0.5, -0.75, 1.0, 0.25, -2.0, -1.0],
    [1.0, 2.0, 0.5, -1.0, -0.25, 0.5, 0.25],
    [0.25, -0.5, -1.25, 0.5, 1.5, -1.0, 0.75],
]
F2 = [
    [0.0, 1.5, 0.0, 2.0, 0.0],
    [3.0, 0.0, 0.5, 1.0, 0.0],
    [0.5, 2.0, 0.0, 0.0, 1.0],
]
G2 = [
    [1.0, -0.5, 2.0, 0.25, -1.0],
    [-0.25, 1.0, -2.0, -0.5, 0.5],
    [2.0, 0.75, 1.0, -1.5, -0.5],
]
CASES = ((F1, G1), (F2, G2))
# Σ_t f[t, i] · grad[t, i] for each case
EXPECTED = (
    [2.125, 1.5, -2.875, 0.0, -0.625, -0.5, 0.1875],
    [0.25, 0.75, -1.0, 0.0, -0.5],
)


def _as_array(got) -> np.ndarray | None:
    try:
        if hasattr(got, "detach"):
            got = got.detach().cpu().numpy()
        return np.asarray(got, dtype=np.float64)
    except (TypeError, ValueError):
        return None


def _hints(f: np.ndarray, g: np.ndarray) -> list[tuple[np.ndarray, str]]:
    fg = f * g
    return [
        (g.sum(0), "that is the gradient alone; multiply it by the activation f (activation × gradient)"),
        (f.sum(0), "that is the activation alone; multiply it by the gradient ∂m/∂f"),
        (
            -fg.sum(0),
            "the sign is flipped: the attribution is +Σ f·grad, the estimated drop of the metric when the "
            "feature is removed",
        ),
        (
            np.abs(fg).sum(0),
            "no absolute values: a feature active at two positions can push the metric up at one and "
            "down at the other, and those cancel",
        ),
        (np.abs(fg.sum(0)), "keep the sign: a feature that lowers the metric has a negative attribution"),
        (fg.mean(0), "sum over positions, do not average: removing the feature removes it at every position"),
        (fg[-1], "sum over every position, not only the last one: earlier positions feed the prediction too"),
        (fg[1:].sum(0), "a position is missing: sum over all positions (dim 0), including the first"),
        (fg[:-1].sum(0), "a position is missing: sum over all positions (dim 0), including the last"),
        (fg.sum(1), "that sums over features (one number per position); sum over positions: dim 0"),
    ]


def check_attribute(fn: Callable) -> None:
    """Exercise: ``attribute(f, grad)`` for ``f``, ``grad`` [T, d_sae] -> [d_sae], Σ_t f · grad."""
    import torch

    from helpers.analysis.attribution import attribute

    for (f_list, g_list), want in zip(CASES, EXPECTED, strict=True):
        f = torch.tensor(f_list, dtype=torch.float32)
        g = torch.tensor(g_list, dtype=torch.float32)
        got = _as_array(call(fn, f.clone(), g.clone(), forbidden=[attribute]))
        want = np.asarray(want)
        if got is not None and got.shape == want.shape and close(got, want):
            continue
        if got is not None:
            for value, hint in _hints(np.asarray(f_list), np.asarray(g_list)):
                if got.shape == value.shape and close(got, value):
                    raise CheckFailed(hint)
        shape = None if got is None else tuple(got.shape)
        if shape != want.shape:
            raise CheckFailed(
                f"expected one number per feature, shape {want.shape}, got "
                f"{'no array' if got is None else shape}: multiply f and grad elementwise, then .sum(0)"
            )
        raise CheckFailed(
            f"attribute gave {np.round(got, 4).tolist()} on a {f.shape[0]}x{f.shape[1]} case, expected "
            f"{want.tolist()}; compute (f * grad).sum(0)"
        )
    passed("attribute", "activation × gradient summed over positions, on 2 cases")
