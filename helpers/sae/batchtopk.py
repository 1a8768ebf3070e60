"""The BatchTopK SAE (Bussmann, Leask & Nanda 2024): TopK's recipe, but the k x batch_size largest
(ReLU'd) pre-activations are kept across the whole batch rather than k per token, so a token can use more
latents than k and another fewer, while the batch's mean L0 is exactly k.

A token's latents must not depend on the batch it came in once training is over: :meth:`BatchTopKSAE.activate`
(what ``encode`` uses) keeps every pre-activation above one threshold, the running average over training
steps of the smallest activation the batch kept (as SAELens does; SAELens saves such an SAE as a JumpReLU
with that threshold for every latent, and so do we: the file holds ``threshold`` [d_sae]).

Unit-norm decoder rows, initialisation, b_dec subtracted from the input and the AuxK loss as TopK
(:mod:`helpers.sae.topk`). The step runs through autograd on dense [B, d_sae] latents: how many latents
a token keeps varies, so TopK's fixed-width sparse products do not apply.
"""

from __future__ import annotations

import torch

from helpers.config import SAEConfig
from helpers.sae.base import BaseSAE, StepStats, sparse_decode
from helpers.sae.topk import TopKSAE


def aux_k_loss(pre: torch.Tensor, err: torch.Tensor, dead: torch.Tensor, W_dec: torch.Tensor, cfg: SAEConfig):
    """TopK's AuxK term for autograd: each token's ``aux_k`` largest pre-activations among the ``dead``
    latents (ReLU'd) reconstruct the error ``err`` = x̂ - x the live latents leave (detached), weighted by
    ``aux_coefficient``: c Σ_b ||ê_b + err_b||² / B. Zero without dead latents (or with aux_k or c 0)."""
    dead_idx = dead.nonzero().squeeze(1)
    if not (len(dead_idx) and cfg.aux_k and cfg.aux_coefficient > 0):
        return pre.new_zeros(())
    vals, j = torch.topk(pre[:, dead_idx], min(cfg.aux_k, len(dead_idx)), dim=-1, sorted=False)
    r = sparse_decode(W_dec[dead_idx], torch.relu(vals), j) + err.detach()
    return cfg.aux_coefficient * r.pow(2).sum() / len(pre)


def batch_topk(pre: torch.Tensor, k: int) -> torch.Tensor:
    """The ``k x len(pre)`` largest ReLU'd entries of ``pre`` [B, d_sae] over the whole batch, the rest 0
    (differentiable in the kept entries)."""
    flat = torch.relu(pre).flatten()
    vals, idx = torch.topk(flat, min(k * len(pre), flat.numel()), sorted=False)
    return torch.zeros_like(flat).scatter(0, idx, vals).view_as(pre)


class BatchTopKSAE(TopKSAE):
    """k x batch_size latents per batch while training; a single learned threshold afterwards."""

    saelens_architecture = "batchtopk"
    activation_fn = "batchtopk"
    extra_tensors = ("threshold",)
    THRESHOLD_LR = (
        0.01  # weight of each batch in the threshold's running average (SAELens' topk_threshold_lr)
    )

    # autograd through loss() and dense decoding, not TopK's hand-written sparse step
    train_step = BaseSAE.train_step
    forward = BaseSAE.forward

    def __init__(self, cfg: SAEConfig):
        super().__init__(cfg)
        # pre-activations above it fire at inference; one value, kept per latent as SAELens' file holds it
        self.register_buffer("threshold", torch.zeros(cfg.d_sae))

    def activate(self, pre: torch.Tensor) -> torch.Tensor:
        return pre * (pre > self.threshold)

    @torch.no_grad()
    def update_threshold(self, f: torch.Tensor, step: int, steps: int) -> None:
        """Fold the smallest activation this batch kept into the running threshold (set to it at step 0)."""
        kept = f[f > 0]
        if kept.numel():
            lo = kept.min()
            w = 1.0 if step == 0 else max(self.THRESHOLD_LR, 10 / steps)
            self.threshold.mul_(1 - w).add_(w * lo)

    def latents(self, pre: torch.Tensor) -> torch.Tensor:
        """Training latents: the batch's top k x B (Matryoshka selects the same way)."""
        return batch_topk(pre, self.cfg.k)

    def reconstruction_loss(
        self, f: torch.Tensor, xs: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(loss, mse, x̂ - x) of latents ``f``: here the one reconstruction's mean squared error."""
        err = torch.addmm(self.b_dec, f, self.W_dec) - xs
        mse = err.pow(2).sum(-1).mean()
        return mse, mse, err

    def loss(self, xs: torch.Tensor, dead: torch.Tensor, step: int, steps: int) -> StepStats:
        pre = self.pre_acts(xs)
        f = self.latents(pre)
        rec, mse, err = self.reconstruction_loss(f, xs)
        aux = aux_k_loss(pre, err, dead, self.W_dec, self.cfg)
        self.update_threshold(f, step, steps)
        return StepStats.from_latents(f, mse, aux, loss=rec + aux)

    @classmethod
    def flops_per_token(cls, cfg: SAEConfig) -> float:
        """Dense, as L1: encoder forward, decoder forward, the latents' gradient, the decoder's and the
        encoder's weight gradients, five [d_in x d_sae] products (2 FLOPs per multiply-add). AuxK left out,
        as for TopK (it runs on min(aux_k, dead) latents only while any are dead)."""
        return 5.0 * 2 * cfg.d_in * cfg.d_sae
