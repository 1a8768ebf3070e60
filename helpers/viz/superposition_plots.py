"""Figures and the widget of the toy model of superposition (notebook 03, before the real SAE).

Each toy model is drawn as one column: on top its features' hidden directions (the columns of W, as
arrows from the origin, coloured by importance), below WᵀW (diagonal: how strongly each feature is
represented; off-diagonal: how much two features interfere). The widget redraws that column as two
sliders (sparsity, importance decay) retrain the model."""

from __future__ import annotations

import io
from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import ListedColormap, Normalize

from helpers.sae.superposition import REPRESENTED, Recovery, ToyModel, train_toy

# importance: dark purple = 1 (most important) to green = least; viridis' pale yellow end is left out, as
# it is unreadable on white
CMAP = ListedColormap(plt.get_cmap("viridis")(np.linspace(0.8, 0.0, 256)))
LIM = 1.45  # a represented feature's column has norm ~1-1.2
WIDGET_DPI = 100  # the widget shows its PNG at this size, pixel for pixel: 740 x 330 px


def importance_norm(toys: Sequence[ToyModel]) -> Normalize:
    """The colour scale of importance over ``toys``: their least important feature to 1 (0 to 1 when
    every feature matters equally), so the colours spread over the importances actually drawn."""
    lo = min(float(t.importance.min()) for t in toys)
    return Normalize(lo if lo < 0.999 else 0.0, 1.0)


def _require_2d(toy: ToyModel) -> None:
    if toy.m != 2:
        raise ValueError(
            f"this view draws a 2-D hidden space; the toy model has m = {toy.m} (use plot_recovery for it)"
        )


def _circle(ax) -> None:
    t = np.linspace(0, 2 * np.pi, 200)
    ax.plot(np.cos(t), np.sin(t), ls=":", c="0.7", lw=1)
    ax.axhline(0, c="0.85", lw=0.8)
    ax.axvline(0, c="0.85", lw=0.8)
    ax.set_xlim(-LIM, LIM)
    ax.set_ylim(-LIM, LIM)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])


def draw_columns(ax, toy: ToyModel, title: str | None = None, norm: Normalize | None = None) -> None:
    """The columns of W as arrows from the origin, coloured by importance (on ``norm``'s scale) and
    labelled by feature index (a dropped feature's arrow shrinks to the origin; its label stays near it)."""
    _require_2d(toy)
    _circle(ax)
    imp = toy.importance
    norm = norm or importance_norm([toy])
    for i in range(toy.n):
        x, y = toy.W[:, i]
        c = CMAP(norm(imp[i]))
        ax.annotate(
            "", xy=(x, y), xytext=(0, 0), arrowprops={"arrowstyle": "-|>", "color": c, "lw": 2}, zorder=4
        )
        r = max(float(np.hypot(x, y)), 1e-9)
        ax.text(
            x + 0.13 * x / r,
            y + 0.13 * y / r,
            str(i),
            ha="center",
            va="center",
            fontsize=9,
            color=c,
            zorder=4,
        )
    if title is None:
        title = f"S = {toy.sparsity:g}: {int(toy.represented().sum())} of {toy.n} features"
    ax.set_title(title, fontsize=10)


def draw_interference(ax, toy: ToyModel):
    """WᵀW as a heatmap (n x n): ‖W_i‖² on the diagonal, W_i·W_j off it."""
    wtw = toy.W.T @ toy.W
    im = ax.imshow(wtw, cmap="RdBu_r", vmin=-1.4, vmax=1.4)
    ax.set_xticks(range(toy.n))
    ax.set_yticks(range(toy.n))
    ax.tick_params(labelsize=7)
    ax.set_title(f"WᵀW (loss {toy.loss:.4f})", fontsize=9)
    return im


