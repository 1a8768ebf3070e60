"""Find the L1 coefficient λ that gives an L1 SAE a target sparsity (L0), so that it can be compared
with a TopK SAE at the same L0.

L0 falls roughly as a power of λ (a straight line on log-log axes), so the search is a secant on
log λ against log L0: the first guess assumes L0 ∝ 1/λ from the run already trained, each later guess
goes through the last two runs. Every probe is a full training run, so a search costs ``tries`` runs.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from helpers.validate import as_count, as_finite


@dataclass(frozen=True)
class Probe:
    lam: float
    l0: float


def _log(l0: float) -> float:
    return math.log(max(l0, 0.01))  # an L0 of 0 (λ far too high) still gives a finite step


def next_lambda(probes: list[Probe], target: float) -> float:
    """The next λ to try for ``target`` L0 after ``probes`` (at least one)."""
    if not probes:
        raise ValueError("next_lambda needs at least one trained run (λ, L0) to start from")
    target = as_finite(target, "the target L0", 0, open_lo=True)
    last = probes[-1]
    slope = -1.0  # L0 ∝ 1/λ until two runs give a measured slope
    if len(probes) >= 2:
        prev = probes[-2]
        dx, dy = math.log(last.lam) - math.log(prev.lam), _log(last.l0) - _log(prev.l0)
        if dx != 0 and dy / dx < 0:  # a usable (falling) slope; otherwise keep the 1/λ guess
            slope = dy / dx
    return math.exp(math.log(last.lam) + (math.log(target) - _log(last.l0)) / slope)


def search_lambda(
    l0_at: Callable[[float], float], start: Probe, target: float, tries: int = 2, rel_tol: float = 0.1
) -> list[Probe]:
    """Runs ``l0_at(λ)`` (train an L1 SAE, return its L0) at up to ``tries`` values of λ, starting from
    the run ``start``, and stops once an L0 lies within ``rel_tol`` of ``target``. Returns every probe,
    ``start`` first; :func:`closest` picks the one to use."""
    tries, rel_tol = as_count(tries, "tries"), as_finite(rel_tol, "rel_tol", 0)
    target = as_finite(target, "the target L0", 0, open_lo=True)
    probes = [start]
    for _ in range(tries):
        if abs(probes[-1].l0 / target - 1) <= rel_tol:
            break
        lam = next_lambda(probes, target)
        probes.append(Probe(lam, as_finite(l0_at(lam), f"the L0 of the run at λ = {lam:g}", 0)))
    return probes


def closest(probes: list[Probe], target: float) -> Probe:
    """The probe whose L0 is nearest ``target`` on a log scale."""
    return min(probes, key=lambda p: abs(_log(p.l0) - math.log(target)))
