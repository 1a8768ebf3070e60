"""Notebook 06's measured trade-off (theme score against fluency cost, with 95% intervals) and its
steered-generation widget."""

from __future__ import annotations

import html
import time
from collections.abc import Callable, Mapping

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from helpers.viz.tokens import WRAP_STYLE
from helpers.viz.widgets import FULL_WIDTH, boxed, busy_html, dismiss, saved_state_note

STYLES = {"clamp": "o-", "difference of means": "s--"}


def plot_tradeoff(summary: pd.DataFrame, themes: dict[int, str]):
    """One panel per feature: perplexity (x, log) against theme score (y) for each method and strength,
    error bars the bootstrap 95% intervals of :func:`helpers.analysis.steering.summarize_steering`."""
    feats = list(dict.fromkeys(summary["feature"]))
    cols = min(2, len(feats))  # two panels to a row: 9 in (~990 px at 110 dpi), the width it is shown at
    rows = -(-len(feats) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.5 * cols, 3.6 * rows), squeeze=False)
    for ax in axes.flat[len(feats) :]:
        ax.set_visible(False)
    for ax, f in zip(axes.flat, feats, strict=False):
        sub = summary[summary["feature"] == f]
        for method, m in sub.groupby("method", sort=False):
            m = m.sort_values("strength")
            xerr = np.vstack([m["perplexity"] - m["ppl low"], m["ppl high"] - m["perplexity"]])
            yerr = np.vstack([m["theme score"] - m["score low"], m["score high"] - m["theme score"]])
            style = STYLES.get(method, "k*")
            label = f"clamp feature {f}" if method == "clamp" else method
            ax.errorbar(
                m["perplexity"], m["theme score"], xerr=xerr, yerr=yerr, fmt=style, capsize=3, label=label
            )
            if method in STYLES:
                for _, r in m.iterrows():
                    ax.annotate(
                        f"{r['strength']:g}x",
                        (r["perplexity"], r["theme score"]),
                        fontsize=8,
                        xytext=(4, 4),
                        textcoords="offset points",
                    )
        ax.set_xscale("log")
        ax.set_xlabel("perplexity, unsteered model (fluency cost)", fontsize=9)
        ax.set_ylabel(f"share of {themes.get(f, '?')} words", fontsize=9)
        ax.tick_params(labelsize=8)
        ax.set_title(f"feature {f}: effect against cost (95% intervals)", fontsize=9)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def generation_html(prompt: str, continuation: str, caption: str = "") -> str:
    """The prompt (grey) followed by the model's continuation (bold), wrapping at the output area's width."""
    head = f'<div style="color:#555;font-size:12px">{html.escape(caption)}</div>' if caption else ""
    return (
        f'{head}<div style="{WRAP_STYLE};white-space:pre-wrap;font-size:13px;line-height:1.5">'
        f'<span style="color:#777" title="prompt">{html.escape(prompt)}</span>'
        f'<b title="continuation">{html.escape(continuation)}</b></div>'
    )


def generator_widget(
    generate: Callable[[str, int, float], str],
    features: Mapping[str, int],
    prompt: str,
    strength: float = 5.0,
    lo: float = -5.0,
    hi: float = 15.0,
    step: float = 0.5,
):
    """A feature dropdown (``features``: caption -> id), a clamp-strength slider (multiples of the
    feature's max activation), a prompt box and a button. ``generate(prompt, feature, strength)``
    returns the continuation; the output shows a busy line *before* the work starts (a generation
    takes seconds) and then the prompt with its continuation, prompt in grey, continuation in bold."""
    import ipywidgets as widgets

    if not features:
        raise ValueError("give at least one feature to steer with")
    feat = widgets.Dropdown(options=list(features.items()), description="feature")
    level = widgets.FloatSlider(value=strength, min=lo, max=hi, step=step, description="x max act")
    box = widgets.Text(value=prompt, description="prompt")
    box.layout.width = "60%"
    go = widgets.Button(description="generate")
    out = widgets.HTML('<p style="color:#555">pick a feature and a strength, then press <b>generate</b></p>')
    out.layout.max_width = FULL_WIDTH
    note = saved_state_note()

    def on_go(_=None) -> None:
        dismiss(note)
        what = f"feature {feat.value} clamped at {level.value:g} x its max activation"
        out.value = busy_html(f"generating with {what} (a few seconds)")
        go.disabled = True
        t0 = time.perf_counter()
        try:
            text = generate(box.value, feat.value, float(level.value))
        except ValueError as err:
            out.value = f'<p style="color:#b2182b">{html.escape(str(err))}</p>'
            return
        finally:
            go.disabled = False
        out.value = generation_html(box.value, text, f"{what}, {time.perf_counter() - t0:.1f} s")

    go.on_click(on_go)
    rows = [
        widgets.HBox([feat, level], layout=widgets.Layout(flex_flow="row wrap")),
        widgets.HBox([box, go], layout=widgets.Layout(flex_flow="row wrap")),
        out,
    ]
    return boxed(rows, note)
