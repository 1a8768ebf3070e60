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
from helpers.viz.tokens import token_strings, tokens_html


def _fig_png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80, bbox_inches="tight")
    plt.close(fig)
    return f'<img src="data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}"/>'


def _hist(vals: np.ndarray, i: int) -> str:
    fig, ax = plt.subplots(figsize=(3.6, 2.0))
    ax.hist(vals, bins=40, color="darkorange")
    ax.set_title(f"feature {i}: non-zero activations", fontsize=8)
    ax.tick_params(labelsize=7)
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
        f"<table><tr><td style='vertical-align:top;width:300px'>{left}</td>"
        f"<td style='vertical-align:top'>{right}</td></tr></table>"
    )
    report = "<b>the report's view: top 5 texts by max activation</b>" + texts.to_html(index=False)
    return f"<div style='border:1px solid #ccc;padding:6px;margin:6px 0'>{head}{body}{report}</div>"
