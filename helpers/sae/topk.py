"""The TopK SAE of OpenAI's 2024 recipe: keep the k largest pre-activations of ``(x - b_dec) W_enc + b_enc``
(ReLU'd), unit-norm decoder rows renormalised after every step, and an AuxK loss that lets the dead latents
reconstruct what the live ones miss, so few latents die.

Its training step is written by hand rather than through autograd, because only the encoder's forward
product is dense: every other product touches the k selected latents of each token (and the AuxK ones).

* decoding sums the k selected decoder rows of each token (``embedding_bag``);
* the gradient of the selected latents is a *sampled* dense product, (∂L/∂x̂ W_decᵀ) read only where a
  latent was selected (``torch.sparse.sampled_addmm``), instead of a [B, d_sae] matrix;
* the encoder's and decoder's weight gradients are sparse [d_sae, B] x [B, d_in] products over the same
  selections, written into gradient buffers kept between steps (no 10 MB allocation per step);
* nothing else of size [B, d_sae] is written besides the pre-activations, into a reused buffer;
* AuxK runs over a dense [B, n_dead] block while few latents are dead, and sparse like the main
  selection beyond ``DENSE_AUX`` x aux_k of them.

``tests/unit/sae/test_model.py`` checks every gradient against dense autograd, AuxK included.
"""

from __future__ import annotations

import warnings

import torch
from torch import nn

from helpers.config import SAEConfig
from helpers.sae.base import BaseSAE, StepStats, sparse_decode

# AuxK runs dense over the dead latents while at most this many times aux_k are dead (sparse beyond): on
# notebook 03's rows, 300-450 of 4,608 latents are dead by the 2,048-token window with aux_k = 256, where the
# dense block took a TopK step from ~121 to ~88 ms on a 2-core EPYC
DENSE_AUX = 4


