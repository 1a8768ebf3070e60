"""A feature's dashboard takes its id through the shared guard: 3.0 is feature 3, -1 and 3.5 are refused."""

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from helpers.config import SAEConfig  # noqa: E402
from helpers.sae.model import make_sae  # noqa: E402
from helpers.viz.dashboard import dashboard_html  # noqa: E402
from tests.conftest import VOCAB, make_tokenizer  # noqa: E402
from tests.unit.analysis.test_features import index_from_dense, tiny_store  # noqa: E402


def test_a_whole_float_feature_id_draws_the_int_ones_dashboard():
    """dashboard_html(3.0, ...) was a raw IndexError (index.counts[3.0])."""
    store = tiny_store()
    f = np.zeros((len(store), 4), np.float32)
    f[[1, 6, 9, 13], 3] = [1.0, 2.0, 3.0, 4.0]
    index = index_from_dense(f)
    docs = pd.DataFrame({"doc_id": [0, 1, 2], "theme": ["a", "b", "a"], "text": ["x", "y", "z"]})
    theme_of_row = np.where(store.doc_ids == 1, "b", "a")
    sae = make_sae(SAEConfig(architecture="topk", d_in=4, expansion=1, k=2))
    W_U = torch.randn(VOCAB, 4, generator=torch.Generator().manual_seed(0))
    args = (index, store, docs, make_tokenizer(), sae, W_U, theme_of_row, ["a", "b"])
    assert dashboard_html(3.0, *args) == dashboard_html(3, *args)
    for bad, match in ((-1, "feature -1 is out of range"), (3.5, "feature 3.5 is not a whole number")):
        with pytest.raises(ValueError, match=match):
            dashboard_html(bad, *args)
