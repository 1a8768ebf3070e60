"""Small ipywidgets wrappers. Every widget in the workbook is preceded by a static render of
its default view, so the notebooks read on GitHub and under nbval, where widgets do not run.

Every widget built here ends with :func:`saved_state_note`: in a committed notebook opened without
a kernel the saved widget state still moves its sliders and dropdowns, but nothing redraws the view,
so one short line says that the view is the default one; the line goes away at the first
interaction in a live kernel. Slow actions show :func:`busy_html` in the widget's own ``HTML``
output before the work starts (a trait set sends its update at once, also under nbconvert) and the
result after it."""

from __future__ import annotations

import html
import io
from collections.abc import Callable

import matplotlib.pyplot as plt

SAVED_NOTE = "the saved notebook shows the default view; run the cell to explore"
FULL_WIDTH = "100%"  # widgets are as wide as the output area, never wider


def _png(fig: plt.Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def saved_state_note():
    """The one line under a widget that says what a saved (kernel-less) view shows."""
    import ipywidgets as widgets

    return widgets.HTML(f'<span style="color:#777;font-size:11px">{html.escape(SAVED_NOTE)}</span>')


def dismiss(note) -> None:
    """Clear the saved-state line (the view now follows the controls)."""
    note.value = ""


def busy_html(what: str) -> str:
    """A grey italic line saying that ``what`` is running (shown until the result replaces it)."""
    return f'<p style="color:#555;font-style:italic">⏳ {html.escape(what)} …</p>'


def boxed(children: list, note=None):
    """``children`` and the saved-state line in a ``VBox`` as wide as the output area."""
    import ipywidgets as widgets

    box = widgets.VBox([*children, note if note is not None else saved_state_note()])
    box.layout.width = FULL_WIDTH
    box.layout.max_width = FULL_WIDTH
    return box


def int_slider_view(
    render: Callable[[int], plt.Figure], lo: int, hi: int, value: int, description: str = "layer"
):
    """A slider over ``lo..hi`` that shows ``render(value)`` (a matplotlib figure) below it.

    The figure is an ``Image`` widget's PNG, not a display inside an ``Output`` widget: headless,
    nbclient (``jupyter nbconvert --execute``) mimics an Output widget by sending a comm_msg on the
    shell socket while it awaits the cell's execute_reply there, and that raw send can swallow the
    reply's wake-up, so the cell then sits until the cell timeout (jupyter/nbclient#312)."""
    import ipywidgets as widgets

    slider = widgets.IntSlider(
        value=value, min=lo, max=hi, step=1, description=description, continuous_update=False
    )
    image = widgets.Image(value=_png(render(value)), format="png")
    image.layout.max_width = FULL_WIDTH
    note = saved_state_note()

    def show(change=None) -> None:
        dismiss(note)
        image.value = _png(render(slider.value))

    slider.observe(show, names="value")
    return boxed([slider, image], note)


def html_slider_view(
    render: Callable[[int], str], lo: int, hi: int, value: int, description: str = "document"
):
    """A slider over ``lo..hi`` that shows the HTML string ``render(value)`` below it."""
    import ipywidgets as widgets

    slider = widgets.IntSlider(
        value=value, min=lo, max=hi, step=1, description=description, continuous_update=False
    )
    out = widgets.HTML(render(value))
    out.layout.max_width = FULL_WIDTH
    note = saved_state_note()

    def show(change=None) -> None:
        dismiss(note)
        out.value = render(slider.value)

    slider.observe(show, names="value")
    return boxed([slider, out], note)
