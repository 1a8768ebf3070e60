"""Small ipywidgets wrappers. Every widget in the workbook is preceded by a static render of
its default view, so the notebooks read on GitHub and under nbval, where widgets do not run."""

from __future__ import annotations

import io
from collections.abc import Callable

import matplotlib.pyplot as plt


def _png(fig: plt.Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


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

    def show(change=None) -> None:
        image.value = _png(render(slider.value))

    slider.observe(show, names="value")
    return widgets.VBox([slider, image])


def html_slider_view(
    render: Callable[[int], str], lo: int, hi: int, value: int, description: str = "document"
):
    """A slider over ``lo..hi`` that shows the HTML string ``render(value)`` below it."""
    import ipywidgets as widgets

    slider = widgets.IntSlider(
        value=value, min=lo, max=hi, step=1, description=description, continuous_update=False
    )
    out = widgets.HTML(render(value))

    def show(change=None) -> None:
        out.value = render(slider.value)

    slider.observe(show, names="value")
    return widgets.VBox([slider, out])
