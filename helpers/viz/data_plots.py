"""Notebook 02's figures: the prompts' top words, and the activation store at a glance."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from helpers.data.store import Store
from helpers.viz.figures import theme_color


def plot_top_words(table: pd.DataFrame):
    """One horizontal bar chart of top words per theme, three to a row (9 in wide: ~990 px at the
    110 dpi of ``save_figure``, the width a notebook shows it at)."""
    themes = list(dict.fromkeys(table["theme"]))
    cols = min(3, len(themes))
    rows = -(-len(themes) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(9, 2.9 * rows), squeeze=False)
    for ax in axes.flat[len(themes) :]:
        ax.set_visible(False)
    for ax, t in zip(axes.flat, themes, strict=False):
        sub = table[table["theme"] == t].iloc[::-1]
        ax.barh(sub["word"], sub["count"], color=theme_color(t))
        ax.set_title(t, fontsize=10)
        ax.set_xlabel("count")
    fig.suptitle("Most frequent words per theme (stop-words removed)")
    fig.tight_layout()
    return fig


def plot_store_overview(store: Store, docs: pd.DataFrame):
    """Tokens per theme, and the distribution of token norms per theme."""
    theme_of = docs.set_index("doc_id")["theme"]
    themes = theme_of.reindex(store.doc_ids).to_numpy()
    norms = np.linalg.norm(store.acts, axis=1)
    order = list(dict.fromkeys(docs["theme"]))
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.6), gridspec_kw={"width_ratios": [1, 1.5]})
    counts = pd.Series(themes).value_counts().reindex(order)
    a.barh(order[::-1], counts.to_numpy()[::-1], color=[theme_color(t) for t in order[::-1]])
    a.set_xlabel("tokens in the store")
    a.set_title(f"{len(store):,} tokens, {len(np.unique(store.doc_ids))} documents", fontsize=10)
    bins = np.linspace(0, np.percentile(norms, 99.9), 80)
    for t in order:
        b.hist(norms[themes == t], bins=bins, histtype="step", lw=1.5, color=theme_color(t), label=t)
    b.set_yscale("log")
    b.set_xlabel("token norm ||x||")
    b.set_ylabel("tokens")
    b.set_title(f"layer {store.layer}: norm of each token's residual", fontsize=10)
    b.legend(fontsize=8)
    fig.tight_layout()
    return fig