def plot_toy_models(toys: Sequence[ToyModel], titles: Sequence[str] | None = None):
    """One column per toy model (m = 2): arrows of W's columns over WᵀW, with shared colour bars for
    importance and for WᵀW."""
    if not toys:
        raise ValueError("no toy models to draw; pass at least one (helpers.sae.superposition.train_toy)")
    for toy in toys:
        _require_2d(toy)
    if titles is not None and len(titles) != len(toys):
        raise ValueError(f"{len(titles)} titles for {len(toys)} toy models; give one per model")
    k = len(toys)
    fig, axes = plt.subplots(
        2, k, figsize=(2.6 * k + 1.2, 6.0), squeeze=False, gridspec_kw={"height_ratios": [1.25, 1]}
    )
    im = None
    norm = importance_norm(toys)
    for j, toy in enumerate(toys):
        draw_columns(axes[0, j], toy, None if titles is None else titles[j], norm)
        im = draw_interference(axes[1, j], toy)
    sm = plt.cm.ScalarMappable(norm=norm, cmap=CMAP)
    fig.colorbar(sm, ax=axes[0, :].tolist(), shrink=0.8, label="importance $I_i$")
    fig.colorbar(im, ax=axes[1, :].tolist(), shrink=0.8, label="$W_i \\cdot W_j$")
    return fig


def plot_toy_row(toy: ToyModel, title: str | None = None):
    """One toy model (m = 2) in one row: W's columns beside WᵀW, each with its colour bar (the widget's
    view: short enough that its sliders stay on screen with it)."""
    _require_2d(toy)
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(7.4, 3.3), gridspec_kw={"width_ratios": [1.1, 1]})
    norm = importance_norm([toy])
    draw_columns(ax, toy, title, norm)
    im = draw_interference(bx, toy)
    fig.colorbar(plt.cm.ScalarMappable(norm=norm, cmap=CMAP), ax=ax, shrink=0.8, label="importance $I_i$")
    fig.colorbar(im, ax=bx, shrink=0.8, label="$W_i \\cdot W_j$")
    return fig


def _latent_order(rec: Recovery) -> tuple[list[int], int, int]:
    """Latents in drawing order: those matched to a true feature (in feature order), the other live
    ones, the dead ones; with the counts of matched and live latents."""
    matched = list(dict.fromkeys(rec.latents.tolist()))
    live = [j for j in range(len(rec.directions)) if j not in matched and rec.firing[j] > 0]
    dead = [j for j in range(len(rec.directions)) if j not in matched and rec.firing[j] == 0]
    return matched + live + dead, len(matched), len(matched) + len(live)


