"""The Matryoshka BatchTopK SAE (Bussmann et al. 2025; Nabeshima 2024): BatchTopK, with a loss that also
asks nested prefixes of the dictionary to reconstruct the input on their own. With prefix sizes
m_1 < m_2 < ... < m_n = d_sae (``SAEConfig.matryoshka_prefixes`` x d_sae), the loss is

    Σ_i mean ||x - (f[:, :m_i] W_dec[:m_i] + b_dec)||²  (+ AuxK, as BatchTopK)

with the latents ``f`` chosen by BatchTopK over the whole dictionary. The first latents are in every term,
so they must be useful alone: they learn general features, and a child feature cannot absorb its parent's
direction without the small prefixes, which lack the child, paying for it.

The prefix reconstructions are built as running sums, x̂_i = x̂_{i-1} + f[:, m_{i-1}:m_i] W_dec[m_{i-1}:m_i].
The training step is BatchTopK's sparse one: the kept pairs are split by block, and a latent of block b gets
the gradient of every prefix it is in, through G_b = Σ_{i ≥ b} 2 (x̂_i - x) / B, so each kept pair is decoded
once and read once, whatever the number of prefixes. ``StepStats.mse`` is the whole dictionary's. Saved as
SAELens' ``matryoshka_batchtopk``; inference as BatchTopK (one threshold).
"""

from __future__ import annotations

import torch

from helpers.sae.batchtopk import BatchTopKSAE
from helpers.sae.topk import RaggedSelection


class MatryoshkaSAE(BatchTopKSAE):
    """BatchTopK whose nested prefixes of latents each reconstruct the input (sum of their MSEs)."""

    saelens_architecture = "matryoshka_batchtopk"

    def reconstruction_loss(
        self, f: torch.Tensor, xs: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(Σ over prefixes of their MSE, the whole dictionary's MSE, its x̂ - x)."""
        total, err, lo = f.new_zeros(()), self.b_dec - xs, 0
        for hi in self.cfg.prefix_sizes():
            err = torch.addmm(err, f[:, lo:hi], self.W_dec[lo:hi])
            total = total + err.pow(2).sum(-1).mean()
            lo = hi
        return total, err.pow(2).sum(-1).mean(), err

    def sparse_reconstruction(
        self,
        sel: RaggedSelection,
        vals: torch.Tensor,
        live: torch.Tensor,
        xs: torch.Tensor,
        g_dec: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """The prefixes' summed loss and its gradients on the kept pairs (see BatchTopK's)."""
        B, W_dec = len(xs), self.W_dec
        blocks, errs, lo = [], [], 0
        total, err = xs.new_zeros(()), self.b_dec - xs
        for hi in self.cfg.prefix_sizes():
            keep = (sel.cols >= lo) & (sel.cols < hi)
            blocks.append((keep, sel.subset(keep)))
            err = err + blocks[-1][1].decode(W_dec, vals[keep])
            e = err.view(-1)
            total = total + torch.dot(e, e) / B
            errs.append(err)
            lo = hi
        g_vals, G = torch.zeros_like(vals), torch.zeros_like(err)
        bounds = (0, *self.cfg.prefix_sizes())
        for b in reversed(range(len(blocks))):
            (keep, part), lo, hi = blocks[b], bounds[b], bounds[b + 1]
            G = G.add_(errs[b], alpha=2 / B)  # Σ over the prefixes this block is in
            g_vals[keep] = part.read_flat(G, W_dec).mul_(live[keep])
            torch.mm(sel.by_latent(vals, lo, hi), G, out=g_dec[lo:hi])
        e = errs[-1].view(-1)
        return total, torch.dot(e, e) / B, errs[-1], g_vals, G.sum(0)
