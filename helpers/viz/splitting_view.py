"""Views of feature splitting (notebook 04): a small SAE's feature above its nearest decoder
directions in wider SAEs, as dashboards stacked at the output area's width; a feature picker around
that view (HTML in an ``ipywidgets.HTML``, never an ``Output`` widget: see :mod:`helpers.viz.widgets`);
and the static figure: the share of small features found again and split at each width, and the
best-match cosines."""

from __future__ import annotations

import html
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from helpers.analysis.features import FeatureIndex, doc_bounds
from helpers.analysis.splitting import CHILD, Splitting, best_matches
from helpers.sae.model import BaseSAE
from helpers.viz.dashboard import dashboard_html
from helpers.viz.widgets import FULL_WIDTH, boxed, dismiss, saved_state_note


@dataclass(frozen=True)
class SAEView:
    """One SAE as its dashboards need it: a short ``name`` ("x8"), the SAE, its
    :class:`~helpers.analysis.features.FeatureIndex` over the store (``encode_store``) and,
    optionally, a label per feature (``labels``: feature -> text)."""

    name: str
    sae: BaseSAE
    index: FeatureIndex
    labels: Mapping[int, str] | None = None

    def label(self, i: int) -> str | None:
        return None if self.labels is None else self.labels.get(int(i))


@dataclass(frozen=True)
class DashboardContext:
    """What every dashboard reads besides the SAE: the store, its documents, the tokenizer, the
    unembedding, each row's theme and the theme names (see :func:`helpers.viz.dashboard.dashboard_html`)."""

    store: object
    docs: pd.DataFrame
    tokenizer: object
    W_U: object
    theme_of_row: np.ndarray
    themes: Sequence[str]
    bounds: tuple[np.ndarray, np.ndarray] | None = None

    def render(self, view: SAEView, i: int, title: str, n_top: int = 4) -> str:
        """Feature ``i`` of ``view`` as a dashboard titled ``title`` (and the feature's label)."""
        label = " · ".join(t for t in (title, view.label(i)) if t)
        bounds = self.bounds if self.bounds is not None else doc_bounds(self.store)
        return dashboard_html(
            i,
            view.index,
            self.store,
            self.docs,
            self.tokenizer,
            view.sae,
            self.W_U,
            self.theme_of_row,
            self.themes,
            label=label,
            n_top=n_top,
            bounds=bounds,
        )


def _column(head: str, body: str) -> str:
    return (
        "<div style='width:100%;max-width:100%;min-width:0'>"
        "<div style='font-weight:bold;border-bottom:2px solid #888;margin-bottom:4px'>"
        f"{head}</div>{body}</div>"
    )


def split_html(
    i: int,
    small: SAEView,
    larger: Sequence[SAEView],
    ctx: DashboardContext,
    n: int = 2,
    child: float = CHILD,
    n_top: int = 4,
) -> str:
    """Feature ``i`` of the ``small`` SAE first, then one block per wider SAE with its ``n`` nearest
    decoder directions (cosine in each title; *child* when it reaches ``child``; the block's head counts
    the children among all of the wider SAE's directions, shown or not), as dashboards
    stacked one under the other at the output area's width (side by side, a ~990 px output area
    left each column too narrow for its token lines, which ran over the next column)."""
    i = small.index.check(i)
    W = small.sae.W_dec.detach()[i : i + 1]
    cols = [_column(f"{html.escape(small.name)} (the small SAE)", ctx.render(small, i, small.name, n_top))]
    for view in larger:
        m = best_matches(W, view.sae.W_dec.detach(), k=n)
        # every child in the wider SAE, not only among the n shown
        n_children = int((best_matches(W, view.sae.W_dec.detach(), k=view.index.d_sae).cos[0] >= child).sum())
        parts = [
            ctx.render(
                view,
                int(j),
                f"{view.name}, cos {c:.2f}" + (" (child)" if c >= child else ""),
                n_top,
            )
            for j, c in zip(m.ids[0], m.cos[0], strict=True)
        ]
        head = (
            f"{html.escape(view.name)}: nearest {len(parts)} of {view.index.d_sae:,} "
            f"({n_children} in all with cos &ge; {child:g})"
        )
        cols.append(_column(head, "".join(parts)))
    return (
        f"<div style='font-size:13px'>feature {i} of {html.escape(small.name)} and its nearest decoder "
        f"directions in the wider SAEs</div>"
        f"<div style='display:flex;flex-direction:column;gap:10px;max-width:100%'>{''.join(cols)}</div>"
    )


