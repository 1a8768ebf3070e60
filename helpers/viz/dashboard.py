"""One HTML dashboard per feature (after Anthropic's and sae_vis's): stats, activation
histogram, logit weights, theme mix, top and quantile-sampled examples at token level, and the
report's top whole texts."""

from __future__ import annotations

import base64
import html
import io

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from helpers.analysis import features as F
from helpers.validate import as_count
from helpers.viz.tokens import WRAP_STYLE, token_strings, tokens_html


def _fig_png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80, bbox_inches="tight")
    plt.close(fig)
    return f'<img src="data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}"/>'


def _hist(vals: np.ndarray, i: int) -> str:
    fig, ax = plt.subplots(figsize=(3.6, 2.0))
    ax.hist(vals, bins=40, color="darkorange")
    ax.set_title(f"feature {i}: non-zero activations", fontsize=8)
    ax.tick_params(labelsize=8)
    return _fig_png(fig)


def _examples(tokenizer, store, exs, vmax, labels=None) -> str:
    out = []
    for k, ex in enumerate(exs):
        toks = token_strings(tokenizer, store.token_ids[ex.rows])
        tag = f"{labels[k]} · " if labels else ""
        c = ex.center - int(ex.rows[0])  # the example's own token (a neighbour in its window may fire higher)
        out.append(
            f'<div style="margin:2px 0"><span style="color:#888;font-size:11px">{tag}doc {ex.doc_id}, '
            f"{html.escape(repr(toks[c]), quote=False)} at {ex.acts[c]:.2f}</span>"
            f"{tokens_html(toks, ex.acts, vmax=vmax, label='act')}</div>"
        )
    return "".join(out)


def dashboard_html(
    i: int,
    index: F.FeatureIndex,
    store,
    docs: pd.DataFrame,
    tokenizer,
    sae,
    W_U,
    theme_of_row,
    themes,
    label: str | None = None,
    n_top: int = 6,
    bounds=None,
) -> str:
    """The dashboard of feature ``i`` as one HTML string (a clear message for a dead feature). ``i`` is
    checked once (a whole number in range: 3.0 is feature 3, -1 and 3.5 are refused), then used as an int."""
    i = index.check(i)
    n_top = as_count(n_top, "n_top")
    if index.counts[i] == 0:
        return f"<p><b>feature {i}</b> is dead: it never fires on the {index.n_tokens:,} stored tokens.</p>"
    bounds = bounds or F.doc_bounds(store)
    rows, vals = index.of(i)
    vmax = float(vals.max())
    mix = F.theme_mix(index, theme_of_row, i, themes)
    mix_html = " ".join(
        f"<span style='margin-right:8px'>{html.escape(t)}: <b>{v:.1f}x</b></span>" for t, v in mix.items()
    )
    top = F.top_examples(index, store, i, n=n_top, bounds=bounds)
    quant = F.quantile_examples(index, store, i, per_band=1, bounds=bounds)
    logits = F.logit_table(sae, W_U, tokenizer, i, k=6)
    texts = F.top_texts(index, store, docs, i)
    head = (
        f"<h4 style='margin:4px 0'>Feature {i}{' — ' + html.escape(label) if label else ''}</h4>"
        f"<div>fires on {len(rows):,} of {index.n_tokens:,} tokens (density "
        f"{len(rows) / index.n_tokens:.2%}); "
        f"max activation {vmax:.2f}, mean when active {vals.mean():.2f}</div>"
        f"<div style='font-size:12px'>theme lift (share of firings / share of tokens): {mix_html}</div>"
    )
    left = (
        _hist(vals, i)
        + "<div style='font-size:12px'><b>logit weights</b></div>"
        + logits.to_html(index=False)
    )
    right = (
        "<b>top activations</b> (no two overlapping; context 10 tokens before, 4 after)"
        + _examples(tokenizer, store, top, vmax)
        + "<b>sampled across activation bands</b>"
        + _examples(tokenizer, store, [e for _, e in quant], vmax, [b for b, _ in quant])
    )
    body = (
        "<table style='width:100%;max-width:100%;table-layout:auto'><tr>"
        f"<td style='vertical-align:top;text-align:left;width:300px'>{left}</td>"
        f"<td style='vertical-align:top;text-align:left;{WRAP_STYLE}'>{right}</td></tr></table>"
    )
    report = "<b>the report's view: top 5 texts by max activation</b>" + texts.to_html(index=False)
    return (
        f"<div style='border:1px solid #ccc;padding:6px;margin:6px 0;max-width:100%;box-sizing:border-box;"
        f"overflow-wrap:anywhere'>{head}{body}{report}</div>"
    )


def browser_orders(table: pd.DataFrame, min_fires: int = 100) -> dict[str, pd.Index]:
    """The feature browser's orders (caption -> feature ids, first shown first). The theme-lift order
    keeps only features firing at least ``min_fires`` times: a feature that fired once on a theme's
    token has the largest possible lift (1 / that theme's share of tokens) and says nothing."""
    min_fires = as_count(min_fires, "min_fires")
    enough = table[table["count"] >= min_fires]

    def by(col: str, df: pd.DataFrame = table) -> pd.Index:
        return df[col].sort_values(ascending=False, kind="stable").index

    return {
        "density (densest first)": by("density"),
        f"theme lift, features firing ≥ {min_fires:,} times (most theme-specific first)": by(
            "theme_lift", enough
        ),
        "max activation (strongest first)": by("max_act"),
    }


def feature_browser(table: pd.DataFrame, render, min_fires: int = 100):
    """A dropdown of orders (:func:`browser_orders`) and a rank slider; shows ``render(feature)`` (an
    HTML string, e.g. a dashboard) of the feature at that rank, with the saved-state line under it."""
    import ipywidgets as widgets

    from helpers.viz.widgets import FULL_WIDTH, boxed, dismiss, saved_state_note

    orders = {k: v for k, v in browser_orders(table, min_fires).items() if len(v)}
    if not orders:
        raise ValueError("the table has no features to browse")
    order_box = widgets.Dropdown(options=list(orders), description="sort by")
    order_box.layout.width = "60%"
    rank = widgets.IntSlider(
        value=0, min=0, max=len(orders[order_box.value]) - 1, description="rank", continuous_update=False
    )
    out = widgets.HTML()
    out.layout.max_width = FULL_WIDTH
    note = saved_state_note()
    state = {"quiet": False}

    def update(_=None) -> None:
        i = int(orders[order_box.value][rank.value])
        out.value = f"<p>rank {rank.value} → feature {i}</p>" + render(i)

    def on_rank(_=None) -> None:
        if not state["quiet"]:
            dismiss(note)
            update()

    def on_order(_=None) -> None:
        dismiss(note)
        state["quiet"] = True
        try:
            rank.value = 0
            rank.max = len(orders[order_box.value]) - 1
        finally:
            state["quiet"] = False
        update()

    order_box.observe(on_order, names="value")
    rank.observe(on_rank, names="value")
    update()
    return boxed([widgets.HBox([order_box, rank], layout=widgets.Layout(flex_flow="row wrap")), out], note)
