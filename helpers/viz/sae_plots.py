"""Figures of notebook 03: training curves, latent activations, feature density, L0, Pareto."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from helpers.sae.metrics import density_log10
from helpers.sae.train import TrainLog


def plot_training(logs: dict[str, TrainLog]):
    """Loss and its parts (reconstruction, sparsity term) against training tokens, per run, and the
    FVU on held-out and on training rows at a few points: the memorisation gap as it opens."""
    fig, axes = plt.subplots(1, 4, figsize=(19, 3.8))
    for name, log in logs.items():
        t = np.asarray(log.tokens) / 1e3
        (line,) = axes[0].plot(t, log.loss, label=name)
        axes[1].plot(t, log.mse, label=name)
        axes[2].plot(t, log.sparsity, label=name)
        if log.eval_fvu:
            te = np.asarray(log.eval_tokens) / 1e3
            axes[3].plot(te, log.eval_fvu, "o-", c=line.get_color(), label=f"{name}: held-out")
            axes[3].plot(te, log.train_fvu, "s--", c=line.get_color(), label=f"{name}: training rows")
    axes[3].set_title("FVU: held-out vs training rows")
    axes[3].set_xlabel("training tokens (thousands)")
    axes[3].legend(fontsize=7)
    for ax, title in zip(
        axes[:3],
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
            ce = "" if pd.isna(r.get("ce_recovered", np.nan)) else f"\nCE rec {r['ce_recovered']:.2f}"
            ax.annotate(
                f"{r['run']}{ce}",
                (r["l0"], r["fvu"]),
                fontsize=7,
                textcoords="offset points",
                xytext=(4, 4),
            )
    ax.set_xscale("log")
    ticks = [
        t
        for t in (4, 8, 16, 32, 64, 128, 256, 512, 1024)
        if table["l0"].min() / 1.5 <= t <= table["l0"].max() * 1.5
    ]
    ax.set_xticks(ticks, [str(t) for t in ticks])
    ax.minorticks_off()
    ax.set_xlabel("L0 (active latents per token, eval)")
    ax.set_ylabel("FVU (eval)")
    ax.set_title("sparsity vs reconstruction: lower-left is better")
    ax.legend()
    fig.tight_layout()
    return fig


def plot_scaling(table: pd.DataFrame):
    """Held-out and training FVU against distinct training tokens (log2 axis), and the gap between
    them: the data-scaling lesson (``table``: tokens, train_fvu, eval_fvu, dead)."""
    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 4))
    t = table["tokens"].to_numpy()
    a.plot(t, table["eval_fvu"], "o-", label="held-out prompts")
    a.plot(t, table["train_fvu"], "s--", label="training rows")
    for ax in (a, b):
        ax.set_xscale("log", base=2)
        ax.set_xticks(t, [f"{x / 1e3:,.0f}k" for x in t])
        ax.minorticks_off()
        ax.set_xlabel("distinct training tokens (same number of steps)")
    a.set_ylabel("FVU")
    a.set_title("more distinct data: held-out FVU falls")
    a.legend()
    b.bar(range(len(t)), table["eval_fvu"] - table["train_fvu"], color="indianred")
    b.set_xscale("linear")
    b.set_xticks(range(len(t)), [f"{x / 1e3:,.0f}k" for x in t])
    b.set_ylabel("held-out FVU - training FVU")
    b.set_title("the memorisation gap")
    fig.tight_layout()
    return fig
