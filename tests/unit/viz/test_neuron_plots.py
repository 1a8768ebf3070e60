import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402

from helpers.analysis import neurons as N  # noqa: E402
from helpers.data.store import Store  # noqa: E402
from helpers.viz.neuron_plots import plot_unit_scores, side_by_side, unit_dashboard_html  # noqa: E402


def test_score_figure_has_one_panel_per_kind():
    rng = np.random.default_rng(0)
    df = pd.DataFrame(
        {
            "eval_fires": rng.integers(0, 9, 40),
            "token_auroc": rng.uniform(0.4, 1, 40),
            "token_auroc_random": 0.5,
        }
    )
    fig = plot_unit_scores({"residual dimension": df, "MLP neuron": df, "SAE feature": df})
    assert len(fig.axes) == 3 and "residual dimension" in fig.axes[0].get_title()
    plt.close(fig)


def test_unit_dashboard_is_titled_by_its_kind():
    class Tok:
        def decode(self, ids):
            return f"t{ids[0]}"

    n = 40
    doc = np.repeat(np.arange(4), 10).astype(np.int32)
    store = Store(
        acts=np.zeros((n, 2), np.float32),
        token_ids=(np.arange(n) % 7).astype(np.int32),
        doc_ids=doc,
        positions=np.tile(np.arange(1, 11), 4).astype(np.int32),
        layer=0,
        model="tiny",
    )
    docs = pd.DataFrame({"doc_id": range(4), "theme": ["a", "b", "a", "b"], "text": ["some text"] * 4})
    acts = np.random.default_rng(0).normal(size=(n, 2)).astype(np.float32)
    u = N.dense_units(acts, np.ones(n, bool), 0.1, torch.eye(2), "residual dimension")
    page = unit_dashboard_html(
        u,
        1,
        store,
        docs,
        Tok(),
        torch.randn(7, 2),
        docs.set_index("doc_id").loc[doc, "theme"].to_numpy(),
        ["a", "b"],
    )
    assert "residual dimension 1: fires" in page and ">Feature 1<" not in page
    assert side_by_side([page, page]).count("flex:1") == 2
    plt.close("all")
