import math

import pytest
import torch

from helpers.sae.jumprelu import JumpReLUFn, JumpReLUSAE, StepFn
from helpers.sae.model import make_sae
from tests.unit.sae.arch_support import (
    fold_scale_keeps_outputs,
    round_trip_keeps_outputs,
    trains_and_mse_falls,
)
from tests.unit.sae.test_model import cfg

EPS, THETA = 0.1, 0.7


def _z():
    return torch.randn(100_000, 1, generator=torch.Generator().manual_seed(0), dtype=torch.float64)


def test_l0_straight_through_gradient_is_a_central_difference_of_the_batch_l0():
    z = _z()
    theta = torch.tensor([THETA], dtype=torch.float64, requires_grad=True)
    StepFn.apply(z, theta, EPS).sum().backward()
    l0 = lambda t: float((z > t).sum())  # noqa: E731
    central = (l0(THETA + EPS / 2) - l0(THETA - EPS / 2)) / EPS
    assert float(theta.grad) == pytest.approx(central, rel=1e-9)
    # and an estimate of d E[L0] / dθ = -n φ(θ) for standard normal z
    phi = math.exp(-(THETA**2) / 2) / math.sqrt(2 * math.pi)
    assert float(theta.grad) == pytest.approx(-len(z) * phi, rel=0.03)


def test_jump_straight_through_gradient_matches_a_central_difference():
    z = _z()
    theta = torch.tensor([THETA], dtype=torch.float64, requires_grad=True)
    z_in = z.clone().requires_grad_(True)
    JumpReLUFn.apply(z_in, theta, EPS).sum().backward()
    total = lambda t: float((z * (z > t)).sum())  # noqa: E731
    central = (total(THETA + EPS / 2) - total(THETA - EPS / 2)) / EPS
    # the kernel puts θ where each windowed z is: equal up to O(ε / θ)
    assert float(theta.grad) == pytest.approx(central, rel=EPS / THETA)
    assert torch.equal(z_in.grad, (z > THETA).to(z.dtype))  # ordinary gradient through the jump


def test_l0_penalty_pushes_thresholds_up():
    x = torch.randn(256, 16)
    grads = []
    for lam in (0.0, 10.0):
        sae = make_sae(cfg("jumprelu", jumprelu_l0_coefficient=lam))
        sae.loss(x, torch.zeros(sae.cfg.d_sae, dtype=torch.bool), 0, 10).loss.backward()
        grads.append(sae.log_threshold.grad.sum())
    assert grads[1] < grads[0]  # descent raises log θ more with the penalty


def test_trains_round_trips_and_l0_falls_with_the_penalty(tmp_path):
    sae, log, c = trains_and_mse_falls("jumprelu")
    assert isinstance(sae, JumpReLUSAE) and 0 < log.l0[-1] < c.d_sae
    round_trip_keeps_outputs(sae, tmp_path)
    _, strong, _ = trains_and_mse_falls("jumprelu", jumprelu_l0_coefficient=100 * c.jumprelu_l0_coefficient)
    assert strong.l0[-1] < log.l0[-1]


def test_fold_scale_keeps_outputs():
    fold_scale_keeps_outputs("jumprelu", jumprelu_init_threshold=0.5)


@pytest.mark.parametrize(
    "field, bad",
    [
        ("jumprelu_bandwidth", 0.0),
        ("jumprelu_l0_coefficient", -1.0),
        ("jumprelu_init_threshold", float("nan")),
    ],
)
def test_bad_fields_are_one_line(field, bad):
    with pytest.raises(ValueError, match=field):
        cfg("jumprelu", **{field: bad}).validate()


@pytest.mark.parametrize("step", [0, 3])
def test_sparse_step_matches_dense_autograd(step):
    """The hand-written sparse step gives autograd's gradients (θ's straight-through ones included), loss,
    L0 and firing; at step 0 both set the thresholds from the batch's spread first."""
    torch.manual_seed(0)
    c = cfg("jumprelu", jumprelu_bandwidth=0.5, jumprelu_l0_coefficient=0.3)
    sae = make_sae(c).double()
    with torch.no_grad():
        sae.b_enc.normal_(0, 0.1)
        sae.b_dec.normal_(0, 0.5)
        sae.W_enc.normal_(0, 0.3)
        sae.log_threshold.copy_(torch.empty(c.d_sae, dtype=torch.float64).uniform_(-1.5, 0.5))
    ref = make_sae(c).double()
    ref.load_state_dict(sae.state_dict())
    xs = torch.randn(40, c.d_in, dtype=torch.float64)
    dead = torch.zeros(c.d_sae, dtype=torch.bool)
    got = sae.train_step(xs, dead, step, 10)
    want = ref.loss(xs, dead, step, 10)
    want.loss.backward()
    for name in ("loss", "mse", "sparsity", "l0"):
        torch.testing.assert_close(
            getattr(got, name).double(), getattr(want, name).detach().double(), msg=name
        )
    assert torch.equal(got.fired, want.fired)
    assert (ref.log_threshold.grad != 0).sum() > 5  # the window held pairs
    for name, p in ref.named_parameters():
        torch.testing.assert_close(dict(sae.named_parameters())[name].grad, p.grad, msg=f"gradient of {name}")


def test_the_step_does_not_go_through_autograd(monkeypatch):
    sae = make_sae(cfg("jumprelu"))

    def refuse(*a, **k):
        raise AssertionError("the training step went through the dense autograd path")

    monkeypatch.setattr(sae, "loss", refuse)
    stats = sae.train_step(torch.randn(32, sae.cfg.d_in), torch.zeros(sae.cfg.d_sae, dtype=torch.bool), 0, 5)
    assert 0 < float(stats.l0) < sae.cfg.d_sae
