"""The Matryoshka BatchTopK SAE (Bussmann et al. 2025; Nabeshima 2024): BatchTopK, with a loss that also
asks nested prefixes of the dictionary to reconstruct the input on their own. With prefix sizes
m_1 < m_2 < ... < m_n = d_sae (``SAEConfig.matryoshka_prefixes`` x d_sae), the loss is

    Σ_i mean ||x - (f[:, :m_i] W_dec[:m_i] + b_dec)||²  (+ AuxK, as BatchTopK)

with the latents ``f`` chosen by BatchTopK over the whole dictionary. The first latents are in every term,
so they must be useful alone: they learn general features, and a child feature cannot absorb its parent's
direction without the small prefixes, which lack the child, paying for it.

The prefix reconstructions are built as running sums, x̂_i = x̂_{i-1} + f[:, m_{i-1}:m_i] W_dec[m_{i-1}:m_i]:
each block of the decoder is multiplied once forward and twice backward, so the step costs the same five
dense products as BatchTopK, whatever the number of prefixes. ``StepStats.mse`` is the whole dictionary's.
Saved as SAELens' ``matryoshka_batchtopk``; inference as BatchTopK (one threshold).
"""

from __future__ import annotations

import torch

from helpers.sae.batchtopk import BatchTopKSAE


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
