"""Speed as a fraction of what the machine can do: model FLOPs per token against the measured
float32 matrix-multiply rate (the "roofline" of a matmul-bound workload on a CPU)."""

from __future__ import annotations

import time

import torch
from torch import nn

from helpers.model.blocks import get_blocks


def matmul_rate(n: int = 2048, repeats: int = 5, device: str | torch.device = "cpu") -> float:
    """This machine's float32 matrix-multiply rate in FLOP/s (best of ``repeats``)."""
    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    a @ b
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        a @ b
        if a.is_cuda:
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best


def flops_per_token(
    model: nn.Module, through: int | None = None, lm_head: bool = True, context: float = 0.0
) -> float:
    """Matrix-multiply FLOPs one token costs: 2 per weight of blocks ``0..through`` (all blocks when
    None), plus attention's score and value products over ``context`` earlier tokens (2 x 2 x d_model
    x context per block), plus the unembedding (2 x d_model x vocabulary) when ``lm_head``.
    Embedding look-ups, norms and activations are left out (they are not matmuls)."""
    blocks = list(get_blocks(model))
    blocks = blocks if through is None else blocks[: through + 1]
    weights = sum(p.numel() for b in blocks for p in b.parameters() if p.dim() >= 2)
    d = int(model.config.hidden_size)
    total = 2.0 * weights + 4.0 * d * context * len(blocks)
    if lm_head:
        total += 2.0 * model.get_output_embeddings().weight.numel()
    return total