def feature_picker(
    options: Mapping[str, int] | Sequence[int],
    render: Callable[[int], str],
    description: str = "feature",
    first_html: str | None = None,
):
    """A dropdown of features (``options``: ids, or caption -> id) that shows ``render(id)`` (an HTML
    string) below it in an ``ipywidgets.HTML``. The first option is shown at once: ``first_html``
    when given (its render, already drawn for the static view above the widget), else rendered."""
    import ipywidgets as widgets

    items = (
        list(options.items()) if isinstance(options, Mapping) else [(str(int(i)), int(i)) for i in options]
    )
    if not items:
        raise ValueError("no features to pick from; lower min_children or pick from all live features")
    box = widgets.Dropdown(options=items, value=items[0][1], description=description)
    box.layout.width = FULL_WIDTH
    out = widgets.HTML(first_html if first_html is not None else render(items[0][1]))
    out.layout.max_width = FULL_WIDTH
    note = saved_state_note()

    def show(change=None) -> None:
        dismiss(note)
        out.value = render(box.value)

    box.observe(show, names="value")
    return boxed([box, out], note)


def plot_splitting(res: Splitting, baseline: np.ndarray | None = None):
    """Left: against the number of features of each wider SAE in ``res`` (log scale), the share of
    the small SAE's features found again there (best cosine >= ``res.match``) and the share that
    split (>= 2 children, cosine >= ``res.child``). Right: histograms of the small features' best
    cosine in each wider SAE, with random directions' best cosines (``baseline``) for chance."""
    if not isinstance(res, Splitting):
        raise ValueError("pass the Splitting that helpers.analysis.splitting.compare_widths returns")
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(9, 3.6))  # drawn at the ~990 px it is shown at
    names = list(res.sizes)
    x = np.array([res.sizes[n] for n in names])
    found = np.array([np.mean(res.matches[n].best >= res.match) for n in names])
    split = np.array([np.mean(res.counts[n] >= 2) for n in names])
    order = np.argsort(x, kind="stable")
    ax.plot(x[order], found[order], "o-", label=f"found again: best cos ≥ {res.match:g}")
    ax.plot(x[order], split[order], "s--", label=f"split: ≥ 2 children (cos ≥ {res.child:g})")
    for n, xi, yi in zip(names, x, found, strict=True):
        ax.annotate(n, (xi, yi), fontsize=8, textcoords="offset points", xytext=(4, 4))
    ax.set_xscale("log", base=2)
    ax.set_xticks(sorted(set(x.tolist())), [f"{v:,}" for v in sorted(set(x.tolist()))])
    ax.minorticks_off()
    ax.set_ylim(0, max(0.3, float(max(found.max(), split.max())) * 1.15))
    ax.set_xlabel("features in the other SAE (log scale)")
    ax.set_ylabel(f"share of the {res.d_small:,} {res.small} features")
    ax.set_title(f"{res.small} features in other SAEs", fontsize=10)
    ax.legend(fontsize=8)
    low = min(0.0, *(float(res.matches[n].best.min()) for n in names))
    bins = np.linspace(np.floor(low * 10) / 10, 1.0, 51)
    for n in names:
        cos = res.matches[n].best
        bx.hist(cos, bins=bins, histtype="step", lw=1.8, label=f"in {n}: median {np.median(cos):.2f}")
    if baseline is not None:
        bx.hist(np.asarray(baseline), bins=bins, color="lightgrey", label="random directions (chance)")
    bx.axvline(res.match, c="grey", ls=":")
    bx.set_xlabel("best cosine in the other SAE")
    bx.set_ylabel(f"{res.small} features")
    bx.set_title(f"Best decoder-direction match of each {res.small} feature", fontsize=10)
    bx.legend(fontsize=8)
    fig.tight_layout()
    return fig
