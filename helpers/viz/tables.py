"""Tables that fit a laptop's output area (~990 px in JupyterLab with the file browser open).

pandas renders a DataFrame as one HTML table whose width is set by its longest header and cell: a dozen
columns named like ``participation_ratio`` or a column of long labels runs past the output area, and
JupyterLab then scrolls it sideways. :func:`fit_table` renders the same table with break opportunities
after underscores and slashes and wrapping allowed in every cell, at most as wide as the area."""

from __future__ import annotations

import html

import pandas as pd
from IPython.display import HTML

_WRAP = "max-width:100%;overflow-x:auto"
_CELL = "white-space:normal;overflow-wrap:anywhere;word-break:normal"


def _breakable(text: str) -> str:
    """``text`` HTML-escaped, with a break opportunity after each underscore and slash."""
    return html.escape(text).replace("_", "_<wbr>").replace("/", "/<wbr>")


def fit_table_html(df: pd.DataFrame, digits: int = 3) -> str:
    """``df`` as an HTML table (index included) that wraps its headers and cells to fit its container;
    floats rounded to ``digits``."""

    def cell(v) -> str:
        if isinstance(v, float):
            return f"{v:.{digits}f}"
        return _breakable(str(v))

    names = [str(n) if n is not None else "" for n in df.index.names]
    head = "".join(f"<th style='{_CELL}'>{_breakable(n)}</th>" for n in names)
    head += "".join(f"<th style='{_CELL}'>{_breakable(str(c))}</th>" for c in df.columns)
    rows = []
    for idx, row in zip(df.index, df.itertuples(index=False), strict=True):
        keys = idx if isinstance(idx, tuple) else (idx,)
        rows.append(
            "<tr>"
            + "".join(f"<th style='{_CELL}'>{cell(k)}</th>" for k in keys)
            + "".join(f"<td style='{_CELL}'>{cell(v)}</td>" for v in row)
            + "</tr>"
        )
    return (
        f"<div style='{_WRAP}'><table class='dataframe' style='max-width:100%;table-layout:auto'>"
        f"<thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table></div>"
    )


def fit_table(df: pd.DataFrame, digits: int = 3) -> HTML:
    """:func:`fit_table_html` for ``display``."""
    return HTML(fit_table_html(df, digits))
