"""Issue 29: every view of notebooks 02, 04 and 06 fits a ~990 px output area (token text wraps,
side-by-side views stack, figures are drawn <= 9 in wide at >= 8 pt), slow widget actions show a busy
line before the work, and a saved (kernel-less) widget says that it shows the default view."""

import re

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from helpers.data.store import Store  # noqa: E402
from helpers.viz import attribution_view as AV  # noqa: E402
from helpers.viz import dashboard as DB  # noqa: E402
from helpers.viz import splitting_view as sv  # noqa: E402
from helpers.viz import steering_plots as SP  # noqa: E402
from helpers.viz import widgets as W  # noqa: E402
from helpers.viz.data_plots import plot_store_overview, plot_top_words  # noqa: E402
from helpers.viz.neuron_plots import plot_unit_scores, side_by_side  # noqa: E402
from helpers.viz.tokens import tokens_html  # noqa: E402
from tests.unit.viz.test_splitting_view import views  # noqa: E402

MAX_INCHES, MIN_POINTS = 9.0, 8.0


def assert_fits(fig) -> None:
    """At most 9 in wide (~990 px at save_figure's 110 dpi) and no visible text under 8 pt."""
    width = fig.get_size_inches()[0]
    assert width <= MAX_INCHES + 1e-9, f"{width:.1f} in wide"
    fig.canvas.draw()
    small = [
        (t.get_text(), t.get_fontsize())
        for t in fig.findobj(matplotlib.text.Text)
        if t.get_visible() and t.get_text().strip() and t.get_fontsize() < MIN_POINTS
    ]
    assert not small, small
    plt.close(fig)


# -- 1. token text wraps; side-by-side views stack ------------------------------------------------


def test_token_rows_wrap_at_the_output_width():
    page = tokens_html(["Hello", " world", "  two", "\n", " spaces"], [1, 2, 3, 0, 1])
    assert "&nbsp;" not in page  # spaces are breakable: a row of tokens wraps
    assert "white-space:normal" in page and "overflow-wrap:anywhere" in page and "max-width:100%" in page
    assert " world" in page and "⏎<br>" in page


def test_splitting_view_stacks_its_columns_and_fits_the_area():
    small, large, ctx = views()
    page = sv.split_html(0, small, [large], ctx, n=2)
    assert "flex-direction:column" in page and not re.search(r"min-width:\d{3,}px", page)
    assert "&nbsp;" not in page
    box = sv.feature_picker([0, 1], lambda i: f"<p>{i}</p>")
    assert box.layout.width == "100%" and box.layout.max_width == "100%"
    plt.close("all")


def test_side_by_side_panels_wrap_instead_of_scrolling():
    page = side_by_side(["<p>a</p>", "<p>b</p>", "<p>c</p>"])
    assert "flex-wrap:wrap" in page and "overflow-x:auto" not in page


# -- 1. the feature browser's theme-lift order ----------------------------------------------------


def feature_table():
    return pd.DataFrame(
        {
            "count": [1, 500, 2, 300, 120],
            "density": [0.0, 0.02, 0.0, 0.01, 0.005],
            "theme_lift": [5.0, 1.5, 4.9, 2.5, 1.1],  # the once-fired feature has the largest lift
            "max_act": [3.0, 1.0, 2.0, 4.0, 0.5],
        }
    )


def test_theme_lift_order_leaves_out_features_that_fired_a_few_times():
    orders = DB.browser_orders(feature_table(), min_fires=100)
    (caption,) = [k for k in orders if k.startswith("theme lift")]
    assert "≥ 100" in caption
    assert list(orders[caption]) == [3, 1, 4]
    assert list(orders["density (densest first)"]) == [1, 3, 4, 0, 2]


def test_feature_browser_resets_the_rank_when_the_order_changes():
    shown = []
    box = DB.feature_browser(feature_table(), lambda i: shown.append(i) or f"<p>f{i}</p>", min_fires=100)
    (order_box, rank), out, note = box.children[0].children, box.children[1], box.children[2]
    assert W.SAVED_NOTE in note.value and "feature 1" in out.value
    rank.value = 4
    theme = next(o for o in order_box.options if o.startswith("theme lift"))
    order_box.value = theme
    assert rank.max == 2 and rank.value == 0 and "feature 3" in out.value and note.value == ""
    assert shown[-1] == 3 and shown.count(3) == 1  # one render per change


# -- 2. busy lines and the generator's prompt -----------------------------------------------------


