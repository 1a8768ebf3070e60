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
    """The token as HTML: spaces stay ordinary (breakable) spaces, so a row of tokens wraps at the
    output area's width instead of running past it; a line break shows as ⏎ and breaks the line."""
    return html.escape(tok).replace("\n", "⏎<br>") or "∅"


# token rows wrap inside their box (never wider than the output area): no &nbsp; runs, no nowrap
WRAP_STYLE = "white-space:normal;overflow-wrap:anywhere;word-break:normal;max-width:100%"


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
        f'<div style="font-family:monospace;font-size:12px;line-height:1.7;{WRAP_STYLE}">'
        + "".join(spans)
        + "</div>"
    )
