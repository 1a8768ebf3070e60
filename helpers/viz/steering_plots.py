"""Notebook 06's measured trade-off: theme score against fluency cost, with 95% intervals."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

STYLES = {"clamp": "o-", "difference of means": "s--"}


def plot_tradeoff(summary: pd.DataFrame, themes: dict[int, str]):
    """One panel per feature: perplexity (x, log) against theme score (y) for each method and strength,
    error bars the bootstrap 95% intervals of :func:`helpers.analysis.steering.summarize_steering`."""
    feats = list(dict.fromkeys(summary["feature"]))
    cols = min(3, len(feats))
    rows = -(-len(feats) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5.5 * cols, 4.2 * rows), squeeze=False)
    for ax in axes.flat[len(feats) :]:
        ax.set_visible(False)
    for ax, f in zip(axes.flat, feats, strict=False):
        sub = summary[summary["feature"] == f]
        for method, m in sub.groupby("method", sort=False):
            m = m.sort_values("strength")
            xerr = np.vstack([m["perplexity"] - m["ppl low"], m["ppl high"] - m["perplexity"]])
            yerr = np.vstack([m["theme score"] - m["score low"], m["score high"] - m["theme score"]])
            style = STYLES.get(method, "k*")
            label = f"clamp feature {f}" if method == "clamp" else method
            ax.errorbar(
                m["perplexity"], m["theme score"], xerr=xerr, yerr=yerr, fmt=style, capsize=3, label=label
            )
            if method in STYLES:
                for _, r in m.iterrows():
                    ax.annotate(
                        f"{r['strength']:g}x",
                        (r["perplexity"], r["theme score"]),
                        fontsize=8,
                        xytext=(4, 4),
                        textcoords="offset points",
                    )
        ax.set_xscale("log")
        ax.set_xlabel("perplexity under the unsteered model (fluency cost)")
        ax.set_ylabel(f"share of {themes.get(f, '?')} words")
        ax.set_title(f"feature {f}: effect against cost (95% intervals)", fontsize=10)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
