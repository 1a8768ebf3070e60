"""Notebook 07's figures of the architectures: recovery of known features against L0, and absorption."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd

ARCH_COLORS = {"TopK": "C0", "BatchTopK": "C1", "Matryoshka": "C2", "JumpReLU": "C3", "L1": "C4"}


def plot_recovery_curve(table: pd.DataFrame, true_l0: float) -> plt.Figure:
    """MCC and FVU against L0, one line per architecture (``table``: rows of
    :func:`helpers.sae.architectures.synthetic_runs`, one seed); the data's true L0 dashed. Drawn at the size
    it is shown (~990 px at 110 dpi)."""
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    for arch, t in table.groupby("architecture", sort=False):
        t = t.sort_values("L0")
        for ax, col in zip(axes, ("MCC", "FVU"), strict=True):
            ax.plot(t["L0"], t[col], "o-", color=ARCH_COLORS.get(arch), label=arch)
    for ax, col in zip(
        axes, ("MCC: mean matched cosine (1 = every true feature found)", "FVU (0 = exact)"), strict=True
    ):
        ax.axvline(true_l0, color="grey", ls="--", lw=1)
        ax.set_xlabel("L0 (active latents per token)")
        ax.set_title(col, fontsize=10)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_absorption(table: pd.DataFrame) -> plt.Figure:
    """Absorption and the parents' best cosine per architecture, one dot per seed (``table``: rows of
    :func:`helpers.sae.architectures.synthetic_runs` at one L0)."""
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.0))
    archs = list(dict.fromkeys(table["architecture"]))
    for ax, col, title in zip(
        axes,
        ("absorption", "MCC"),
        ("absorption of parents by their children (0 = none, 1 = full)", "MCC at this L0"),
        strict=True,
    ):
        for i, arch in enumerate(archs):
            v = table.loc[table["architecture"] == arch, col]
            ax.scatter([i] * len(v), v, color=ARCH_COLORS.get(arch), s=30)
            ax.hlines(v.mean(), i - 0.25, i + 0.25, color=ARCH_COLORS.get(arch))
        ax.set_xticks(range(len(archs)), archs, fontsize=9)
        ax.set_title(title, fontsize=10)
    axes[0].axhline(0, color="grey", lw=0.8)
    fig.tight_layout()
    return fig
