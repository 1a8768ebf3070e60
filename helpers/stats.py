"""Uncertainty: bootstrap confidence intervals over independent units (texts, prompts).

A comparison of two methods states its sample size and an interval; "A beats B" only when the
interval of the difference excludes 0. Resampling is over the units that are independent (whole
texts), never over tokens of one text."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Interval:
    value: float  # the statistic on the full sample
    low: float
    high: float
    n: int  # units resampled
    level: float = 0.95

    def excludes(self, x: float) -> bool:
        return not self.low <= x <= self.high

    def __str__(self) -> str:
        return f"{self.value:.3f} [{self.low:.3f}, {self.high:.3f}]"


def bootstrap(
    stat: Callable[[np.ndarray], float], n: int, n_boot: int = 2000, level: float = 0.95, seed: int = 0
) -> Interval:
    """Percentile bootstrap of ``stat(indices)`` over ``n`` units: ``stat`` gets an index array
    (with repeats) into the units and returns a number; ``stat(arange(n))`` is the point value."""
    if n < 2:
        raise ValueError(f"a bootstrap needs at least 2 units, got {n}")
    if not 0 < level < 1:
        raise ValueError(f"level must lie in (0, 1), got {level}")
    rng = np.random.default_rng(seed)
    draws = np.array([stat(rng.integers(0, n, n)) for _ in range(n_boot)], dtype=np.float64)
    draws = draws[np.isfinite(draws)]
    a = (1 - level) / 2
    lo, hi = np.quantile(draws, [a, 1 - a]) if len(draws) else (np.nan, np.nan)
    return Interval(value=float(stat(np.arange(n))), low=float(lo), high=float(hi), n=n, level=level)


def group_bootstrap(
    stat: Callable[[np.ndarray], float],
    groups: np.ndarray,
    n_boot: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> Interval:
    """:func:`bootstrap` that resamples whole ``groups`` (one label per unit, e.g. each text's prompt: the
    samples of one prompt are not independent): ``stat`` still gets unit indices, those of the drawn groups;
    the interval's ``n`` is the number of groups."""
    g = np.asarray(groups)
    if g.ndim != 1 or len(g) == 0:
        raise ValueError(f"groups must be a non-empty 1-D array with one label per unit, got shape {g.shape}")
    _, inv = np.unique(g, return_inverse=True)
    order = np.argsort(inv, kind="stable")
    members = np.split(order, np.cumsum(np.bincount(inv))[:-1])
    return bootstrap(
        lambda gi: stat(np.concatenate([members[j] for j in gi])), len(members), n_boot, level, seed
    )


def mean_interval(values: np.ndarray, **kw: float) -> Interval:
    """Bootstrap interval of the mean of ``values`` (one per unit)."""
    v = np.asarray(values, dtype=np.float64)
    return bootstrap(lambda i: float(v[i].mean()), len(v), **kw)


def grouped_interval(
    values: np.ndarray, groups: np.ndarray, transform: Callable[[float], float] | None = None, **kw: float
) -> Interval:
    """Bootstrap interval of the mean of ``values`` (NaN ignored), resampling whole ``groups`` (e.g. a
    prompt's several samples, which are not independent of each other); ``transform`` is applied to the
    mean (``np.exp`` turns a mean log-loss into a perplexity)."""
    v = np.asarray(values, dtype=np.float64)
    g = np.asarray(groups)
    if v.shape != g.shape or v.ndim != 1:
        raise ValueError(f"values and groups must be 1-D and of one length, got {v.shape} and {g.shape}")
    _, inv = np.unique(g, return_inverse=True)
    ok = np.isfinite(v)
    sums = np.bincount(inv, weights=np.where(ok, v, 0.0))
    counts = np.bincount(inv, weights=ok.astype(np.float64))
    f = transform or float

    def stat(idx: np.ndarray) -> float:
        c = counts[idx].sum()
        return float(f(sums[idx].sum() / c)) if c else float("nan")

    return bootstrap(stat, len(sums), **kw)