def test_generator_shows_a_busy_line_before_the_work_and_the_prompt_with_its_text():
    seen = {}

    def generate(prompt, feature, strength):
        seen["during"] = box.children[2].value  # what the widget shows while the work runs
        seen["args"] = (prompt, feature, strength)
        return " about rain & <music>"

    box = SP.generator_widget(generate, {"theme feature: 7": 7, "other: 9": 9}, "I think that")
    (_, level), (_, go) = box.children[0].children, box.children[1].children
    level.value = 2.5
    go.click()
    assert "generating" in seen["during"] and "about rain" not in seen["during"]
    assert seen["args"] == ("I think that", 7, 2.5)
    out = box.children[2].value
    assert "I think that" in out and "about rain &amp; &lt;music&gt;" in out
    assert out.index("I think that") < out.index("about rain")
    assert re.search(r'<span style="color:#777"[^>]*>I think that</span><b', out)  # prompt styled apart
    assert not go.disabled and box.children[-1].value == ""


def test_attribution_widget_shows_a_busy_line_then_a_new_view(monkeypatch):
    seen = []

    def attribute(model, tokenizer, sae, layer, prompt, target=None):
        seen.append(box.children[2].value)
        return "result"

    monkeypatch.setattr(AV, "top_next_tokens", lambda *a: [(5, " rain", 0.4), (6, " sun", 0.2)])
    monkeypatch.setattr(AV, "attribute_features", attribute)
    monkeypatch.setattr(AV, "ablation_effects", lambda *a, n: None)
    monkeypatch.setattr(AV, "attribution_html", lambda res, labels, measured, n: "<table>the view</table>")
    box = None
    box = AV.attribution_widget(None, None, None, 1, prompt="p", initial="<table>the view</table>")
    pick, _, go = box.children[1].children
    out, note = box.children[2], box.children[3]
    assert out.value == "<table>the view</table>" and W.SAVED_NOTE in note.value
    go.click()
    assert "attributing" in seen[-1] and "&#x27; rain&#x27;" in seen[-1]  # busy before the slow work
    assert out.value != "<table>the view</table>" and out.value.endswith("<table>the view</table>")
    assert "attribution 1" in out.value and "same table" in out.value and note.value == ""


# -- 3. the saved-state line under every widget ----------------------------------------------------


def _fig(i):
    fig, ax = plt.subplots(figsize=(2, 2))
    ax.plot([0, i])
    return fig


@pytest.mark.parametrize("kind", ["int", "html", "picker"])
def test_every_widget_says_what_its_saved_view_is_until_moved(kind):
    if kind == "int":
        box = W.int_slider_view(_fig, 0, 3, 1)
    elif kind == "html":
        box = W.html_slider_view(lambda i: f"<p>{i}</p>", 0, 3, 1)
    else:
        box = sv.feature_picker([0, 1], lambda i: f"<p>{i}</p>")
    note = box.children[-1]
    assert W.SAVED_NOTE in note.value and box.layout.width == "100%"
    box.children[0].value = 1 if kind == "picker" else 2
    assert note.value == ""


# -- 1. figures drawn at the size they are shown ---------------------------------------------------


def test_notebook_02_figures_fit():
    themes = ["Fitness & Health", "Technology & AI", "Society & Culture", "Environment", "Media"]
    table = pd.DataFrame(
        [{"theme": t, "rank": r, "word": f"word{r}", "count": 10 - r} for t in themes for r in range(8)]
    )
    assert_fits(plot_top_words(table))
    rng = np.random.default_rng(0)
    n = 200
    store = Store(
        acts=rng.normal(size=(n, 4)).astype(np.float32),
        token_ids=rng.integers(0, 50, n).astype(np.int32),
        doc_ids=np.repeat(np.arange(10), 20).astype(np.int32),
        positions=np.tile(np.arange(1, 21), 10).astype(np.int32),
        layer=3,
        model="tiny",
    )
    docs = pd.DataFrame({"doc_id": range(10), "theme": [themes[i % 5] for i in range(10)]})
    assert_fits(plot_store_overview(store, docs))


def test_notebook_04_and_06_figures_fit():
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"eval_fires": rng.integers(1, 9, 40), "token_auroc": rng.uniform(0.4, 1, 40)}).assign(
        token_auroc_random=0.5
    )
    assert_fits(plot_unit_scores({"residual dimension": df, "MLP neuron": df, "SAE feature, matched": df}))
    paths = [
        {"removed": np.linspace(0, 1, 6), "measured": rng.normal(size=6), "attributed": 0.3,
         "title": f"prompt {k}, ' the': feature 12345 (sign flip of a long name)"}
        for k in range(3)
    ]  # fmt: skip
    assert_fits(AV.ablation_paths_plot(paths))
    rows = [
        {"feature": f, "method": m, "strength": s, "theme score": 0.1 * s, "score low": 0.0,
         "score high": 1.0, "perplexity": 10 + s, "ppl low": 9 + s, "ppl high": 11 + s}
        for f in range(5) for m in ("clamp", "difference of means") for s in (1.0, 2.0, 4.0)
    ]  # fmt: skip
    assert_fits(SP.plot_tradeoff(pd.DataFrame(rows), {f: "Media" for f in range(5)}))