def _csr(crow: torch.Tensor, col: torch.Tensor, values: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    with (
        warnings.catch_warnings()
    ):  # torch flags sparse CSR as "beta"; the products used here are long-standing
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(crow, col, values, shape, check_invariants=False)


class _Pairs:
    """Selected (token, latent) pairs in the two sparse layouts a hand-written step needs: by token (CSR
    [n, d_sae], for decoding and the latents' gradient) and by latent (CSR [d_sae, n], for the weight
    gradients). The layouts are computed once and reused for every set of values on the same pairs.
    Subclasses set ``n``, ``n_latents``, ``tok_crow``, ``cols`` (token-major), ``order`` (the pairs in
    latent-major order), ``lat_crow`` and ``lat_col``."""

    n: int
    n_latents: int

    def by_token(self, values: torch.Tensor) -> torch.Tensor:
        return _csr(self.tok_crow, self.cols, values.reshape(-1), (self.n, self.n_latents))

    def by_latent(self, values: torch.Tensor, lo: int = 0, hi: int | None = None) -> torch.Tensor:
        """CSR [d_sae, n] of ``values`` (one per pair, token-major), or of latents lo..hi-1 only
        ([hi - lo, n]: a slice of the latent-major layout, no new sort)."""
        if lo == 0 and hi is None:
            return _csr(self.lat_crow, self.lat_col, values.reshape(-1)[self.order], (self.n_latents, self.n))
        a, b = int(self.lat_crow[lo]), int(self.lat_crow[hi])
        crow = self.lat_crow[lo : hi + 1] - a
        return _csr(crow, self.lat_col[a:b], values.reshape(-1)[self.order[a:b]], (hi - lo, self.n))

    def read_flat(self, g: torch.Tensor, W_dec: torch.Tensor) -> torch.Tensor:
        """(g W_decᵀ)[token, latent] for every pair, token-major, without the dense [n, d_sae] product."""
        pattern = self.by_token(torch.zeros(self.cols.shape, dtype=g.dtype, device=g.device))
        return torch.sparse.sampled_addmm(pattern, g, W_dec.T, beta=0.0).values()


class _Selection(_Pairs):
    """Which latent each of a token's p slots holds (``idx`` [B, p]): the same p latents per token."""

    def __init__(self, idx: torch.Tensor, n_latents: int):
        self.idx, self.n_latents = idx, n_latents
        n, p = idx.shape
        self.n = n
        flat = self.cols = idx.reshape(-1)
        self.tok_crow = torch.arange(0, n * p + 1, p, device=idx.device)
        # latent-major order, tokens ascending within a latent: the keys are unique, so a plain sort is
        # deterministic (and ~2x faster than a stable one)
        self.order = torch.argsort(flat * n + torch.arange(n * p, device=idx.device) // p)
        self.lat_crow = torch.zeros(n_latents + 1, dtype=torch.long, device=idx.device)
        self.lat_crow[1:] = torch.bincount(flat, minlength=n_latents).cumsum(0)
        self.lat_col = self.order // p

    def read(self, g: torch.Tensor, W_dec: torch.Tensor) -> torch.Tensor:
        """(g W_decᵀ)[b, idx[b, j]] for every slot: [B, p]."""
        return self.read_flat(g, W_dec).view(self.idx.shape)


class RaggedSelection(_Pairs):
    """Any number of latents per token (BatchTopK's batch-wide choice): pairs ``rows`` (token ids,
    ascending) and ``cols`` (latent ids, ascending within a token), as a flat index of a [n, d_sae] matrix
    sorted ascending gives them. ``by_latent=False`` skips the latent-major layout (one sort) for pairs
    that are only decoded and read."""

    def __init__(
        self, rows: torch.Tensor, cols: torch.Tensor, n: int, n_latents: int, by_latent: bool = True
    ):
        self.rows, self.cols, self.n, self.n_latents = rows, cols, n, n_latents
        self.tok_crow = torch.zeros(n + 1, dtype=torch.long, device=rows.device)
        self.tok_crow[1:] = torch.bincount(rows, minlength=n).cumsum(0)
        if by_latent:
            self.order = torch.argsort(cols * n + rows)  # unique keys: latent-major, tokens ascending
            self.lat_crow = torch.zeros(n_latents + 1, dtype=torch.long, device=rows.device)
            self.lat_crow[1:] = torch.bincount(cols, minlength=n_latents).cumsum(0)
            self.lat_col = rows[self.order]

    @classmethod
    def from_flat(cls, flat: torch.Tensor, n: int, n_latents: int) -> RaggedSelection:
        """From flat indices into a [n, n_latents] matrix, ascending."""
        return cls(torch.div(flat, n_latents, rounding_mode="floor"), flat % n_latents, n, n_latents)

    def subset(self, keep: torch.Tensor) -> RaggedSelection:
        """The pairs where ``keep`` (a bool mask over the pairs) holds, in the same order, for decoding and
        reading only (their weight gradients come from :meth:`by_latent`'s slices of the whole selection)."""
        return RaggedSelection(self.rows[keep], self.cols[keep], self.n, self.n_latents, by_latent=False)

    def decode(self, W_dec: torch.Tensor, vals: torch.Tensor) -> torch.Tensor:
        """Σ over a token's pairs of vals · W_dec[latent]: [n, d_in] (no bias; 0 for a token without
        pairs)."""
        return nn.functional.embedding_bag(
            self.cols, W_dec, self.tok_crow[:-1], mode="sum", per_sample_weights=vals
        )


def _grad_buffer(p: nn.Parameter) -> torch.Tensor:
    """``p.grad``, allocated once and reused (the step writes it with ``out=``)."""
    if p.grad is None or p.grad.shape != p.shape or p.grad.dtype != p.dtype or p.grad.device != p.device:
        p.grad = torch.empty_like(p, memory_format=torch.contiguous_format)
    return p.grad


class TopKSAE(BaseSAE):
    """The k largest pre-activations per token, ReLU'd; unit-norm decoder rows (OpenAI, 2024).

    The encoder is stored as ``W_enc_t`` = W_encᵀ [d_sae, d_in], contiguous: the layout its sparse
    gradient comes out in (Adam's fused kernel wants parameter and gradient alike). ``W_enc`` is a view."""

    apply_b_dec_to_input = True
    saelens_architecture = "topk"
    activation_fn = "topk"
    sparsity_name = "weighted AuxK term"
    length_free = True  # train_step reads neither the step nor the run's length

    def make_encoder(self, d: int, m: int) -> None:
        self.W_enc_t = nn.Parameter(torch.empty(m, d))

    @property
    def W_enc(self) -> torch.Tensor:  # [d_in, d_sae], as every other SAE and SAELens read it
        return self.W_enc_t.T

    def init_weights(self, w: torch.Tensor) -> None:
        self.W_dec.copy_(w / w.norm(dim=1, keepdim=True))
        self.W_enc_t.copy_(self.W_dec)

    def activation_kwargs(self) -> dict:
        return {"k": self.cfg.k}

    @classmethod
    def knob(cls, cfg: SAEConfig) -> str:
        return f"aux_coefficient = {cfg.aux_coefficient:g}"

    def topk(self, pre: torch.Tensor, k: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        vals, idx = torch.topk(pre, k or self.cfg.k, dim=-1, sorted=False)
        return torch.relu(vals), idx

    def activate(self, pre: torch.Tensor) -> torch.Tensor:
        vals, idx = self.topk(pre)
        return torch.zeros_like(pre).scatter_(-1, idx, vals)

    def decode_sparse(self, vals: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        """Decode from the k (value, index) pairs per token without a dense [n, d_sae] matrix."""
        return (sparse_decode(self.W_dec, vals, idx) + self.b_dec) / self.scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode_sparse(*self.topk(self.pre_acts(x)))

    @classmethod
    def flops_per_token(cls, cfg: SAEConfig) -> float:
        """Only the encoder forward is dense (2 d_in d_sae); the selected latents' gradient (sampled
        product), decoding and the two weight gradients each touch k rows of d_in (4 x 2 k d_in). AuxK is
        left out: it runs only while latents are dead and then on min(aux_k, dead) of them, so the count
        is a lower bound while any are dead."""
        return 2.0 * cfg.d_in * cfg.d_sae + 4 * 2 * cfg.k * cfg.d_in

    def end_training(self) -> None:
        super().end_training()
        self._pre_buffer = None

    def after_step(self) -> None:
        with torch.no_grad():
            self.W_dec.div_(self.W_dec.norm(dim=1, keepdim=True).clamp_min(1e-8))

    def _aux_dense(self, pre, dead_idx, err, xc, g_dec, g_enc, g_b_enc) -> torch.Tensor:
        """AuxK over a dense [B, n_dead] block: plain products over the dead latents' rows. Where more
        latents are dead than aux_k, each token keeps its aux_k largest (the rest of its row is zeroed):
        up to ``DENSE_AUX`` x aux_k dead latents the dense block is cheaper than the sparse products, whose
        B x aux_k selections cost ~8x the main step's. Adds its gradients; returns its weighted loss."""
        B, c_aux, W_d = len(pre), self.cfg.aux_coefficient, self.W_dec[dead_idx]
        a_raw = pre[:, dead_idx]
        live = a_raw > 0
        if len(dead_idx) > self.cfg.aux_k:  # each token's aux_k largest: at or above its aux_k-th value
            kth = torch.topk(a_raw, self.cfg.aux_k, dim=-1, sorted=False).values.amin(-1, keepdim=True)
            live &= a_raw >= kth
        a_vals = a_raw * live
        r = torch.addmm(err, a_vals, W_d)  # ê - (x - x̂), the target detached
        rv = r.view(-1)
        aux = c_aux * torch.dot(rv, rv) / B
        g_r = r.mul_(2 * c_aux / B)
        g_a = (g_r @ W_d.T).mul_(live)
        g_dec.index_add_(0, dead_idx, a_vals.T @ g_r)
        g_enc.index_add_(0, dead_idx, g_a.T @ xc)
        g_b_enc.index_add_(0, dead_idx, g_a.sum(0))
        return aux

    def _aux_sparse(self, pre, dead_idx, err, xc, g_dec, g_enc, g_b_enc) -> torch.Tensor:
        """AuxK over each token's top aux_k dead latents (more are dead than aux_k): sparse products as
        for the main selection. Adds its gradients; returns its weighted loss."""
        B, c_aux, W_dec = len(pre), self.cfg.aux_coefficient, self.W_dec
        a_raw, j = torch.topk(pre[:, dead_idx], self.cfg.aux_k, dim=-1, sorted=False)
        a_idx = dead_idx[j]
        a_vals = a_raw.clamp_min(0)
        sel = _Selection(a_idx, self.cfg.d_sae)
        r = sparse_decode(W_dec, a_vals, a_idx).add_(err)
        rv = r.view(-1)
        aux = c_aux * torch.dot(rv, rv) / B
        g_r = r.mul_(2 * c_aux / B)
        g_a = sel.read(g_r, W_dec).mul_(a_raw > 0)
        g_dec.addmm_(sel.by_latent(a_vals), g_r)
        g_enc.addmm_(sel.by_latent(g_a), xc)
        g_b_enc.index_add_(0, a_idx.reshape(-1), g_a.reshape(-1))
        return aux

    def _dense_pre(self, xs: torch.Tensor) -> torch.Tensor:
        """Pre-activations (x - b_dec) W_enc + b_enc of scaled inputs, b_dec folded into the bias: the one
        dense product of a step, written into a buffer kept between steps."""
        B, m, W = len(xs), self.cfg.d_sae, self.W_enc_t
        buf = getattr(self, "_pre_buffer", None)
        if buf is None or buf.shape[0] < B or buf.dtype != xs.dtype or buf.device != xs.device:
            buf = self._pre_buffer = torch.empty(B, m, dtype=xs.dtype, device=xs.device)
        return torch.addmm(torch.addmv(self.b_enc, W, self.b_dec, alpha=-1), xs, W.T, out=buf[:B])

    def _finish_step(self, pre, xs, xc, err, g_dec, g_enc, g_b_enc, g_xhat_sum, dead) -> torch.Tensor:
        """The rest of a sparse step once the main selection's gradients are in: AuxK (the dead latents'
        top pre-activations reconstruct the error ``err`` = x̂ - x the live ones leave), the biases'
        gradients (``g_xhat_sum``: ∂loss/∂x̂ summed over tokens). Returns the weighted AuxK loss."""
        cfg, c_aux = self.cfg, self.cfg.aux_coefficient
        dead_idx = (
            dead.nonzero().squeeze(1) if cfg.aux_k and c_aux > 0 else dead.new_zeros(0, dtype=torch.long)
        )
        aux = err.new_zeros(())
        if len(dead_idx):
            aux_step = self._aux_dense if len(dead_idx) <= DENSE_AUX * cfg.aux_k else self._aux_sparse
            aux = aux_step(pre, dead_idx, err, xc, g_dec, g_enc, g_b_enc)
        self.b_enc.grad = g_b_enc
        # decoder bias, and its place in the encoder bias
        self.b_dec.grad = g_xhat_sum.sub_(g_b_enc @ self.W_enc_t)
        return aux

    @torch.no_grad()
    def train_step(self, xs: torch.Tensor, dead: torch.Tensor, step: int, steps: int) -> StepStats:
        cfg, B, m = self.cfg, len(xs), self.cfg.d_sae
        W, W_dec, b_dec = self.W_enc_t, self.W_dec, self.b_dec
        pre = self._dense_pre(xs)
        raw, idx = torch.topk(pre, cfg.k, dim=-1, sorted=False)
        vals = raw.clamp_min(0)
        main = _Selection(idx, m)
        err = sparse_decode(W_dec, vals, idx).add_(b_dec).sub_(xs)  # x̂ - x
        e = err.view(-1)
        mse = torch.dot(e, e) / B
        g_x = err.mul(2 / B)  # ∂mse/∂x̂
        g_raw = main.read(g_x, W_dec).mul_(raw > 0)  # ∂mse/∂(selected pre-activations), through the ReLU
        g_dec = torch.mm(main.by_latent(vals), g_x, out=_grad_buffer(W_dec))
        xc = xs - b_dec
        g_enc = torch.mm(main.by_latent(g_raw), xc, out=_grad_buffer(W))
        g_b_enc = torch.zeros_like(self.b_enc).index_add_(0, idx.reshape(-1), g_raw.reshape(-1))
        aux = self._finish_step(pre, xs, xc, err, g_dec, g_enc, g_b_enc, g_x.sum(0), dead)
        fired = torch.zeros(m, dtype=torch.bool, device=xs.device).index_fill_(0, idx[raw > 0], True)
        l0 = (raw > 0).sum(-1, dtype=torch.float32).mean()
        return StepStats(mse + aux, mse, aux, fired, l0)
