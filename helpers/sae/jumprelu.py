"""The JumpReLU SAE (Rajamanoharan et al. 2024, the Gemma Scope recipe): ``f = pre · H(pre - θ)`` with a
learned threshold θ_i = exp(log θ_i) per latent, trained on mean ||x - x̂||² + λ_0 Σ_i H(pre_i - θ_i), an
L0 penalty.

Neither the jump nor the L0 count has a useful derivative in θ (zero almost everywhere), so both get a
straight-through pseudo-derivative: the Dirac spike of ∂H(z - θ)/∂θ is replaced by a rectangle kernel of
width ε, -(1/ε)·1{|z - θ| < ε/2}, a kernel estimate of how the *expected* loss changes with θ. Through the
jump, ∂[z H(z - θ)]/∂θ ≈ -(θ/ε)·1{|z - θ| < ε/2}; through the L0 count, ∂H/∂θ ≈ -(1/ε)·1{...}. The
pre-activation gets the ordinary gradient through the jump (H(z - θ)) and none through the L0 count, as in
the paper. For the L0 term the estimate equals a central finite difference of the batch's L0 with steps of
ε/2 (``tests/unit/sae/test_jumprelu.py`` checks it).

Unit-norm decoder rows renormalised after every step, initialisation and b_dec subtracted from the input as
TopK (:class:`helpers.sae.topk.TopKSAE`), so the L0 penalty cannot be dodged by rescaling the decoder.
The file holds ``threshold`` = θ [d_sae], as SAELens' jumprelu files do.

The training step is hand-written and sparse like TopK's: only the encoder's forward product is dense. The
active pairs (z > θ, any number per token) carry decoding, their pre-activations' gradient and both weight
gradients; the pairs inside the kernel's window (|z - θ| < ε/2, a few per token) carry θ's. ``loss`` is
the same loss through autograd (:class:`JumpReLUFn`, :class:`StepFn`): the reference
``tests/unit/sae/test_jumprelu.py`` checks the step's gradients against.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from helpers.config import SAEConfig
from helpers.sae.base import BaseSAE, StepStats
from helpers.sae.topk import RaggedSelection, TopKSAE, _grad_buffer


def _window(z: torch.Tensor, theta: torch.Tensor, eps: float) -> torch.Tensor:
    """The rectangle kernel 1{|z - θ| < ε/2} / ε."""
    return ((z - theta).abs() < eps / 2).to(z.dtype) / eps


class JumpReLUFn(torch.autograd.Function):
    """z · H(z - θ), with z's gradient H(z - θ) and θ's the straight-through -(θ/ε)·1{|z - θ| < ε/2}."""

    @staticmethod
    def forward(ctx, z: torch.Tensor, theta: torch.Tensor, eps: float) -> torch.Tensor:
        ctx.save_for_backward(z, theta)
        ctx.eps = eps
        return z * (z > theta)

    @staticmethod
    def backward(ctx, g: torch.Tensor):
        z, theta = ctx.saved_tensors
        g_theta = (-theta * _window(z, theta, ctx.eps) * g).sum(0)
        return (z > theta) * g, g_theta, None


class StepFn(torch.autograd.Function):
    """H(z - θ), with no gradient for z and θ's straight-through -(1/ε)·1{|z - θ| < ε/2}."""

    @staticmethod
    def forward(ctx, z: torch.Tensor, theta: torch.Tensor, eps: float) -> torch.Tensor:
        ctx.save_for_backward(z, theta)
        ctx.eps = eps
        return (z > theta).to(z.dtype)

    @staticmethod
    def backward(ctx, g: torch.Tensor):
        z, theta = ctx.saved_tensors
        return None, (-_window(z, theta, ctx.eps) * g).sum(0), None


