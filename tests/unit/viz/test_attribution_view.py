import html

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from helpers.analysis import attribution as A  # noqa: E402
from helpers.config import SAEConfig  # noqa: E402
from helpers.sae.model import make_sae  # noqa: E402
from helpers.viz import attribution_view as V  # noqa: E402
from tests.conftest import tiny_llama  # noqa: E402

PROMPT = "the city and the rain is for music"


@pytest.fixture
def setup(tokenizer):
    sae = make_sae(SAEConfig(architecture="topk", d_in=32, expansion=4, k=8, seed=2)).requires_grad_(False)
    return tiny_llama(), tokenizer, sae


def test_table_lists_top_features_with_labels_and_measured_drop(setup):
    model, tok, sae = setup
    res = A.attribute_features(model, tok, sae, 1, PROMPT)
    top = res.top(4)
    f0 = int(top["feature"][0])
    html = V.attribution_html(res, {f0: "rain <b>words</b>"}, A.ablation_effects(model, sae, res, n=4), n=4)
    assert html.count("<tr>") == 5  # header + 4 features
    assert "measured drop" in html and "rain &lt;b&gt;words&lt;/b&gt;" in html and f">{f0}<" in html
    assert f"{top['attribution'][0]:+.3f}" in html and "no label" in html
    assert "measured drop" not in V.attribution_html(res, None, None, n=4)
    with pytest.raises(ValueError, match="same top features"):
        V.attribution_html(res, {}, np.zeros(3), n=4)


def test_scatter_has_one_dot_per_pair(setup):
    model, tok, sae = setup
    chk = A.attribution_vs_ablation(model, tok, sae, 1, [PROMPT, "sleep is for health"], 3)
    fig = V.attribution_scatter(chk, chk.intervals(n_boot=20))
    assert sum(len(c.get_offsets()) for c in fig.axes[0].collections) == 6
    assert "Pearson" in fig.axes[0].get_title()
    plt.close(fig)


def test_widget_refreshes_tokens_and_shows_html_on_click(setup):
    import ipywidgets as widgets

    model, tok, sae = setup
    box = V.attribution_widget(model, tok, sae, 1, {}, prompt=PROMPT, n=3, n_candidates=4)
    text, (pick, typed, go), out = box.children[0], box.children[1].children, box.children[2]
    assert isinstance(out, widgets.HTML) and not any(isinstance(c, widgets.Output) for c in box.children)
    first_options = list(pick.options)
    assert len(first_options) == 4 and "measured drop" in out.value and out.value.count("<tr>") == 4
    want = A.top_next_tokens(model, tok, "sleep is for health", 4)
    text.value = "sleep is for health"  # the dropdown follows the prompt
    assert [v for _, v in pick.options] == [i for i, _, _ in want] and pick.value == want[0][0]
    assert "sleep is for health" in out.value
    pick.value = want[1][0]
    go.click()
    assert f"logit of {html.escape(repr(want[1][1]))}" in out.value
    typed.value = "zebra"  # a token that is not in the vocabulary: a red line, no traceback
    go.click()
    assert "not one token" in out.value
    typed.value = ""
    text.value = ""
    assert pick.options == () and "non-empty" in out.value


def test_widget_can_start_from_a_static_render(setup):
    model, tok, sae = setup
    box = V.attribution_widget(model, tok, sae, 1, prompt=PROMPT, n=2, measure=False, initial="<p>static</p>")
    pick, _, go = box.children[1].children
    out = box.children[2]
    assert out.value == "<p>static</p>" and len(pick.options) == 5
    go.click()
    assert "attribution" in out.value and "measured drop" not in out.value


def test_scatter_marks_random_features_and_paths_plot(setup):
    model, tok, sae = setup
    chk = A.attribution_vs_ablation(model, tok, sae, 1, [PROMPT, "sleep is for health"], 3, n_random=2)
    fig = V.attribution_scatter(chk, chk.intervals(n_boot=20))
    assert sum(len(c.get_offsets()) for c in fig.axes[0].collections) == 10  # 6 top dots, 4 random crosses
    assert "6 top features" in fig.axes[0].get_title()
    plt.close(fig)
    fig = V.ablation_paths_plot(
        [{"removed": [0, 0.5, 1], "measured": [0, 0.2, 1.0], "attributed": 0.4, "title": "feature 3"}] * 2
    )
    assert len(fig.axes) == 2 and fig.axes[0].get_title() == "feature 3" and len(fig.axes[0].lines) == 3
    plt.close(fig)
    with pytest.raises(ValueError, match="at least one path"):
        V.ablation_paths_plot([])
