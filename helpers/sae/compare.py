"""Comparing two SAE recipes on equal terms (notebook 03 §7): each recipe's learning rate chosen from a grid
by held-out FVU, several training seeds at the chosen rate, and a verdict that names a winner only where
every seed of one recipe beats every seed of the other (with 3 seeds an interval over seeds would be too
wide to mean much; the full range is shown instead)."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from helpers.config import SAEConfig
from helpers.sae.metrics import sae_metrics
from helpers.sae.model import BaseSAE
from helpers.sae.train import train_or_load


@dataclass(frozen=True)
class SeedSpread:
    """One number per training seed (held-out FVU, say)."""

    values: tuple[float, ...]

    def __post_init__(self) -> None:
        if len(self.values) == 0:
            raise ValueError("a seed spread needs at least one seed's value")

    @property
    def mean(self) -> float:
        return float(np.mean(self.values))

    @property
    def sd(self) -> float:
        return float(np.std(self.values, ddof=1)) if len(self.values) > 1 else float("nan")

    @property
    def low(self) -> float:
        return float(min(self.values))

    @property
    def high(self) -> float:
        return float(max(self.values))

    def __str__(self) -> str:
        sd = f" ± {self.sd:.3f}" if len(self.values) > 1 else ""
        return f"{self.mean:.3f}{sd} (range {self.low:.3f}-{self.high:.3f}, {len(self.values)} seeds)"


def run_table(
    cfg: SAEConfig,
    values: dict[str, list],
    X: np.ndarray,
    data_key: str,
    folder,
    x_eval: np.ndarray,
) -> tuple[pd.DataFrame, list[BaseSAE]]:
    """Train (or reuse) ``cfg`` once per setting in ``values`` (one field -> its values, e.g.
    ``{"lr": [1e-3, 3e-3]}`` or ``{"seed": [0, 1, 2]}``) on ``X``; one row per run with its held-out
    L0, FVU and dead fraction on ``x_eval``."""
    (field, options), *rest = values.items()
    if rest:
        raise ValueError("run_table varies one field at a time")
    if len(options) == 0:
        raise ValueError(f"no values of {field} to train")
    rows, saes = [], []
    for v in options:
        run = replace(cfg, **{field: v})
        sae, _, _ = train_or_load(run, X, data_key, folder, progress=False)
        m = sae_metrics(sae, x_eval)
        rows.append({field: v, "l0": m["l0"], "fvu": m["fvu"], "dead": m["dead_fraction"]})
        saes.append(sae)
    return pd.DataFrame(rows).set_index(field), saes


def best_by_fvu(table: pd.DataFrame) -> object:
    """The index value (learning rate, say) of the row with the lowest held-out FVU."""
    if table.empty or not np.isfinite(table["fvu"]).any():
        raise ValueError("no run with a finite held-out FVU to choose from")
    return table["fvu"].idxmin()


def choose(a: SeedSpread, b: SeedSpread, names: tuple[str, str], default: str) -> tuple[str, str]:
    """Which recipe to keep by a lower-is-better number over seeds: the one whose worst seed beats the
    other's best seed; where the ranges overlap there is no winner and ``default`` is kept. Returns
    ``(kept, reason)``."""
    if default not in names:
        raise ValueError(f"default must be one of {names}, got {default!r}")
    if a.high < b.low:
        return names[0], f"{names[0]} is lower in every seed ({a.high:.3f} at worst vs {b.low:.3f} at best)"
    if b.high < a.low:
        return names[1], f"{names[1]} is lower in every seed ({b.high:.3f} at worst vs {a.low:.3f} at best)"
    return default, f"the seeds' ranges overlap: no winner, so {default} is kept"
