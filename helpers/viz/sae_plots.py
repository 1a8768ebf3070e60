"""Figures of notebook 03: training curves, latent activations, feature density, L0, Pareto."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from helpers.sae.metrics import density_log10
from helpers.sae.train import TrainLog


def plot_training(logs: dict[str, TrainLog]):
    """Loss and its parts (reconstruction, sparsity term) against training tokens, per run."""
    fig, axes = plt.subplots(1, 3, figsize=(15, 3.8))
    for name, log in logs.items():
        t = np.asarray(log.tokens) / 1e3
        axes[0].plot(t, log.loss, label=name)
        axes[1].plot(t, log.mse, label=name)
        axes[2].plot(t, log.sparsity, label=name)
    for ax, title in zip(
        axes,
        ["total loss", "reconstruction ||x - x̂||² / d", "sparsity term (λ·L1, or AuxK) / d"],
        strict=True,
    ):
        ax.set_title(title)
        ax.set_xlabel("training tokens (thousands)")
        ax.set_yscale("log")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_activations(f_by_name: dict[str, np.ndarray], rates_by_name: dict[str, np.ndarray]):
    """Histogram of the non-zero latent activations, of log10 feature density, and of L0."""
    fig, axes = plt.subplots(1, 3, figsize=(15, 3.8))
    for name, f in f_by_name.items():
        nz = f[f > 0]
        axes[0].hist(nz, bins=100, histtype="step", lw=1.5, label=f"{name}: {nz.size / f.size:.2%} non-zero")
        axes[2].hist((f > 0).sum(1), bins=60, histtype="step", lw=1.5, label=name)
    for name, r in rates_by_name.items():
        axes[1].hist(
            density_log10(r), bins=60, histtype="step", lw=1.5, label=f"{name}: {(r == 0).mean():.1%} dead"
        )
    axes[0].set_yscale("log")
    axes[0].set_title("non-zero latent activations (eval)")
    axes[0].set_xlabel("activation")
    axes[1].set_title("feature density (eval)")
    axes[1].set_xlabel("log10 firing rate")
    axes[1].set_ylabel("latents")
    axes[1].axvline(-1, c="grey", ls=":")
    axes[2].set_title("L0 per token (eval)")
    axes[2].set_xlabel("active latents")
    for ax in axes:
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_pareto(table: pd.DataFrame):
    """FVU against L0 for every run, one line per architecture, CE loss recovered annotated."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for arch, sub in table.groupby("architecture"):
        sub = sub.sort_values("l0")
        ax.plot(sub["l0"], sub["fvu"], "o-", label=arch)
        for _, r in sub.iterrows():
            ax.annotate(
                f"{r['run']}\nCE rec {r['ce_recovered']:.2f}",
                (r["l0"], r["fvu"]),
                fontsize=7,
                textcoords="offset points",
                xytext=(4, 4),
            )
    ax.set_xscale("log")
    ax.set_xlabel("L0 (active latents per token, eval)")
    ax.set_ylabel("FVU (eval)")
    ax.set_title("sparsity vs reconstruction: lower-left is better")
    ax.legend()
    fig.tight_layout()
    return fig
