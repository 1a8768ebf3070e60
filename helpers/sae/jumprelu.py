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
Trained through autograd: five dense products, as L1. The file holds ``threshold`` = θ [d_sae], as SAELens'
jumprelu files do.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from helpers.config import SAEConfig
from helpers.sae.base import BaseSAE, StepStats
from helpers.sae.topk import TopKSAE


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

    # autograd through loss() and dense decoding, not TopK's hand-written sparse step
    train_step = BaseSAE.train_step
    forward = BaseSAE.forward

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

    @classmethod
    def flops_per_token(cls, cfg: SAEConfig) -> float:
        """Dense, as L1: encoder forward, decoder forward, the latents' gradient, the decoder's and the
        encoder's weight gradients, five [d_in x d_sae] products (2 FLOPs per multiply-add)."""
        return 5.0 * 2 * cfg.d_in * cfg.d_sae
