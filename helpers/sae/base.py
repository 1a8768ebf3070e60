"""What every SAE architecture shares: parameters, encode / decode, the input scale, and the contract
the one training loop (:func:`helpers.sae.train.train_sae`) relies on.

An architecture is one small file beside this one (``l1.py``, ``topk.py``) with a subclass that says
how it activates (:meth:`BaseSAE.activate`), how it is initialised, what its loss is and, where it has
one, what it does after each optimiser step. The loop never asks which architecture it trains.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from helpers.config import SAEConfig
from helpers.validate import as_index

# every architecture's weights-file tensors, in SAELens' names and layout; some add more (extra_tensors)
TENSORS = ("W_enc", "b_enc", "W_dec", "b_dec")


def sparse_decode(W_dec: torch.Tensor, vals: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """Σ_j vals[:, j] W_dec[idx[:, j]] per token, without a dense [n, d_sae] matrix (no bias)."""
    return nn.functional.embedding_bag(idx, W_dec, per_sample_weights=vals, mode="sum")


@dataclass
class StepStats:
    """One training step's numbers, as tensors (read with ``float`` only where logged: no per-step sync).

    ``mse`` is the mean over tokens of ||x - x̂||² on scaled inputs; ``sparsity`` the extra term as it
    enters the loss (λ-weighted L1, the weighted AuxK term, ...); ``fired`` [d_sae] which latents fired
    on this batch (the loop tracks dead latents from it); ``l0`` the mean number of active latents."""

    loss: torch.Tensor
    mse: torch.Tensor
    sparsity: torch.Tensor
    fired: torch.Tensor
    l0: torch.Tensor

    @classmethod
    def from_latents(
        cls, f: torch.Tensor, mse: torch.Tensor, sparsity: torch.Tensor, loss: torch.Tensor | None = None
    ) -> StepStats:
        """A step's stats with firing and L0 read from its latents ``f`` [B, d_sae] (the dense
        architectures); ``loss`` defaults to ``mse + sparsity``."""
        with torch.no_grad():
            active = f > 0
            fired, l0 = active.any(0), active.sum(-1, dtype=torch.float32).mean()
        return cls(mse + sparsity if loss is None else loss, mse, sparsity, fired, l0)


class BaseSAE(nn.Module):
    """Shared parameters and maths. ``scale`` multiplies raw inputs during training (1 after
    :meth:`fold_scale`, when the weights take raw inputs directly).

    Subclasses set the class attributes below and implement :meth:`activate`, :meth:`init_weights` and
    either :meth:`loss` (the loop then uses autograd) or :meth:`train_step` itself (hand-written
    gradients)."""

    apply_b_dec_to_input = False
    # tensors the weights file holds beside W_enc, b_enc, W_dec, b_dec (SAELens' names, e.g. a threshold)
    extra_tensors: tuple[str, ...] = ()
    saelens_architecture = "standard"  # SAELens' name for it in cfg.json
    activation_fn = "relu"
    sparsity_name = "sparsity term"  # what TrainLog.sparsity holds for this architecture
    # True where a training step does not read the run's length (no warm-up or schedule of its own): a
    # shorter run then shares a longer one's constant-learning-rate steps exactly (train_sae's branches).
    # Read from the class's own body only: a subclass with its own step is not length-free until it says so
    length_free = False
    # part of a saved run's key (helpers.sae.train): bump it when a change to this architecture's training
    # step changes what it learns, so saved runs of the old step are trained again rather than reused
    step_version = 0

    def __init__(self, cfg: SAEConfig):
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        d, m = cfg.d_in, cfg.d_sae
        self.make_encoder(d, m)
        self.b_enc = nn.Parameter(torch.zeros(m))
        self.W_dec = nn.Parameter(torch.empty(m, d))
        self.b_dec = nn.Parameter(torch.zeros(d))
        self.register_buffer("scale", torch.ones(()))
        g = torch.Generator().manual_seed(cfg.seed)
        with torch.no_grad():
            self.init_weights(torch.randn(m, d, generator=g))

    # --- the architecture's choices -------------------------------------------------------------

    def make_encoder(self, d: int, m: int) -> None:
        """Create ``W_enc`` [d_in, d_sae] (a subclass may store it transposed, see TopK)."""
        self.W_enc = nn.Parameter(torch.empty(d, m))

    def init_weights(self, w: torch.Tensor) -> None:
        """Initialise from ``w`` [d_sae, d_in], standard normal from the config's seed."""
        raise NotImplementedError

    def activate(self, pre: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def activation_kwargs(self) -> dict:
        """SAELens' ``activation_fn_kwargs``."""
        return {}

    @classmethod
    def knob(cls, cfg: SAEConfig) -> str:
        """The sparsity knob of ``cfg``, as a divergence message names it."""
        raise NotImplementedError

    def loss(self, xs: torch.Tensor, dead: torch.Tensor, step: int, steps: int) -> StepStats:
        """The training loss on scaled inputs ``xs`` (autograd-differentiable ``loss``)."""
        raise NotImplementedError

    def train_step(self, xs: torch.Tensor, dead: torch.Tensor, step: int, steps: int) -> StepStats:
        """Fill every trainable parameter's ``.grad`` with the loss's gradient on ``xs`` and return the
        step's numbers. By default: autograd through :meth:`loss`."""
        for p in self.parameters():
            p.grad = None
        stats = self.loss(xs, dead, step, steps)
        stats.loss.backward()
        return stats

    def after_step(self) -> None:
        """Called after each optimiser step (e.g. to renormalise decoder rows)."""

    def end_training(self) -> None:
        """Drop what training kept between steps (gradients, buffers)."""
        for p in self.parameters():
            p.grad = None

    @classmethod
    def flops_per_token(cls, cfg: SAEConfig) -> float:
        """Matrix-multiply FLOPs one training token of ``cfg`` costs, counted as :meth:`train_step` does
        them (2 FLOPs per multiply-add)."""
        raise NotImplementedError

    def file_tensor(self, name: str) -> torch.Tensor:
        """The tensor ``name`` as the weights file holds it (default: the attribute of that name)."""
        return getattr(self, name).detach()

    @torch.no_grad()
    def set_file_tensor(self, name: str, value: torch.Tensor) -> None:
        """Set what :meth:`file_tensor` ``name`` reads from ``value`` (shape and finiteness checked)."""
        getattr(self, name).copy_(value)

    def file_tensors(self) -> dict[str, torch.Tensor]:
        """Every tensor of the weights file by name: the four SAELens ones and :attr:`extra_tensors`."""
        return {k: self.file_tensor(k).contiguous() for k in (*TENSORS, *self.extra_tensors)}

    # --- shared maths ---------------------------------------------------------------------------

    def feature_id(self, i: object) -> int:
        """``i`` as a latent id of this SAE (0..d_sae-1), or one ``ValueError`` line."""
        return as_index(i, "feature", self.cfg.d_sae, "this SAE")

    def pre_acts(self, x: torch.Tensor) -> torch.Tensor:
        pre = (x * self.scale) @ self.W_enc + self.b_enc
        if self.apply_b_dec_to_input:
            # = (x - b_dec) W_enc + b_enc, written so that b_dec's gradient is a cheap
            # vector-matrix product instead of a second [n, d_sae] x [d_sae, d_in] matmul
            pre = pre - self.b_dec @ self.W_enc
        return pre

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Latent activations ``f`` [n, d_sae] of raw inputs ``x`` [n, d_in]."""
        return self.activate(self.pre_acts(x))

    def decode(self, f: torch.Tensor) -> torch.Tensor:
        """Reconstruction in raw input space."""
        return (f @ self.W_dec + self.b_dec) / self.scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))

    @torch.no_grad()
    def fold_scale(self) -> None:
        """Fold the input scale into the weights: afterwards ``scale == 1`` and every output
        (latents and reconstruction) is unchanged."""
        c = float(self.scale)
        # encoder: (c x - b) W + e = (x - b / c)(c W) + e; decoder: (f W + b) / c = f (W / c) + b / c
        self.W_enc.mul_(c)
        self.W_dec.div_(c)
        self.b_dec.div_(c)
        self.scale.fill_(1.0)
