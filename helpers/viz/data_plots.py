"""Notebook 02's figures: the prompts' top words, and the activation store at a glance."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from helpers.data.store import Store
from helpers.viz.figures import theme_color


def plot_top_words(table: pd.DataFrame):
    """One horizontal bar chart of top words per theme."""
    themes = list(dict.fromkeys(table["theme"]))
    fig, axes = plt.subplots(1, len(themes), figsize=(3.2 * len(themes), 3.4), squeeze=False)
    for ax, t in zip(axes[0], themes, strict=True):
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
    fig, (a, b) = plt.subplots(1, 2, figsize=(13, 3.8), gridspec_kw={"width_ratios": [1, 1.6]})
    counts = pd.Series(themes).value_counts().reindex(order)
    a.barh(order[::-1], counts.to_numpy()[::-1], color=[theme_color(t) for t in order[::-1]])
    a.set_xlabel("tokens in the store")
    a.set_title(f"{len(store):,} tokens, {len(np.unique(store.doc_ids))} documents")
    bins = np.linspace(0, np.percentile(norms, 99.9), 80)
    for t in order:
        b.hist(norms[themes == t], bins=bins, histtype="step", lw=1.5, color=theme_color(t), label=t)
    b.set_yscale("log")
    b.set_xlabel("token norm ||x||")
    b.set_ylabel("tokens")
    b.set_title(f"layer {store.layer}: norm of each token's residual vector")
    b.legend(fontsize=7)
    fig.tight_layout()
    return fig
