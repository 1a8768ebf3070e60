import torch

from helpers.sae.batchtopk import BatchTopKSAE, batch_topk
from helpers.sae.model import make_sae
from helpers.sae.train import train_flops_per_token
from tests.unit.sae.arch_support import (
    fold_scale_keeps_outputs,
    round_trip_keeps_outputs,
    trains_and_mse_falls,
)
from tests.unit.sae.test_model import cfg


def test_batch_topk_keeps_k_per_token_on_average_not_each():
    pre = torch.tensor([[5.0, 4.0, 3.0, -1.0], [0.5, 0.1, 0.2, 0.3]])
    f = batch_topk(pre, 2)  # 4 of 8 kept: all from the first token
    assert (f[0] == torch.tensor([5.0, 4.0, 3.0, 0.0])).all() and (f[1, 0] == 0.5) and f[1, 1:].eq(0).all()


def test_trains_with_mean_l0_k_and_a_threshold_that_keeps_l0_near_k(tmp_path):
    sae, log, c = trains_and_mse_falls("batchtopk")
    assert isinstance(sae, BatchTopKSAE) and all(v == c.k for v in log.l0)  # exactly k per token on average
    from tests.unit.sae.test_model import sparse_data

    x = torch.as_tensor(sparse_data())  # the training tokens (another seed draws other directions)
    with torch.no_grad():
        l0 = float((sae.encode(x) > 0).sum(1).float().mean())
        one = sae.encode(x[:1])
    assert 0.7 * c.k < l0 < 1.3 * c.k  # the inference threshold keeps L0 near k
    torch.testing.assert_close(one, sae.encode(x)[:1])  # a token's latents do not depend on its batch
    round_trip_keeps_outputs(sae, tmp_path)


def test_fold_scale_keeps_outputs():
    fold_scale_keeps_outputs("batchtopk")


def test_aux_k_gives_dead_latents_gradient():
    sae = make_sae(cfg("batchtopk"))
    x = torch.randn(64, sae.cfg.d_in)
    dead = torch.zeros(sae.cfg.d_sae, dtype=torch.bool)
    dead[:10] = True
    stats = sae.loss(x, dead, 0, 10)
    stats.loss.backward()
    assert float(stats.sparsity.detach()) > 0 and sae.W_dec.grad[:10].abs().sum() > 0


def test_flops_are_five_dense_products():
    c = cfg("batchtopk")
    assert train_flops_per_token(c) == 10 * c.d_in * c.d_sae
