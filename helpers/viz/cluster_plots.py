"""Figures of notebook 05: document maps, silhouette scan, cluster x theme table."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from helpers.viz.figures import THEME_MARKERS


def embed_2d(Z: np.ndarray, seed: int = 0) -> dict[str, np.ndarray]:
    """PCA and t-SNE coordinates of the documents."""
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE

    pca = PCA(n_components=2, random_state=seed).fit_transform(Z)
    tsne = TSNE(
        n_components=2,
        perplexity=min(30, max(2, (len(Z) - 1) // 3)),
        init="pca",
        random_state=seed,
        metric="cosine",
    ).fit_transform(Z)
    return {"PCA": pca, "t-SNE": tsne}


def plot_maps(coords: dict[str, np.ndarray], labels: np.ndarray, themes: np.ndarray, title: str):
    """One panel per embedding: colour = cluster, marker = true theme."""
    fig, axes = plt.subplots(1, len(coords), figsize=(min(9.0, 4.2 * len(coords) + 0.6), 4.6))  # fits ~990 px
    cmap = plt.get_cmap("tab10")
    for ax, (name, xy) in zip(np.atleast_1d(axes), coords.items(), strict=True):
        for t in dict.fromkeys(themes):
            sel = themes == t
            ax.scatter(
                xy[sel, 0],
                xy[sel, 1],
                c=[cmap(c % 10) for c in labels[sel]],
                marker=THEME_MARKERS.get(t, "o"),
                s=22,
                edgecolors="none",
            )
        ax.set_title(f"{name}: colour = cluster, marker = theme", fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
    handles = [
        plt.Line2D([], [], marker=THEME_MARKERS.get(t, "o"), ls="", color="grey", label=t)
        for t in dict.fromkeys(themes)
    ]
    handles += [
        plt.Line2D([], [], marker="s", ls="", color=cmap(c % 10), label=f"cluster {c}")
        for c in np.unique(labels)
    ]
    # below the panels: at the ~990 px the figure is shown at, a legend at the side covers a panel
    fig.legend(handles=handles, loc="lower center", ncol=5, fontsize=8, frameon=False)
    fig.suptitle(title)
    fig.tight_layout(rect=(0, 0.13, 1, 1))
    return fig


def plot_crosstab(labels: np.ndarray, themes: np.ndarray, title: str):
    """Heatmap of documents per cluster (rows) and theme (columns)."""
    import seaborn as sns

    table = pd.crosstab(pd.Series(labels, name="cluster"), pd.Series(themes, name="theme"))
    fig, ax = plt.subplots(figsize=(8, 0.5 * len(table) + 1.8))
    sns.heatmap(table, annot=True, fmt="d", cmap="Blues", cbar=False, ax=ax)
    ax.set_title(title)
    fig.tight_layout()
    return fig


def plot_silhouette(scores: dict[str, pd.Series]):
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for name, s in scores.items():
        ax.plot(s.index, s.to_numpy(), "o-", label=name)
    ax.set_xlabel("k")
    ax.set_ylabel("silhouette (cosine)")
    ax.set_title("k-means silhouette by k")
    ax.legend()
    fig.tight_layout()
    return fig
