"""Figures and dashboards of notebook 04's comparison of residual dimensions, MLP neurons and SAE
features: the distribution of their token-list detection AUROC against random labels, and one dashboard
of each kind side by side (the SAE feature dashboard of :mod:`helpers.viz.dashboard`, fed a unit's
firings and direction)."""

from __future__ import annotations

import html

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from helpers.analysis.neurons import Units
from helpers.viz.dashboard import dashboard_html


def plot_unit_scores(
    scores: dict[str, pd.DataFrame], column: str = "token_auroc", min_eval_fires: int = 1
) -> plt.Figure:
    """One panel per kind of unit: the histogram of ``column`` with the unit's own label and with
    a random label of the same kind, the means marked (units firing at least ``min_eval_fires``
    times on the held-out rows)."""
    width = min(9.0, 3.0 * len(scores))  # at most ~990 px at 110 dpi, the width it is shown at
    fig, axes = plt.subplots(1, len(scores), figsize=(width, 3.2), sharex=True, sharey=True)
    axes = np.atleast_1d(axes)
    bins = np.linspace(0.3, 1.0, 36)
    for ax, (kind, df) in zip(axes, scores.items(), strict=True):
        d = df[df["eval_fires"] >= min_eval_fires].dropna(subset=[column, column + "_random"])
        for col, name, color in ((column, "own label", "C0"), (column + "_random", "random label", "C1")):
            v = d[col].to_numpy()
            w = np.full(len(v), 1.0 / max(len(v), 1))  # share of units, so kinds of any size compare
            ax.hist(v, bins=bins, weights=w, alpha=0.55, color=color, label=f"{name} (mean {v.mean():.3f})")
            ax.axvline(v.mean(), color=color, lw=1.5)
        ax.axvline(0.5, color="grey", ls=":")
        ax.set_title(f"{kind} ({len(d):,} scored)", fontsize=9)
        ax.set_xlabel("detection AUROC (held-out)", fontsize=9)
        ax.tick_params(labelsize=8)
        ax.legend(fontsize=8)
    axes[0].set_ylabel("share of units")
    fig.suptitle("Does a unit's automatic label predict where it fires?", fontsize=11)
    fig.tight_layout()
    return fig


def unit_dashboard_html(
    units: Units,
    i: int,
    store,
    docs: pd.DataFrame,
    tokenizer,
    W_U,
    theme_of_row,
    themes,
    label: str | None = None,
    n_top: int = 6,
    bounds=None,
) -> str:
    """The feature dashboard of unit ``i`` of ``units``: where it fires, its logit weights (through
    its direction), its theme mix, titled by its kind and how it fires."""
    i = units.feature_id(i)
    title = units.describe(i) + (f" — {label}" if label else "")
    out = dashboard_html(
        i, units.index, store, docs, tokenizer, units, W_U, theme_of_row, themes, n_top=n_top, bounds=bounds
    )
    head = "<h4 style='margin:4px 0'>Feature " + str(i) + "</h4>"
    return out.replace(head, f"<h4 style='margin:4px 0'>{html.escape(title)}</h4>", 1)


def side_by_side(panels: list[str], min_width: int = 520) -> str:
    """HTML panels in a row that wraps: each at least ``min_width`` px (never wider than the output
    area), so a ~990 px output area stacks them one under the other instead of scrolling sideways."""
    cells = "".join(
        f"<div style='flex:1 1 {min_width}px;min-width:min({min_width}px,100%);max-width:100%'>{p}</div>"
        for p in panels
    )
    return f"<div style='display:flex;flex-wrap:wrap;gap:8px;max-width:100%'>{cells}</div>"
