"""Render tokens as HTML, each shaded by a value (an activation norm, a feature's activation).

Used for the document viewer of notebook 02 and the feature dashboards of notebook 04.
"""

from __future__ import annotations

import html

import numpy as np


def token_strings(tokenizer, token_ids) -> list[str]:
    """Each token as the text it stands for (spaces kept, so the row reads as the text)."""
    return [tokenizer.decode([int(t)]) for t in token_ids]


def _escape(tok: str) -> str:
    return html.escape(tok).replace("\n", "⏎<br>").replace(" ", "&nbsp;") or "∅"


def tokens_html(
    tokens: list[str],
    values,
    vmax: float | None = None,
    rgb: tuple[int, int, int] = (255, 120, 0),
    label: str = "value",
) -> str:
    """A ``<div>`` of ``tokens``, each with a background whose opacity is ``value / vmax``
    (clipped to 0..1) and a tooltip with the value."""
    values = np.asarray(values, dtype=float)
    if len(tokens) != len(values):
        raise ValueError(f"got {len(tokens)} tokens but {len(values)} values; pass one value per token")
    top = float(vmax) if vmax is not None else float(np.nanmax(np.abs(values))) if len(values) else 1.0
    top = top if top > 0 else 1.0
    r, g, b = rgb
    spans = []
    for tok, v in zip(tokens, values, strict=True):
        a = float(np.clip(v / top, 0.0, 1.0))
        spans.append(
            f'<span title="{label} {v:.3g}" style="background:rgba({r},{g},{b},{a:.2f});'
            f'border-radius:2px;padding:0 1px">{_escape(tok)}</span>'
        )
    return (
        '<div style="font-family:monospace;font-size:12px;line-height:1.7;white-space:normal">'
        + "".join(spans)
        + "</div>"
    )
