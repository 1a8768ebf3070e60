"""Notebook 01's figures: every per-layer statistic against depth, and one layer up close."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from helpers.data.layer_scan import mean_pool
from helpers.viz.figures import THEME_MARKERS, theme_color


def plot_scan(scan: pd.DataFrame, chosen: int | None = None):
    """Every per-layer statistic against depth, one panel each."""
    fig, axes = plt.subplots(2, 3, figsize=(9, 5.8), sharex=True)  # drawn at the ~990 px it is shown at
    L = scan["layer"]
    ax = axes[0, 0]
    ax.plot(L, scan["max"], "o-", label="max (log scale)")
    ax.set_yscale("log")
    ax.set_title("report's stats: max and mean value")
    mean_ax = ax.twinx()  # the mean changes sign: a linear axis with its zero shows it
    mean_ax.plot(L, scan["mean"], "s-", c="darkorange", label="mean (right, linear)")
    mean_ax.axhline(0, c="darkorange", ls=":", lw=1)
    lines = ax.get_legend_handles_labels(), mean_ax.get_legend_handles_labels()
    ax.legend(lines[0][0] + lines[1][0], lines[0][1] + lines[1][1], fontsize=8)
    ax = axes[0, 1]
    ax.plot(L, scan["first_norm"], "o-", label="first token")
    ax.plot(L, scan["other_norm"], "s-", label="other tokens")
    ax.set_yscale("log")
    ax.set_title("mean token norm")
    ax.legend(fontsize=8, loc="upper left")
    ax = axes[0, 2]
    ax.plot(L, scan["sink_ratio"], "o-")
    ax.set_yscale("log")
    ax.set_title("attention sink: first / other norm")
    ax = axes[1, 0]
    ax.plot(L, scan["outlier_ratio"], "o-")
    ax.set_title("top dim mean|x| / median dim")
    ax.set_xlabel("layer")
    ax = axes[1, 1]
    ax.plot(L, scan["participation_ratio"], "o-")
    ax.set_title("participation ratio (effective dims)")
    ax.set_xlabel("layer")
    ax = axes[1, 2]
    ax.errorbar(L, scan["probe_acc"], yerr=scan["probe_sd"], fmt="o-", capsize=2)
    ax.axhline(1 / 5, ls=":", c="grey", label="chance (5 themes)")
    ax.set_ylim(0, 1.05)
    ax.set_title("theme probe accuracy (5-fold CV)")
    ax.set_xlabel("layer")
    ax.legend(fontsize=8)
    if chosen is not None:
        for a in axes.flat:
            a.axvline(chosen, c="crimson", alpha=0.4, lw=3)
    for a in axes.flat:
        a.title.set_fontsize(9)
        a.tick_params(labelsize=8)
    fig.suptitle(
        "Residual stream statistics by layer" + (f" (chosen: layer {chosen})" if chosen is not None else "")
    )
    fig.tight_layout()
    return fig


def plot_layer_view(
    x: np.ndarray, positions: np.ndarray, doc_ids: np.ndarray, doc_themes, layer: int, k: int = 10
):
    """One layer up close: the histogram of its values, its outlier dimensions, and a 2-D PCA of
    the mean-pooled prompts coloured by theme (first tokens left out)."""
    later = np.asarray(positions) > 0
    xs = np.asarray(x)[later]
    fig, axes = plt.subplots(1, 3, figsize=(9, 3.9))  # drawn at the ~990 px it is shown at
    ax = axes[0]
    ax.hist(xs.ravel(), bins=200, color="steelblue")
    ax.set_yscale("log")
    ax.set_title(f"layer {layer}: activation values (first tokens excluded)")
    ax.set_xlabel("value")
    ax = axes[1]
    mag = np.abs(xs).mean(0)
    top = np.argsort(-mag)[:k]
    ax.bar([str(d) for d in top], mag[top], color="darkorange")
    ax.axhline(np.median(mag), c="grey", ls=":", label="median dim")
    ax.set_title(f"top {k} dimensions by mean |value|")
    ax.set_xlabel("dimension")
    ax.tick_params(axis="x", labelrotation=90)
    ax.legend()
    ax = axes[2]
    docs, pooled = mean_pool(x, doc_ids, later)
    pooled = pooled - pooled.mean(0)
    _, s, vt = np.linalg.svd(pooled, full_matrices=False)
    xy = pooled @ vt[:2].T
    themes = np.asarray(doc_themes)[docs]
    for t in dict.fromkeys(themes):
        sel = themes == t
        ax.scatter(
            xy[sel, 0], xy[sel, 1], s=22, color=theme_color(t), marker=THEME_MARKERS.get(t, "o"), label=t
        )
    var = s**2 / (s**2).sum()
    ax.set_xlabel(f"PC1 ({var[0]:.0%})")
    ax.set_ylabel(f"PC2 ({var[1]:.0%})")
    ax.set_title("prompts, mean-pooled, PCA")
    # the themes' legend below the panels: inside the scatter it covers points at this width
    fig.legend(*ax.get_legend_handles_labels(), loc="lower center", ncol=5, fontsize=8, frameon=False)
    for a in axes:
        a.title.set_fontsize(9)
        a.tick_params(labelsize=8)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    return fig