def plot_recovery(toy: ToyModel, rec: Recovery, hidden: np.ndarray, max_points: int = 3000):
    """What the SAE found against the truth. Left, for m = 2: the hidden vectors it trained on (dots), the
    true feature directions (coloured arrows) and its decoder rows (black dashed: matched to a feature;
    grey dotted: the other latents that fire; dead latents left out); for m > 2: the cosine of every true
    feature with every latent, matched latents first. Right: each true feature's best cosine."""
    hidden = np.asarray(hidden)
    if hidden.ndim != 2 or hidden.shape[1] != toy.m:
        raise ValueError(
            f"hidden vectors are {hidden.shape}; pass the [n_samples, {toy.m}] h = W x it trained on"
        )
    if len(rec.cosines) != toy.n:
        raise ValueError(f"the recovery has {len(rec.cosines)} features, the toy model {toy.n}; pass its own")
    order, n_matched, n_live = _latent_order(rec)
    d_sae = len(rec.directions)
    counts = f"{d_sae} latents: {n_matched} matched, {n_live - n_matched} other live, {d_sae - n_live} dead"
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(9, 3.8), gridspec_kw={"width_ratios": [1, 1.3]})
    norm = importance_norm([toy])
    if toy.m == 2:
        draw_columns(ax, toy, f"truth (arrows) vs SAE decoder rows\n{counts}", norm)
        for rank, j in enumerate(order[:n_live]):
            d = 1.35 * rec.directions[j]
            style = {"ls": "--", "c": "k", "lw": 1} if rank < n_matched else {"ls": ":", "c": "0.5", "lw": 1}
            ax.plot([0, d[0]], [0, d[1]], **style)
        pts = hidden[np.any(hidden != 0, axis=1)]  # a vector with no active feature is the origin
        pts = pts[:: max(1, len(pts) // max_points)]
        ax.scatter(
            pts[:, 0], pts[:, 1], s=4, c="tab:orange", alpha=0.35, lw=0, zorder=3, label="hidden vectors h"
        )
        ax.plot([], [], ls="--", c="k", lw=1, label="decoder row matched to a feature")
        ax.plot([], [], ls=":", c="0.5", lw=1, label="other live decoder row")
        ax.legend(loc="lower left", fontsize=7)
    else:
        cols = toy.W / np.maximum(np.linalg.norm(toy.W, axis=0, keepdims=True), 1e-12)
        feats = np.array(sorted(range(toy.n), key=lambda i: order.index(int(rec.latents[i]))))
        cos = cols[:, feats].T @ rec.directions[order].T
        im = ax.imshow(cos, cmap="RdBu_r", vmin=-1, vmax=1, aspect="auto", interpolation="nearest")
        for x in (n_matched, n_live):
            ax.axvline(x - 0.5, c="k", lw=1)
        ax.set_xlabel("SAE latent: matched | other live | dead")
        ax.set_ylabel("true feature")
        ax.set_yticks(range(toy.n))
        ax.set_yticklabels(feats)
        ax.tick_params(labelsize=6)
        ax.set_title(f"cosine of {toy.n} true features with {counts}", fontsize=9)
        fig.colorbar(im, ax=ax, shrink=0.8)
    colors = [CMAP(norm(v)) if r else "0.8" for v, r in zip(toy.importance, rec.represented, strict=True)]
    bx.bar(range(toy.n), rec.cosines, color=colors)
    if toy.n <= 10:
        for i, c in enumerate(rec.cosines):
            bx.text(i, c + 0.01, f"{c:.3f}", ha="center", va="bottom", fontsize=8)
    bx.axhline(0.9, ls=":", c="k", lw=1)
    bx.set_ylim(min(0.0, float(rec.cosines.min())), 1.08)
    bx.set_xticks(range(toy.n))
    bx.tick_params(labelsize=7 if toy.n > 10 else 9)
    bx.set_xlabel("true feature i (grey: not represented by the toy model)")
    bx.set_ylabel("cosine with the best-matching decoder row")
    bx.set_title(f"recovered: worst cosine {rec.worst():.3f}, SAE FVU {rec.fvu:.3f}", fontsize=10)
    fig.tight_layout()
    return fig


def _png(fig) -> bytes:
    """The figure as PNG bytes, closed. Unlike :func:`helpers.viz.widgets._png` it keeps the figure's own
    bounds instead of ``bbox_inches="tight"``, which draws the figure twice: a redraw takes half the time,
    and the column view fits its canvas anyway."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=WIDGET_DPI)
    plt.close(fig)
    return buf.getvalue()


def superposition_widget(
    n: int = 5,
    sparsity: float = 0.9,
    decay: float = 0.9,
    steps: int = 1000,
    seed: int = 0,
):
    """Two sliders, sparsity S and importance decay, that retrain the toy model (n features, m = 2) and
    redraw its column view into an ``Image`` (~0.5 s a move on 2 busy CPU cores: 0.25 s training,
    0.25 s drawing; every setting is cached, so going back is instant). No ``Output`` widget: see
    :mod:`helpers.viz.widgets`."""
    import ipywidgets as widgets

    cache: dict[tuple[float, float], bytes] = {}

    def render(s: float, d: float) -> bytes:
        key = (round(float(s), 2), round(float(d), 2))
        if key not in cache:
            toy = train_toy(n=n, m=2, sparsity=key[0], decay=key[1], steps=steps, seed=seed)
            rep = int(toy.represented(REPRESENTED).sum())
            title = f"S = {key[0]:g}, decay {key[1]:g}: {rep} of {n} features"
            cache[key] = _png(plot_toy_row(toy, title))
        return cache[key]

    common = {"continuous_update": False, "style": {"description_width": "initial"}}
    s_slider = widgets.FloatSlider(
        value=sparsity, min=0.0, max=0.99, step=0.01, description="sparsity S", **common
    )
    d_slider = widgets.FloatSlider(
        value=decay, min=0.5, max=1.0, step=0.05, description="importance decay", **common
    )
    first = render(sparsity, decay)
    # shown at the PNG's own width: an Image widget otherwise stretches to the output area (2.7x, blurry,
    # taller than a laptop screen, so the sliders and the WᵀW panel were never in view together)
    width = int.from_bytes(first[16:20], "big")
    image = widgets.Image(value=first, format="png", layout=widgets.Layout(width=f"{width}px"))

    def show(change=None) -> None:
        image.value = render(s_slider.value, d_slider.value)

    s_slider.observe(show, names="value")
    d_slider.observe(show, names="value")
    return widgets.VBox([widgets.HBox([s_slider, d_slider]), image])
