import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from helpers.sae.superposition import Recovery, match_features, sample_hidden, train_toy  # noqa: E402
from helpers.viz.superposition_plots import plot_recovery, plot_toy_models, superposition_widget  # noqa: E402


def _recovery(toy, d_sae, seed=0):
    """A recovery from a made-up decoder (no SAE training: the figure only needs the numbers)."""
    rows = np.random.default_rng(seed).normal(size=(d_sae, toy.m))
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    cos, best = match_features(toy.W, rows)
    return Recovery(
        cosines=cos,
        latents=best,
        directions=rows,
        firing=np.r_[0.0, np.full(d_sae - 1, 0.1)],
        represented=toy.represented(),
        fvu=0.1,
    )


def test_toy_model_figure_builds():
    toys = [train_toy(sparsity=s, steps=20) for s in (0.0, 0.9)]
    fig = plot_toy_models(toys)
    assert len(fig.axes) == 6  # 2 columns x (arrows, WᵀW) + 2 colour bars
    plt.close(fig)


def test_toy_model_figure_refuses_bad_input():
    with pytest.raises(ValueError, match="at least one"):
        plot_toy_models([])
    with pytest.raises(ValueError, match="2-D"):
        plot_toy_models([train_toy(n=4, m=3, steps=5)])
    with pytest.raises(ValueError, match="titles"):
        plot_toy_models([train_toy(steps=5)], ["a", "b"])


@pytest.mark.parametrize(("n", "m"), [(5, 2), (8, 3)])
def test_recovery_figure_builds(n, m):
    toy = train_toy(n=n, m=m, sparsity=0.9, steps=20)
    h, _ = sample_hidden(toy, 300)
    fig = plot_recovery(toy, _recovery(toy, 4 * m), h)
    assert len(fig.axes) >= 2
    plt.close(fig)
    with pytest.raises(ValueError, match="hidden vectors"):
        plot_recovery(toy, _recovery(toy, 4 * m), h[:, :1])


def test_widget_redraws_into_an_image_on_each_slider():
    import ipywidgets as widgets

    box = superposition_widget(steps=20)
    sliders, image = box.children
    s_slider, d_slider = sliders.children
    assert isinstance(image, widgets.Image) and not any(isinstance(c, widgets.Output) for c in box.children)
    first = image.value
    assert first[:8] == b"\x89PNG\r\n\x1a\n"
    s_slider.value = 0.0
    second = image.value
    assert second != first and second[:4] == b"\x89PNG"
    d_slider.value = 0.6
    assert image.value not in (first, second)
    s_slider.value, d_slider.value = 0.9, 0.9  # back to the start: served from the cache
    assert image.value == first
    assert plt.get_fignums() == []  # every rendered figure is closed


def test_widget_shows_its_png_pixel_for_pixel_and_fits_a_laptop_output_area():
    box = superposition_widget(steps=20)
    _, image = box.children
    width, height = int.from_bytes(image.value[16:20], "big"), int.from_bytes(image.value[20:24], "big")
    assert image.layout.width == f"{width}px", "stretched to the output area, the PNG is blurry and too tall"
    assert width <= 990 and height <= 400, "the sliders and both panels must be in view together"
