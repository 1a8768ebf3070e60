"""Graded checks of Notebook 01 (layer scan)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from helpers.data import layer_scan
from helpers.exercises.common import CheckFailed, call, close, passed

# expected answers on the fixed cases below (helpers.data.layer_scan's; a unit test keeps them equal)
SINK_RATIOS = (7.909136462565234, 6.205475771118766, 7.874325779137932)
PARTICIPATION_RATIOS = (2.2045016700446167, 2.6545582527959297, 1.0001476199847854)


def _sink_case(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Tokens of 3 documents; the first token of each is 8x larger, as in a real model."""
    rng = np.random.default_rng(seed)
    lengths = [4, 6, 5]
    positions = np.concatenate([np.arange(n) for n in lengths])
    x = rng.normal(size=(len(positions), 16))
    x[positions == 0] *= 8.0
    return x, positions


def check_sink_ratio(fn: Callable[[np.ndarray, np.ndarray], float]) -> None:
    """Exercise: mean norm of first tokens / mean norm of the other tokens."""
    for seed, want in zip((0, 1, 2), SINK_RATIOS, strict=True):
        x, pos = _sink_case(seed)
        got = call(fn, x, pos, forbidden=[layer_scan.sink_ratio])
        if close(got, want):
            continue
        norms = np.linalg.norm(x, axis=1)
        first = pos == 0
        hints = [
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
                "that is a ratio of squared norms; take the square root per token (np.linalg.norm(x, "
                "axis=-1))",
            ),
            (
                np.linalg.norm(x[first], axis=0).mean() / np.linalg.norm(x[~first], axis=0).mean(),
                "the norm was taken over tokens (axis 0); take it over dimensions (axis=-1), one norm per "
                "token",
            ),
            (
                np.abs(x[first]).mean() / np.abs(x[~first]).mean(),
                "mean |value| is not a norm; take each token's L2 norm first",
            ),
        ]
        for value, hint in hints:
            if close(got, value):
                raise CheckFailed(hint)
        raise CheckFailed(
            f"sink_ratio gave {float(np.asarray(got, dtype=float)):.4f}, expected {want:.4f} on a synthetic "
            f"case; compute each token's L2 norm, then mean over position 0 / mean over the rest"
        )
    passed("sink_ratio", "matches the expected values on 3 synthetic cases")


def _participation_cases() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    scales = np.array([5.0, 3.0, 2.0, 1.0, 0.5, 0.5, 0.2, 0.1])
    return [
        rng.normal(size=(200, 8)) * scales + 4.0,  # offset: catches a forgotten centring
        rng.normal(size=(50, 8)) @ rng.normal(size=(8, 8)) - 2.0,
        np.repeat(rng.normal(size=(40, 1)), 6, axis=1) + 0.01 * rng.normal(size=(40, 6)) + 1.0,
    ]


def check_participation_ratio(fn: Callable[[np.ndarray], float]) -> None:
    """Exercise: (sum of covariance eigenvalues)^2 / sum of squared eigenvalues."""
    for x, want in zip(_participation_cases(), PARTICIPATION_RATIOS, strict=True):
        got = call(fn, x, forbidden=[layer_scan.participation_ratio])
        if close(got, want, rtol=1e-3):
            continue
        xc = x - x.mean(0)
        lam = np.linalg.eigvalsh(xc.T @ xc / (len(x) - 1))
        raw = np.linalg.eigvalsh(x.T @ x / len(x))
        sv = np.linalg.svd(xc, compute_uv=False)
        hints = [
            (
                raw.sum() ** 2 / (raw**2).sum(),
                "centre the data first (x - x.mean(0)): without it the mean direction dominates the spectrum",
            ),
            (1.0 / want, "the ratio is upside down: (sum λ)² / sum λ², which lies between 1 and d"),
            (
                sv.sum() ** 2 / (sv**2).sum(),
                "those are singular values of the data; the covariance eigenvalues are their squares / (n - "
                "1)",
            ),
            (lam.sum() / (lam**2).sum(), "square the sum in the numerator: (sum λ)², not sum λ"),
            (
                np.sum(lam) ** 2 / np.sum(lam) ** 2,
                "the denominator is the sum of squared eigenvalues, not the squared sum",
            ),
        ]
        for value, hint in hints:
            if close(got, value, rtol=1e-3):
                raise CheckFailed(hint)
        raise CheckFailed(
            f"participation_ratio gave {float(np.asarray(got, dtype=float)):.4f}, expected {want:.4f}; "
            f"centre x, take the covariance's eigenvalues λ, return (sum λ)² / sum λ²"
        )
    passed("participation_ratio", "matches the expected values on 3 synthetic cases, centred and scale-free")
