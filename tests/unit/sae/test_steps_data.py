import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
import torch

from helpers.sae.metrics import dead_fraction
from helpers.sae.model import make_sae
from helpers.sae.steps_data import steps_and_data
from helpers.viz.sae_plots import plot_steps_data
from tests.unit.sae.test_model import cfg, sparse_data


def test_the_two_curves_share_budgets_and_the_data_curve_keeps_the_passes(tmp_path):
    x = sparse_data(n=2048)
    docs = np.repeat(np.arange(64), 32)
    evals = {"themed": sparse_data(n=256, seed=1), "corpus": sparse_data(n=256, seed=2)}
    c = cfg(steps=32)
    table = steps_and_data(c, x, docs, evals, "k", tmp_path, shares=(1 / 4, 1 / 2))
    assert list(table["steps"]) == [8, 8, 16, 16, 32]
    kept = table.iloc[-1]
    equal = table[table["curve"] == "share, equal passes"]
    np.testing.assert_allclose(equal["passes"], kept["passes"], rtol=0.05)  # whole documents: about equal
    assert (table[table["curve"] == "all rows"]["tokens"] == 2048).all()
    assert {"fvu_themed", "fvu_corpus", "fvu_train"} <= set(table.columns)
    assert table[["fvu_themed", "fvu_corpus"]].notna().all().all()
    again = steps_and_data(c, x, docs, evals, "k", tmp_path, shares=(1 / 4, 1 / 2))  # every run reused
    np.testing.assert_allclose(again["fvu_themed"], table["fvu_themed"])
    plot_steps_data(table)


def test_rows_and_document_ids_must_match(tmp_path):
    with pytest.raises(ValueError, match="one per row"):
        steps_and_data(cfg(), sparse_data(n=64), np.arange(10), {}, "k", tmp_path)


def test_dead_fraction_counts_latents_that_never_fire():
    sae = make_sae(cfg(k=2))
    x = sparse_data(n=512)
    f = sae.encode(torch.as_tensor(x)).detach().numpy()
    assert dead_fraction(sae, x, batch_size=100) == pytest.approx(float(((f > 0).sum(0) == 0).mean()))