class JumpReLUSAE(TopKSAE):
    """Latents above a learned per-latent threshold; an L0 penalty with straight-through gradients."""

    saelens_architecture = "jumprelu"
    activation_fn = "jumprelu"
    sparsity_name = "λ_0-weighted L0 term"
    extra_tensors = ("threshold",)

    forward = BaseSAE.forward  # inference decodes the threshold's dense latents
    step_version = 1  # 1: the sparse hand-written step (0: autograd on dense latents)

    def __init__(self, cfg: SAEConfig):
        super().__init__(cfg)
        self.log_threshold = nn.Parameter(torch.full((cfg.d_sae,), float(cfg.jumprelu_init_threshold)).log())

    @property
    def threshold(self) -> torch.Tensor:
        return self.log_threshold.exp()

    def activation_kwargs(self) -> dict:
        return {}

    @classmethod
    def knob(cls, cfg: SAEConfig) -> str:
        return f"the L0 coefficient λ_0 = {cfg.jumprelu_l0_coefficient:g} (jumprelu_l0_coefficient)"

    def activate(self, pre: torch.Tensor) -> torch.Tensor:
        return pre * (pre > self.threshold)

    def file_tensor(self, name: str) -> torch.Tensor:
        return self.threshold.detach() if name == "threshold" else super().file_tensor(name)

    @torch.no_grad()
    def set_file_tensor(self, name: str, value: torch.Tensor) -> None:
        if name != "threshold":
            return super().set_file_tensor(name, value)
        if not bool((value > 0).all()):
            raise ValueError(
                "a jumprelu SAE's thresholds must all be > 0 (they are exp(log θ)); re-run its training"
            )
        self.log_threshold.copy_(value.log())

    @torch.no_grad()
    def pre_scale(self, pre: torch.Tensor, step: int) -> float:
        """σ, the standard deviation of the first training batch's pre-activations: the unit of the bandwidth
        and of the initial threshold, which is set to ``jumprelu_init_threshold`` x σ at step 0 (how large
        pre-activations are depends on the data: an absolute start left the thresholds where Adam's
        ~lr-per-step moves in log θ could not bring them within a few hundred steps)."""
        if step == 0 or getattr(self, "_pre_scale", None) is None:
            self._pre_scale = float(pre.std().clamp_min(1e-8))
            if step == 0:
                self.log_threshold.fill_(math.log(self.cfg.jumprelu_init_threshold * self._pre_scale))
        return self._pre_scale

    def end_training(self) -> None:
        super().end_training()
        self._pre_scale = None

    def loss(self, xs: torch.Tensor, dead: torch.Tensor, step: int, steps: int) -> StepStats:
        pre = self.pre_acts(xs)
        eps = self.cfg.jumprelu_bandwidth * self.pre_scale(pre.detach(), step)
        theta = self.threshold
        f = JumpReLUFn.apply(pre, theta, eps)
        mse = (torch.addmm(self.b_dec, f, self.W_dec) - xs).pow(2).sum(-1).mean()
        l0_term = self.cfg.jumprelu_l0_coefficient * StepFn.apply(pre, theta, eps).sum(-1).mean()
        return StepStats.from_latents(f, mse, l0_term)

    @torch.no_grad()
    def train_step(self, xs: torch.Tensor, dead: torch.Tensor, step: int, steps: int) -> StepStats:
        B, m, W_dec, lam = len(xs), self.cfg.d_sae, self.W_dec, self.cfg.jumprelu_l0_coefficient
        pre = self._dense_pre(xs)
        eps = self.cfg.jumprelu_bandwidth * self.pre_scale(pre, step)
        theta = self.threshold
        gap = pre - theta
        on = (gap > 0).view(-1).nonzero().squeeze(1)
        act = RaggedSelection.from_flat(on, B, m)
        win = RaggedSelection.from_flat((gap.abs_() < eps / 2).view(-1).nonzero().squeeze(1), B, m)
        vals = pre.view(-1)[on]
        err = act.decode(W_dec, vals).add_(self.b_dec).sub_(xs)
        e = err.view(-1)
        mse = torch.dot(e, e) / B
        g_x = err.mul(2 / B)
        g_vals = act.read_flat(g_x, W_dec)  # z's gradient: through the jump, none through the L0 count
        torch.mm(act.by_latent(vals), g_x, out=_grad_buffer(W_dec))
        xc = xs - self.b_dec
        torch.mm(act.by_latent(g_vals), xc, out=_grad_buffer(self.W_enc_t))
        g_b_enc = torch.zeros_like(self.b_enc).index_add_(0, act.cols, g_vals)
        # θ: -(θ/ε) Σ_window ∂mse/∂f through the jump, -(λ_0/(ε B)) x the window's count through the L0 term
        g_win = win.read_flat(g_x, W_dec)
        g_theta = torch.zeros_like(theta).index_add_(0, win.cols, g_win).mul_(-theta / eps)
        g_theta.sub_(torch.bincount(win.cols, minlength=m).to(theta.dtype), alpha=lam / (eps * B))
        self.log_threshold.grad = g_theta.mul_(theta)  # θ = exp(log θ)
        self.b_enc.grad = g_b_enc
        self.b_dec.grad = g_x.sum(0).sub_(g_b_enc @ self.W_enc_t)
        l0 = torch.tensor(len(act.cols) / B, dtype=torch.float32)
        l0_term = lam * torch.tensor(len(act.cols) / B, dtype=xs.dtype)
        fired = torch.zeros(m, dtype=torch.bool, device=xs.device).index_fill_(0, act.cols, True)
        return StepStats(mse + l0_term, mse, l0_term, fired, l0)

    @classmethod
    def flops_per_token(cls, cfg: SAEConfig) -> float:
        """As TopK's sparse count with the L0 the run ends at unknown beforehand: the dense encoder forward,
        then the active latents' rows (counted at k, the L0 the workbook matches) for decoding, their
        gradient and the two weight gradients; the window's reads are left out (a few per token)."""
        return TopKSAE.flops_per_token(cfg)
