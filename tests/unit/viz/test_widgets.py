import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from helpers.viz.widgets import int_slider_view  # noqa: E402


def _fig(i: int):
    fig, ax = plt.subplots(figsize=(2, 2))
    ax.plot([0, i])
    return fig


def test_slider_view_draws_into_an_image_not_an_output_widget():
    """An Output widget made nbclient send on the shell socket mid-cell and lose the execute_reply
    (a headless `make run` sat in notebook 01's slider cell until the cell timeout)."""
    import ipywidgets as widgets

    box = int_slider_view(_fig, 0, 3, 1)
    slider, image, note = box.children
    assert isinstance(image, widgets.Image) and not any(isinstance(c, widgets.Output) for c in box.children)
    first = image.value
    assert first[:8] == b"\x89PNG\r\n\x1a\n"
    slider.value = 3
    assert image.value != first and image.value[:4] == b"\x89PNG"
    assert plt.get_fignums() == []  # every rendered figure is closed
