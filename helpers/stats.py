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


def mean_interval(values: np.ndarray, **kw: float) -> Interval:
    """Bootstrap interval of the mean of ``values`` (one per unit)."""
    v = np.asarray(values, dtype=np.float64)
    return bootstrap(lambda i: float(v[i].mean()), len(v), **kw)
