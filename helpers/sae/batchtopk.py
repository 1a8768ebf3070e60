"""The BatchTopK SAE (Bussmann, Leask & Nanda 2024): TopK's recipe, but the k x batch_size largest
(ReLU'd) pre-activations are kept across the whole batch rather than k per token, so a token can use more
latents than k and another fewer, while the batch's mean L0 is exactly k.

A token's latents must not depend on the batch it came in once training is over: :meth:`BatchTopKSAE.activate`
(what ``encode`` uses) keeps every pre-activation above one threshold, the running average over training
steps of the smallest activation the batch kept (as SAELens does; SAELens saves such an SAE as a JumpReLU
with that threshold for every latent, and so do we: the file holds ``threshold`` [d_sae]).

Unit-norm decoder rows, initialisation, b_dec subtracted from the input and the AuxK loss as TopK
(:mod:`helpers.sae.topk`). The training step is hand-written and sparse like TopK's: only the encoder's
forward product is dense; decoding, the kept latents' gradient and both weight gradients touch the k x B
kept (token, latent) pairs, held as a :class:`helpers.sae.topk.RaggedSelection` (a token keeps any number).
:meth:`BatchTopKSAE.loss` is the same loss through autograd on dense [B, d_sae] latents: the reference
``tests/unit/sae/test_batchtopk.py`` checks the step's gradients against.
"""

from __future__ import annotations

import torch

from helpers.config import SAEConfig
from helpers.sae.base import BaseSAE, StepStats, sparse_decode
from helpers.sae.topk import RaggedSelection, TopKSAE, _grad_buffer


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


# below this many latents one top-(k x B) over the flat batch is quicker than the cut of
# batch_topk_pairs (2-core EPYC, B = 1,024: [1,024 x 192] k 5 0.72 vs 1.03 ms; [1,024 x 1,152] k 32 12.3 vs
# 5.8 ms; [1,024 x 4,608] k 32 64 vs 13 ms)
TWO_STAGE_MIN_LATENTS = 512


def batch_topk_pairs(pre: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The k x B largest entries of ``pre`` [B, d_sae] (not ReLU'd): (values, flat indices), in ascending
    flat-index order (token-major). With many latents, a cut is found first among each token's 2k largest:
    the (k x B)-th largest of those candidates is at or below the batch's own (k x B)-th, so the entries at
    or above it hold the whole top, which is taken among those few (exact whatever a token holds)."""
    B, m = pre.shape
    n, flat = min(k * B, pre.numel()), pre.view(-1)
    if m < TWO_STAGE_MIN_LATENTS or 2 * k >= m:
        raw, where = torch.topk(flat, n, sorted=False)
        where, order = torch.sort(where)
        return raw[order], where
    cand = torch.topk(pre, 2 * k, dim=-1, sorted=False).values
    cut = torch.topk(cand.view(-1), n, sorted=False).values.min()
    where = (flat >= cut).nonzero().squeeze(1)  # ascending
    if len(where) > n:
        where = where[torch.topk(flat[where], n, sorted=False).indices.sort().values]
    return flat[where], where


class BatchTopKSAE(TopKSAE):
    """k x batch_size latents per batch while training; a single learned threshold afterwards."""

    saelens_architecture = "batchtopk"
    activation_fn = "batchtopk"
    extra_tensors = ("threshold",)
    THRESHOLD_LR = (
        0.01  # weight of each batch in the threshold's running average (SAELens' topk_threshold_lr)
    )

    forward = BaseSAE.forward  # inference decodes the threshold's dense latents
    step_version = 1  # 1: the sparse hand-written step (0: autograd on dense latents)

    def __init__(self, cfg: SAEConfig):
        super().__init__(cfg)
        # pre-activations above it fire at inference; one value, kept per latent as SAELens' file holds it
        self.register_buffer("threshold", torch.zeros(cfg.d_sae))

    def activate(self, pre: torch.Tensor) -> torch.Tensor:
        return pre * (pre > self.threshold)

    @torch.no_grad()
    def update_threshold(self, f: torch.Tensor, step: int, steps: int) -> None:
        """Fold the smallest activation this batch kept (the smallest > 0 of ``f``, latents or the kept
        values alone) into the running threshold (set to it at step 0)."""
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

    def sparse_reconstruction(
        self,
        sel: RaggedSelection,
        vals: torch.Tensor,
        live: torch.Tensor,
        xs: torch.Tensor,
        g_dec: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """:meth:`reconstruction_loss` and its gradients on the kept pairs ``sel`` with values ``vals``
        (``live``: which are > 0): writes W_dec's gradient into ``g_dec``; returns (loss, mse, x̂ - x, the
        pairs' gradient, ∂loss/∂x̂ summed over tokens)."""
        B = len(xs)
        err = sel.decode(self.W_dec, vals).add_(self.b_dec).sub_(xs)
        e = err.view(-1)
        mse = torch.dot(e, e) / B
        g_x = err.mul(2 / B)
        g_vals = sel.read_flat(g_x, self.W_dec).mul_(live)
        torch.mm(sel.by_latent(vals), g_x, out=g_dec)
        return mse, mse, err, g_vals, g_x.sum(0)

    @torch.no_grad()
    def train_step(self, xs: torch.Tensor, dead: torch.Tensor, step: int, steps: int) -> StepStats:
        """Sparse, as TopK's step: the batch's k x B largest pre-activations (a negative one kept only when
        fewer are positive, then at 0 and without gradient, as ReLU-then-select gives)."""
        B, m = len(xs), self.cfg.d_sae
        pre = self._dense_pre(xs)
        raw, where = batch_topk_pairs(pre, self.cfg.k)
        live = raw > 0
        vals = raw.clamp_min(0)
        sel = RaggedSelection.from_flat(where, B, m)
        rec, mse, err, g_vals, g_xhat_sum = self.sparse_reconstruction(
            sel, vals, live, xs, _grad_buffer(self.W_dec)
        )
        xc = xs - self.b_dec
        g_enc = torch.mm(sel.by_latent(g_vals), xc, out=_grad_buffer(self.W_enc_t))
        g_b_enc = torch.zeros_like(self.b_enc).index_add_(0, sel.cols, g_vals)
        aux = self._finish_step(pre, xs, xc, err, self.W_dec.grad, g_enc, g_b_enc, g_xhat_sum, dead)
        self.update_threshold(vals, step, steps)
        fired = torch.zeros(m, dtype=torch.bool, device=xs.device).index_fill_(0, sel.cols[live], True)
        return StepStats(rec + aux, mse, aux, fired, live.sum(dtype=torch.float32) / B)
