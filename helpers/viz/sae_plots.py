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
    fig, axes = plt.subplots(2, 2, figsize=(9, 6.4))  # drawn at the ~990 px it is shown at
    axes = axes.ravel()
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
    axes[3].tick_params(labelsize=8)
    for ax, title in zip(
        axes[:3],
        ["total loss", "reconstruction ||x - x̂||² / d", "sparsity term (λ·L1, or AuxK) / d"],
        strict=True,
    ):
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("training tokens (thousands)")
        ax.set_yscale("log")
        ax.tick_params(which="both", labelsize=8)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_activations(f_by_name: dict[str, np.ndarray], rates_by_name: dict[str, np.ndarray]):
    """Histogram of the non-zero latent activations, of log10 feature density, and of L0."""
    fig, axes = plt.subplots(1, 3, figsize=(9, 3.4))  # drawn at the ~990 px it is shown at
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
        ax.legend(fontsize=7)
        ax.tick_params(labelsize=8)
        ax.title.set_fontsize(10)
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


def plot_steps_data(table: pd.DataFrame, splits: tuple[str, ...] = ("themed", "corpus")):
    """Held-out FVU against training steps (log2 axis), one panel per held-out set: the steps curve (all
    rows) beside the data curve at equal passes (a share of the rows, as many passes as the kept run), with
    each run's training FVU dashed (``table`` from :func:`helpers.sae.steps_data.steps_and_data`)."""
    fig, axes = plt.subplots(1, len(splits), figsize=(4.9 * len(splits), 3.6), sharey=True)
    axes = np.atleast_1d(axes)
    styles = {"all rows": ("o-", "tab:blue"), "share, equal passes": ("s-", "tab:orange")}
    for ax, split in zip(axes, splits, strict=True):
        for curve, part in table.groupby("curve", sort=False):
            part = part.sort_values("steps")
            marker, colour = styles.get(curve, ("^-", "tab:green"))
            shares = "/".join(f"{x:.3g}" for x in sorted(part["share"].unique()))
            label = "all rows" if curve == "all rows" else f"share {shares} of the rows, equal passes"
            ax.plot(part["steps"], part[f"fvu_{split}"], marker, color=colour, label=f"{label}: held-out")
            ax.plot(
                part["steps"],
                part["fvu_train"],
                marker[0] + "--",
                color=colour,
                alpha=0.5,
                label=f"{label}: training rows",
            )
        steps = np.sort(table["steps"].unique())
        ax.set_xscale("log", base=2)
        ax.set_xticks(steps, [f"{s:,}" for s in steps])
        ax.minorticks_off()
        ax.set_xlabel("training steps (1,024 tokens each)")
        ax.set_title(f"held-out {split} prompts")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("FVU")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    return fig
