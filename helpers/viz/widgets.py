"""Small ipywidgets wrappers. Every widget in the workbook is preceded by a static render of
its default view, so the notebooks read on GitHub and under nbval, where widgets do not run."""

from __future__ import annotations

from collections.abc import Callable

import matplotlib.pyplot as plt


def int_slider_view(
    render: Callable[[int], plt.Figure], lo: int, hi: int, value: int, description: str = "layer"
):
    """A slider over ``lo..hi`` that shows ``render(value)`` (a matplotlib figure) below it."""
    import ipywidgets as widgets
    from IPython.display import display

    slider = widgets.IntSlider(
        value=value, min=lo, max=hi, step=1, description=description, continuous_update=False
    )
    out = widgets.Output()

    def show(change=None) -> None:
        with out:
            out.clear_output(wait=True)
            fig = render(slider.value)
            display(fig)
            plt.close(fig)

    slider.observe(show, names="value")
    show()
    return widgets.VBox([slider, out])


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
