import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from helpers.analysis.features import encode_store  # noqa: E402
from helpers.analysis.splitting import compare_widths, random_baseline  # noqa: E402
from helpers.config import SAEConfig  # noqa: E402
from helpers.data.store import Store  # noqa: E402
from helpers.sae.model import TopKSAE  # noqa: E402
from helpers.viz import splitting_view as sv  # noqa: E402
from tests.conftest import VOCAB, make_tokenizer  # noqa: E402

D = 8


def tiny_saes():
    """An 8-feature SAE and a 16-feature one in which small feature 0 splits into rows 0 and 1."""
    small = TopKSAE(SAEConfig(d_in=D, expansion=1, k=2, seed=0))
    large = TopKSAE(SAEConfig(d_in=D, expansion=2, k=2, seed=1))
    g = torch.Generator().manual_seed(2)
    u = small.W_dec.data[0]
    for j in (0, 1):
        v = u + 0.4 * torch.randn(D, generator=g)
        large.W_dec.data[j] = v / v.norm()
    with torch.no_grad():
        large.W_enc.copy_(large.W_dec.T)
    return small, large


def context():
    rng = np.random.default_rng(0)
    n_docs, per_doc = 6, 10
    n = n_docs * per_doc
    store = Store(
        acts=rng.normal(size=(n, D)).astype(np.float32),
        token_ids=rng.integers(3, VOCAB, size=n).astype(np.int32),
        doc_ids=np.repeat(np.arange(n_docs), per_doc).astype(np.int32),
        positions=np.tile(np.arange(1, per_doc + 1), n_docs).astype(np.int32),
        layer=1,
        model="tiny",
    )
    themes = ["a", "b"]
    docs = pd.DataFrame(
        {
            "doc_id": range(n_docs),
            "theme": [themes[i % 2] for i in range(n_docs)],
            "text": ["the city"] * n_docs,
        }
    )
    theme_of_row = docs.set_index("doc_id").loc[store.doc_ids, "theme"].to_numpy()
    W_U = torch.randn(VOCAB, D)
    return sv.DashboardContext(store, docs, make_tokenizer(), W_U, theme_of_row, themes)


def views():
    small, large = tiny_saes()
    ctx = context()
    sm = sv.SAEView("x1", small, encode_store(small, ctx.store.acts))
    lg = sv.SAEView("x2", large, encode_store(large, ctx.store.acts), labels={0: "city words"})
    return sm, lg, ctx


def test_split_html_shows_the_feature_and_its_nearest_directions():
    small, large, ctx = views()
    page = sv.split_html(0, small, [large], ctx, n=2)
    assert "feature 0 of x1" in page and "x2: nearest 2 of" in page and "(2 in all with cos &ge; 0.5)" in page
    assert page.count("(child)") == 2 and "city words" in page  # the wider SAE's label is shown
    assert plt.get_fignums() == []  # every histogram figure is closed
    with pytest.raises(ValueError, match="out of range"):
        sv.split_html(99, small, [large], ctx)


def test_the_head_counts_every_child_not_only_those_shown():
    small, large, ctx = views()
    page = sv.split_html(0, small, [large], ctx, n=1)  # one shown, two children in x2
    assert page.count("(child)") == 1 and "x2: nearest 1 of 16 (2 in all with cos &ge; 0.5)" in page


def test_picker_is_html_and_picking_a_feature_updates_it():
    import ipywidgets as widgets

    small, large, ctx = views()
    box = sv.feature_picker({"feature 0 (2 children)": 0, "feature 1": 1}, lambda i: f"<p>feature {i}</p>")
    pick, out, note = box.children
    assert isinstance(pick, widgets.Dropdown) and isinstance(out, widgets.HTML)
    assert not any(isinstance(c, widgets.Output) for c in box.children)
    assert out.value == "<p>feature 0</p>"
    pick.value = 1
    assert out.value == "<p>feature 1</p>"
    real = sv.feature_picker([0, 1], lambda i: sv.split_html(i, small, [large], ctx))
    before = real.children[1].value
    real.children[0].value = 1
    assert real.children[1].value != before and "feature 1 of x1" in real.children[1].value
    drawn = sv.feature_picker([3, 1], lambda i: f"<p>{i}</p>", first_html="<p>already drawn</p>")
    assert drawn.children[1].value == "<p>already drawn</p>"
    drawn.children[0].value = 1
    assert drawn.children[1].value == "<p>1</p>"
    with pytest.raises(ValueError, match="no features to pick"):
        sv.feature_picker([], str)


def test_static_figure_has_both_panels():
    small, large = tiny_saes()
    W_s, W_l = small.W_dec.detach(), large.W_dec.detach()
    s = compare_widths(W_s, {"x1 again": W_s.flip(0), "x2": W_l}, small="x1")
    fig = sv.plot_splitting(s, random_baseline(W_l, 50))
    assert len(fig.axes) == 2 and fig.axes[0].get_xscale() == "log"
    assert len(fig.axes[0].lines) == 2 and len(fig.axes[1].patches) > 0
    plt.close(fig)
    with pytest.raises(ValueError, match="compare_widths"):
        sv.plot_splitting(pd.DataFrame({"x": [1]}))
