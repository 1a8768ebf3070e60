"""The five architectures side by side: synthetic runs scored against known features, L0 matching."""

import numpy as np
import pytest

from helpers.config import SAEConfig
from helpers.sae import architectures as A
from helpers.sae.synthetic import make_synthetic


@pytest.fixture(scope="module")
def data():
    return make_synthetic(1024, 24, 12, hierarchy={0: (5, 6)}, child_prob=0.6, seed=0)


def test_synthetic_runs_score_every_run_against_the_true_features(data):
    base = SAEConfig(d_in=12, expansion=2, steps=12, batch_size=128, aux_k=8, dead_tokens=1024)
    table, saes = A.synthetic_runs(base, data, {"topk": [2, 3], "l1": [1.0]}, seeds=(0, 1))
    assert len(table) == 6 and len(saes) == 6
    assert set(table["architecture"]) == {"TopK", "L1"}
    topk = table[table["architecture"] == "TopK"]
    assert np.allclose(topk.groupby("setting")["L0"].mean().to_numpy(), [2, 3], atol=1e-6)  # TopK keeps k
    assert table["MCC"].between(-1, 1).all() and np.isfinite(table["FVU"]).all()
    # the two seeds give two different runs
    a, b = saes["topk", 2.0, 0], saes["topk", 2.0, 1]
    assert not np.allclose(a.W_dec.detach().numpy(), b.W_dec.detach().numpy())


def test_a_plan_without_architectures_is_refused(data):
    with pytest.raises(ValueError, match="names no architecture"):
        A.synthetic_runs(SAEConfig(d_in=12, expansion=2, steps=2), data, {})


def test_with_sparsity_sets_k_or_the_coefficient():
    assert A.with_sparsity(SAEConfig(architecture="batchtopk"), 7).k == 7
    assert A.with_sparsity(SAEConfig(architecture="jumprelu"), 0.123456).jumprelu_l0_coefficient == 0.123
    assert A.with_sparsity(SAEConfig(architecture="l1"), 3).l1_coefficient == 3.0
    assert A.sparsity_of(SAEConfig(architecture="l1", l1_coefficient=2.5)) == 2.5
    with pytest.raises(ValueError):
        A.with_sparsity(SAEConfig(architecture="topk"), 2.5)  # k must be whole


def test_match_l0_sets_k_at_once_and_searches_a_coefficient():
    calls = []

    def l0_of(cfg):  # a stand-in run: L0 = 64 / λ
        calls.append(cfg.l1_coefficient)
        return 64.0 / cfg.l1_coefficient

    cfg, probes = A.match_l0(SAEConfig(architecture="topk"), 32, l0_of)
    assert cfg.k == 32 and calls == []  # no run needed
    cfg, probes = A.match_l0(SAEConfig(architecture="l1"), 32, l0_of, start=8.0, tries=2)
    assert probes[0].lam == 8.0 and probes[0].l0 == 8.0
    assert abs(cfg.l1_coefficient - 2.0) < 0.01  # the secant finds λ = 2 (L0 32) in one step
