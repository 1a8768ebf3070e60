"""The L1 SAE of Anthropic's April 2024 recipe: ``f = ReLU(x W_enc + b_enc)``, ``x̂ = f W_dec + b_dec``,
loss = mean ||x - x̂||² + λ Σ_i f_i ||W_dec,i||, with λ rising linearly over the first ``warmup_frac`` of
the steps; inputs scaled so that E||x|| = sqrt(d_in); W_enc initialised as W_decᵀ with decoder rows of
norm 0.1; zero biases. Trained through autograd: its five dense products already run near the machine's
matmul rate."""

from __future__ import annotations

import torch

from helpers.config import SAEConfig
from helpers.sae.base import BaseSAE, StepStats


class L1SAE(BaseSAE):
    """ReLU latents, L1 penalty weighted by decoder-row norms (Anthropic, April 2024)."""

    sparsity_name = "λ-weighted L1 term"

    def init_weights(self, w: torch.Tensor) -> None:
        self.W_dec.copy_(0.1 * w / w.norm(dim=1, keepdim=True))
        self.W_enc.copy_(self.W_dec.T)

    def activate(self, pre: torch.Tensor) -> torch.Tensor:
        return torch.relu(pre)

    @classmethod
    def knob(cls, cfg: SAEConfig) -> str:
        return f"the L1 coefficient λ = {cfg.l1_coefficient:g}"

    def loss(self, xs: torch.Tensor, dead: torch.Tensor, step: int, steps: int) -> StepStats:
        warm = max(1, int(self.cfg.warmup_frac * steps))
        lam = self.cfg.l1_coefficient * min(1.0, (step + 1) / warm)
        f = torch.relu(torch.addmm(self.b_enc, xs, self.W_enc))
        xhat = torch.addmm(self.b_dec, f, self.W_dec)
        mse = (xhat - xs).pow(2).sum(-1).mean()
        # mean over tokens of sum_i f_i ||W_dec,i|| = (column sums of f) . norms / B: no [B, d_sae] product
        l1 = lam * (f.sum(0) @ self.W_dec.norm(dim=1) / len(xs))
        return StepStats.from_latents(f, mse, l1)

    @classmethod
    def flops_per_token(cls, cfg: SAEConfig) -> float:
        """Encoder forward, decoder forward, decoder backward (input and weight gradients) and encoder
        weight gradient: five dense [d_in x d_sae] products, 2 FLOPs per multiply-add."""
        return 5.0 * 2 * cfg.d_in * cfg.d_sae
