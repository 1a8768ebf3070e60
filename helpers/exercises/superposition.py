"""Graded check of Notebook 03's toy model of superposition: the importance-weighted loss."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from helpers.exercises.common import CheckFailed, call, close, passed
from helpers.sae import superposition

# expected answers on the fixed cases below (helpers.sae.superposition.toy_loss's; a unit test keeps
# them equal)
TOY_LOSSES = (0.1997206209400318, 0.07622832891858676)
BATCH, N_FEATURES = 7, 5


def _toy_case(seed: int):
    """A batch of 7 rows of 5 sparse features in [0, 1], a noisy reconstruction and importances: decaying
    (0.8**i) in case 0, unordered in case 1. float64 torch tensors."""
    import torch

    rng = np.random.default_rng(seed)
    x = rng.random((BATCH, N_FEATURES)) * (rng.random((BATCH, N_FEATURES)) >= 0.5)
    x_hat = np.maximum(x + 0.3 * rng.normal(size=(BATCH, N_FEATURES)), 0.0)
    imp = 0.8 ** np.arange(N_FEATURES) if seed == 0 else rng.uniform(0.2, 1.0, N_FEATURES)
    return tuple(torch.as_tensor(a, dtype=torch.float64) for a in (x, x_hat, imp))


def _as_number(got) -> float:
    """The student's answer as one float, or a CheckFailed naming what came back instead."""
    if hasattr(got, "detach"):
        got = got.detach().cpu().numpy()
    try:
        arr = np.asarray(got, dtype=np.float64)
    except (TypeError, ValueError):
        raise CheckFailed(
            f"toy_loss returned {type(got).__name__}; return one number (a 0-d tensor)"
        ) from None
    if arr.size == BATCH:
        raise CheckFailed(
            "toy_loss returned one loss per row; average them over the batch (.mean()) to return one number"
        )
    if arr.size == N_FEATURES:
        raise CheckFailed("toy_loss returned one value per feature; sum over the features of each row too")
    if arr.size != 1:
        raise CheckFailed(f"toy_loss returned an array of shape {arr.shape}; return one number")
    return float(arr.reshape(()))


def check_toy_loss(fn: Callable) -> None:
    """Exercise: mean over the batch of Σ_i I_i (x_i - x̂_i)²."""
    for seed, want in zip((0, 1), TOY_LOSSES, strict=True):
        x, x_hat, imp = _toy_case(seed)
        got = _as_number(call(fn, x.clone(), x_hat.clone(), imp.clone(), forbidden=[superposition.toy_loss]))
        if close(got, want):
            continue
        sq = (x - x_hat) ** 2
        hints = [
            (
                sq.sum(-1).mean(),
                "forgot the importance weights: multiply each feature's squared error by its I_i",
            ),
            (
                (sq * imp).mean(),
                "mean vs sum: sum the weighted squared errors over the features, then average over the batch "
                "(.sum(-1).mean())",
            ),
            (
                (sq * imp).sum(),
                "mean vs sum: average over the rows of the batch, do not sum them",
            ),
            (
                (sq * imp).mean(-1).sum(),
                "sum and mean swapped: sum over the features (last axis), average over the rows (first axis)",
            ),
            (
                (sq * imp**2).sum(-1).mean(),
                "the importance is squared: weight the squared error by I_i, not by I_i² (do not put I_i "
                "inside the square)",
            ),
            (
                (sq * imp / imp.sum()).sum(-1).mean(),
                "do not normalise the importances: use I_i as given, not I_i / Σ I",
            ),
            (
                ((x - x_hat).abs() * imp).sum(-1).mean(),
                "square the error: I_i (x_i - x̂_i)², not I_i |x_i - x̂_i|",
            ),
        ]
        for value, hint in hints:
            if close(got, float(value)):
                raise CheckFailed(hint)
        raise CheckFailed(
            f"toy_loss gave {got:.4f}, expected {want:.4f} on a synthetic batch; compute I_i (x_i - x̂_i)², "
            "sum it over the features of each row, then average over the rows"
        )
    passed("toy_loss", "matches the expected values on 2 synthetic cases")
