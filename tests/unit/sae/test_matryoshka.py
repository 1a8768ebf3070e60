import pytest
import torch

from helpers.config import SAEConfig
from helpers.sae.matryoshka import MatryoshkaSAE
from helpers.sae.model import make_sae
from tests.unit.sae.arch_support import (
    fold_scale_keeps_outputs,
    round_trip_keeps_outputs,
    trains_and_mse_falls,
)
from tests.unit.sae.test_batchtopk import sparse_step_matches_autograd
from tests.unit.sae.test_model import cfg


def test_trains_with_mean_l0_k_and_round_trips(tmp_path):
    sae, log, c = trains_and_mse_falls("matryoshka")
    assert isinstance(sae, MatryoshkaSAE) and all(v == c.k for v in log.l0)
    round_trip_keeps_outputs(sae, tmp_path)
    back = SAEConfig(**{**c.__dict__, "matryoshka_prefixes": [0.5, 1.0]})  # a cfg.json's list
    assert back.matryoshka_prefixes == (0.5, 1.0)


def test_loss_is_the_sum_of_each_prefix_mse():
    sae = make_sae(cfg("matryoshka", matryoshka_prefixes=(0.25, 0.5, 1.0)))
    x = torch.randn(32, sae.cfg.d_in)
    with torch.no_grad():
        sae.b_dec.normal_()
        f = sae.latents(sae.pre_acts(x))
        total, mse, _ = sae.reconstruction_loss(f, x)
        want = 0.0
        for m in sae.cfg.prefix_sizes():
            want += (f[:, :m] @ sae.W_dec[:m] + sae.b_dec - x).pow(2).sum(-1).mean()
        torch.testing.assert_close(total, want)
        torch.testing.assert_close(mse, (f @ sae.W_dec + sae.b_dec - x).pow(2).sum(-1).mean())


def test_fold_scale_keeps_outputs():
    fold_scale_keeps_outputs("matryoshka")


@pytest.mark.parametrize("bad", [(), (0.5,), (0.5, 0.25, 1.0), (0.0, 1.0), (0.5, 0.5, 1.0), ("a", 1.0)])
def test_bad_prefixes_are_one_line(bad):
    with pytest.raises(ValueError, match="matryoshka_prefixes"):
        cfg("matryoshka", matryoshka_prefixes=bad).validate()


def test_key_of_other_architectures_leaves_the_new_fields_out():
    assert "matryoshka_prefixes" not in cfg("topk").key() and "jumprelu_bandwidth" not in cfg("l1").key()
    assert "matryoshka_prefixes" in cfg("matryoshka").key()


@pytest.mark.parametrize("n_dead", [0, 9, 30])
@pytest.mark.parametrize("shift", [0.0, 3.0])
def test_sparse_step_matches_dense_autograd(n_dead, shift):
    """Every prefix's gradient reaches the latents of the blocks it holds (three uneven prefixes)."""
    sparse_step_matches_autograd("matryoshka", n_dead, shift, matryoshka_prefixes=(0.2, 0.55, 1.0))
