import pytest
import torch

from helpers.sae import batchtopk
from helpers.sae.batchtopk import BatchTopKSAE, batch_topk, batch_topk_pairs
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


@pytest.mark.parametrize("two_stage", [True, False])
def test_batch_topk_pairs_are_the_flat_top_in_index_order(monkeypatch, two_stage):
    """Exact in both paths: a heavy token that holds far more than 2k of the batch's top (the fallback) and
    ordinary ones (the two stages)."""
    monkeypatch.setattr(batchtopk, "TWO_STAGE_MIN_LATENTS", 0 if two_stage else 10**9)
    g = torch.Generator().manual_seed(0)
    for heavy in (False, True):
        pre = torch.randn(40, 100, generator=g)
        if heavy:
            pre[7] += 6.0
        vals, where = batch_topk_pairs(pre, 3)
        want = torch.topk(pre.flatten(), 120).indices.sort().values
        assert torch.equal(where, want) and torch.equal(vals, pre.flatten()[want])


@pytest.mark.parametrize("n_dead", [0, 9])
def test_sparse_step_matches_autograd_through_the_two_stages(monkeypatch, n_dead):
    monkeypatch.setattr(batchtopk, "TWO_STAGE_MIN_LATENTS", 0)
    sparse_step_matches_autograd("batchtopk", n_dead, 0.0)


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


def test_flops_are_topks_sparse_count():
    c = cfg("batchtopk")
    assert train_flops_per_token(c) == 2 * c.d_in * c.d_sae + 8 * c.k * c.d_in


def sparse_step_matches_autograd(arch: str, n_dead: int, shift: float, **kw) -> None:
    """The hand-written sparse step gives the gradients, loss, L0, firing and threshold of autograd through
    ``loss()`` (dense latents), AuxK included; ``shift`` lowers the pre-activations so that fewer than
    k x B are positive (kept negatives carry no value and no gradient)."""
    torch.manual_seed(0)
    c = cfg(arch, k=3, aux_k=5, aux_coefficient=0.25, **kw)
    sae = make_sae(c).double()
    with torch.no_grad():
        sae.b_enc.normal_(0, 0.1).sub_(shift)
        sae.b_dec.normal_(0, 0.5)
        sae.W_enc.normal_(0, 0.3)
        sae.threshold.fill_(0.7)
    ref = make_sae(c).double()
    ref.load_state_dict(sae.state_dict())
    xs = torch.randn(20, sae.cfg.d_in, dtype=torch.float64)
    dead = torch.zeros(c.d_sae, dtype=torch.bool)
    dead[torch.randperm(c.d_sae)[:n_dead]] = True
    got = sae.train_step(xs, dead, 3, 10)
    want = ref.loss(xs, dead, 3, 10)
    want.loss.backward()
    for name in ("loss", "mse", "sparsity", "l0"):
        torch.testing.assert_close(getattr(got, name), getattr(want, name).detach(), msg=name)
    assert torch.equal(got.fired, want.fired)
    torch.testing.assert_close(sae.threshold, ref.threshold)
    for name, p in ref.named_parameters():
        torch.testing.assert_close(dict(sae.named_parameters())[name].grad, p.grad, msg=f"gradient of {name}")


# none dead; all take part in AuxK (aux_k = 5); the dense AuxK block; the sparse AuxK products
@pytest.mark.parametrize("n_dead", [0, 4, 9, 30])
@pytest.mark.parametrize("shift", [0.0, 3.0])
def test_sparse_step_matches_dense_autograd(n_dead, shift):
    sparse_step_matches_autograd("batchtopk", n_dead, shift)


def test_the_step_does_not_build_dense_latents(monkeypatch):
    """The step is the sparse one: the dense reference (``latents``, ``loss``) is never called."""
    sae = make_sae(cfg("batchtopk"))

    def refuse(*a, **k):
        raise AssertionError("the training step went through the dense autograd path")

    monkeypatch.setattr(sae, "latents", refuse)
    monkeypatch.setattr(sae, "loss", refuse)
    stats = sae.train_step(torch.randn(32, sae.cfg.d_in), torch.zeros(sae.cfg.d_sae, dtype=torch.bool), 0, 5)
    assert float(stats.l0) == sae.cfg.k
