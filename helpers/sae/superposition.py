"""The toy model of superposition (Elhage et al. 2022, "Toy Models of Superposition") and its inverse
problem, solved with this workbook's own SAE trainer.

The toy model squeezes ``n`` features into ``m < n`` hidden dimensions and back out again::

    h = W x            (W: [m, n], one column per feature: its direction in the hidden space)
    x̂ = ReLU(Wᵀ h + b) = ReLU(Wᵀ W x + b)

Each feature is 0 with probability ``sparsity`` (S), else uniform on [0, 1]; feature i matters
``I_i = decay**i`` to the loss ``mean over the batch of Σ_i I_i (x_i - x̂_i)²``. With dense features
(S = 0) the model keeps the m most important, orthogonal, and drops the rest; with sparse ones
(S ≈ 0.9) it keeps all n, at angles that interfere only when two features are active at once, which
is rare.

The inverse problem is the SAE's: given only the hidden vectors ``h``, find the columns of ``W``.
:func:`recover_features` trains a TopK SAE (:func:`helpers.sae.train.train_sae`) on them and matches
each true feature to its closest decoder row.

The toy model trains in numpy with its gradient written out: a step is ~10 small array operations,
where torch's per-operation overhead on [1024, 5] tensors made an autograd step 3-4x slower; the
widget retrains it on every slider move, so it must take well under a second.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from helpers.config import SAEConfig
from helpers.sae.metrics import fvu
from helpers.sae.model import BaseSAE
from helpers.sae.train import train_sae
from helpers.validate import as_count, as_finite

REPRESENTED = 0.5  # a feature counts as represented when its column of W has norm above this


def toy_loss(x, x_hat, importance):
    """Importance-weighted squared error: Σ_i I_i (x_i - x̂_i)², summed over the features of a row and
    averaged over the rows of the batch. ``x``, ``x_hat`` [batch, n], ``importance`` [n]; numpy arrays
    or torch tensors (the exercise's reference answer)."""
    return ((x - x_hat) ** 2 * importance).sum(-1).mean()


def importance(n: int, decay: float) -> np.ndarray:
    """``I_i = decay**i`` for the n features, float32: feature 0 matters most."""
    return (float(decay) ** np.arange(n)).astype(np.float32)


def sample_features(n_samples: int, n: int, sparsity: float, rng: np.random.Generator) -> np.ndarray:
    """``x`` [n_samples, n] float32: each entry 0 with probability ``sparsity``, else uniform on [0, 1]."""
    on = rng.random((n_samples, n), dtype=np.float32) >= sparsity
    return rng.random((n_samples, n), dtype=np.float32) * on


@dataclass(frozen=True)
class ToyModel:
    """A trained toy model: ``W`` [m, n] (column i = feature i's hidden direction), ``b`` [n], its
    ``loss`` on a fresh batch of 8,192 rows, and the data it was trained on (sparsity, decay)."""

    W: np.ndarray
    b: np.ndarray
    loss: float
    sparsity: float
    decay: float
    seed: int = 0

    @property
    def n(self) -> int:
        return self.W.shape[1]

    @property
    def m(self) -> int:
        return self.W.shape[0]

    @property
    def importance(self) -> np.ndarray:
        return importance(self.n, self.decay)

    @property
    def norms(self) -> np.ndarray:
        """‖W_i‖ per feature: ~1 for a represented feature, ~0 for a dropped one."""
        return np.linalg.norm(self.W, axis=0)

    def represented(self, threshold: float = REPRESENTED) -> np.ndarray:
        """Boolean mask [n] of the features whose column of W has norm above ``threshold``."""
        return self.norms > threshold

    def forward(self, x: np.ndarray) -> np.ndarray:
        """``x̂ = ReLU(Wᵀ W x + b)`` for rows ``x`` [batch, n]."""
        return np.maximum(x @ self.W.T @ self.W + self.b, 0.0)

    def neighbour_angles(self) -> np.ndarray:
        """m = 2 only: the angles (degrees) between neighbouring represented features, going round the
        circle; 5 features in a regular pentagon give 72° each, 2 orthogonal ones 90° and 270°."""
        if self.m != 2:
            raise ValueError(f"neighbour angles need a 2-D hidden space; this toy model has m = {self.m}")
        w = self.W[:, self.represented()]
        if w.shape[1] == 0:
            return np.zeros(0)
        ang = np.sort(np.degrees(np.arctan2(w[1], w[0])) % 360)
        return np.diff(np.append(ang, ang[0] + 360))

    def summary(self) -> str:
        """One line: sparsity, decay, how many features are represented, the neighbour angles (m = 2)."""
        line = (
            f"S = {self.sparsity:g}, decay {self.decay:g}: {int(self.represented().sum())} of {self.n} "
            f"features represented, loss {self.loss:.4f}"
        )
        if self.m == 2:
            line += ", angles between neighbours " + " ".join(f"{a:.0f}°" for a in self.neighbour_angles())
        return line


def _validate(
    n, m, sparsity, decay, steps, batch, seed, lr
) -> tuple[int, int, float, float, int, int, int, float]:
    """The arguments of :func:`train_toy` as plain ints and floats, or one ``ValueError`` line."""
    sparsity = as_finite(sparsity, "sparsity", 0, 1)
    if sparsity == 1:
        raise ValueError(
            "sparsity = 1 must lie in [0, 1): the chance that a feature is 0 (at 1 none ever is on)"
        )
    return (
        as_count(n, "n (features)"),
        as_count(m, "m (hidden dimensions)"),
        sparsity,
        as_finite(decay, "decay (feature i matters decay**i)", 0, 1, open_lo=True),
        as_count(steps, "steps"),
        as_count(batch, "batch"),
        as_count(seed, "seed", 0),
        as_finite(lr, "lr", 0, open_lo=True),
    )


def toy_gradients(
    W: np.ndarray, b: np.ndarray, x: np.ndarray, imp: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Gradients of :func:`toy_loss` with respect to ``W`` [..., m, n] and ``b`` [..., 1, n] on rows
    ``x`` [..., batch, n], written out (the leading axes index independent copies of the model).

    With M = WᵀW, z = x M + b and x̂ = ReLU(z): G = dL/dz = (2 / B) I (x̂ - x) where z > 0, else 0;
    dL/db = Σ_rows G; dL/dM = xᵀ G; and since M = WᵀW, dL/dW = W (dL/dM + dL/dMᵀ)."""
    z = x @ (W.swapaxes(-1, -2) @ W) + b
    g = (np.maximum(z, 0.0) - x) * (z > 0) * (imp * (2.0 / x.shape[-2]))
    g_m = x.swapaxes(-1, -2) @ g
    return W @ (g_m + g_m.swapaxes(-1, -2)), g.sum(-2, keepdims=True)


def train_toy(
    n: int = 5,
    m: int = 2,
    sparsity: float = 0.0,
    decay: float = 0.9,
    steps: int = 1000,
    batch: int = 256,
    seed: int = 0,
    lr: float = 0.02,
    restarts: int = 4,
) -> ToyModel:
    """Train the toy model with Adam on fresh batches of synthetic features and return it.

    ``restarts`` copies train side by side from different random starts (W Xavier-normal, b zero), each
    on its own ``batch`` rows per step, and the one with the lowest loss on a fresh batch is kept: a
    single copy sometimes stalls in a local minimum with a feature dropped (4 features in a square
    where 5 in a pentagon do better), as the paper notes. The learning rate falls linearly to 0 over
    the last 20% of steps. At the defaults, n = 5, m = 2 takes ~0.2 s on 2 CPU cores and ends in the
    paper's geometry: 2 orthogonal features at S = 0, antipodal pairs around S = 0.7, a pentagon of all
    5 from S ≈ 0.9 (decay 0.9)."""
    n, m, sparsity, decay, steps, batch, seed, lr = _validate(n, m, sparsity, decay, steps, batch, seed, lr)
    r = as_count(restarts, "restarts")
    rng = np.random.default_rng(seed)
    W = (rng.standard_normal((r, m, n)) * math.sqrt(2 / (m + n))).astype(np.float32)
    b = np.zeros((r, 1, n), np.float32)
    imp = importance(n, decay)
    params = (W, b)
    m1 = [np.zeros_like(p) for p in params]
    m2 = [np.zeros_like(p) for p in params]
    beta1, beta2, eps = 0.9, 0.999, 1e-8
    decay_steps = max(1, int(0.2 * steps))
    for step in range(steps):
        x = sample_features(r * batch, n, sparsity, rng).reshape(r, batch, n)
        grads = toy_gradients(W, b, x, imp)
        t = step + 1
        step_lr = lr * min(1.0, (steps - step) / decay_steps) * math.sqrt(1 - beta2**t) / (1 - beta1**t)
        for p, g, a, v in zip(params, grads, m1, m2, strict=True):  # Adam, in place
            a *= beta1
            a += (1 - beta1) * g
            v *= beta2
            v += (1 - beta2) * g * g
            p -= step_lr * a / (np.sqrt(v) + eps)
    x = sample_features(8192, n, sparsity, np.random.default_rng([seed, 1]))
    losses = [float(toy_loss(x, np.maximum(x @ W[i].T @ W[i] + b[i], 0.0), imp)) for i in range(r)]
    best = int(np.argmin(losses))
    W_best, b_best = W[best].copy(), b[best, 0].copy()
    W_best.flags.writeable = False
    b_best.flags.writeable = False
    return ToyModel(
        W=W_best, b=b_best, loss=losses[best], sparsity=float(sparsity), decay=float(decay), seed=int(seed)
    )


def sample_hidden(toy: ToyModel, n_samples: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Hidden vectors ``h = W x`` [n_samples, m] of fresh features ``x`` [n_samples, n] drawn as in
    training (same sparsity): what an SAE sees, and the truth it does not."""
    n_samples, seed = as_count(n_samples, "n_samples"), as_count(seed, "seed", 0)
    x = sample_features(n_samples, toy.n, toy.sparsity, np.random.default_rng([seed, 2]))
    return (x @ toy.W.T).astype(np.float32), x


def match_features(W: np.ndarray, W_dec: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each true feature (column of ``W`` [m, n]) the cosine with its best-matching decoder row of
    ``W_dec`` [d_sae, m] and that row's index. Signed: a row pointing the opposite way does not match,
    since the features are never negative."""
    if W.shape[0] != W_dec.shape[1]:
        raise ValueError(
            f"W is {W.shape} but the decoder rows have {W_dec.shape[1]} dimensions, not {W.shape[0]}"
        )
    cols = W / np.maximum(np.linalg.norm(W, axis=0, keepdims=True), 1e-12)
    rows = W_dec / np.maximum(np.linalg.norm(W_dec, axis=1, keepdims=True), 1e-12)
    cos = rows @ cols  # [d_sae, n]
    best = cos.argmax(0)
    return cos[best, np.arange(W.shape[1])], best


@dataclass(frozen=True)
class Recovery:
    """What an SAE trained on a toy model's hidden vectors found: per true feature the cosine with its
    best-matching decoder row (``cosines`` [n]) and that latent (``latents`` [n]); the SAE's unit
    decoder rows (``directions`` [d_sae, m]); the share of its non-zero training vectors each latent
    fires on (``firing`` [d_sae], 0 for a dead latent); which features the toy model represents; the SAE's FVU
    on its training vectors."""

    cosines: np.ndarray
    latents: np.ndarray
    directions: np.ndarray
    firing: np.ndarray
    represented: np.ndarray
    fvu: float

    def dead(self) -> int:
        """Latents that never fired on the non-zero training vectors."""
        return int((self.firing == 0).sum())

    def worst(self) -> float:
        """The lowest cosine over the represented features (a dropped feature has no direction)."""
        return float(self.cosines[self.represented].min()) if self.represented.any() else float("nan")


def recover_features(
    toy: ToyModel,
    *,
    n_samples: int = 16384,
    expansion: int = 8,
    k: int = 1,
    steps: int = 200,
    lr: float = 1e-2,
    seed: int = 0,
) -> tuple[BaseSAE, Recovery]:
    """Train a TopK SAE (``expansion`` x m latents, ``k`` active per vector) on ``n_samples`` hidden
    vectors of ``toy`` with the workbook's trainer (:func:`helpers.sae.train.train_sae`), and match its
    decoder rows to the true features.

    k = 1 because a sparse toy vector mostly holds one feature (at S = 0.9, 80% of the non-zero ones).
    Expansion 8 (16 latents for the 2-D pentagon): with 4 x 2 = 8 latents, 3 of 8 runs left one latent
    between two neighbouring features, matching both at cosine 0.6-0.8. The decoder bias starts at zero,
    not at the data's mean: a vector with no active feature is exactly 0, so the origin is already the
    right centre. The learning rate is 1e-2, not the 3e-3 of the real runs: 16 latents in 2-D are a
    small problem, and at 1e-2 200 steps recovered every feature at cosine >= 0.99 on 5 pentagons and
    4 20-in-5 models (seeds 0-4, 0-3). Trains on one thread: at these sizes (a [1024, 16] product) a
    second thread only adds overhead, and on a busy machine far more (4x slower per step here)."""
    h, _ = sample_hidden(toy, n_samples, seed)
    busy_rows = int(np.any(h != 0, axis=1).sum())
    if busy_rows < toy.n:  # at S = 0.99999 all 16,384 vectors are 0: the trainer's input scale would be 1/0
        raise ValueError(
            f"only {busy_rows:,} of the {len(h):,} hidden vectors of this toy model (sparsity "
            f"{toy.sparsity:g}) are non-zero, fewer than its {toy.n} features: too little to recover them; "
            f"lower the sparsity or raise n_samples"
        )
    cfg = SAEConfig(
        architecture="topk",
        d_in=toy.m,
        expansion=expansion,
        k=k,
        steps=steps,
        lr=lr,
        batch_size=min(1024, n_samples),
        b_dec_init="zeros",
        seed=seed,
    )
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        sae, _ = train_sae(cfg, h, progress=False)
        with torch.no_grad():
            f = sae.encode(torch.as_tensor(h))
            h_hat = sae.decode(f).numpy()
            # a vector with no active feature is 0 and holds nothing to find; TopK still picks a latent for
            # it (the largest encoder bias), which would count as firing on the ~60% of such vectors
            busy = torch.as_tensor(np.any(h != 0, axis=1))
            firing = (f[busy] > 0).float().mean(0).numpy() if busy.any() else np.zeros(cfg.d_sae, np.float32)
    finally:
        torch.set_num_threads(threads)
    W_dec = sae.W_dec.detach().numpy().copy()
    cos, best = match_features(toy.W, W_dec)
    rows = W_dec / np.maximum(np.linalg.norm(W_dec, axis=1, keepdims=True), 1e-12)
    return sae, Recovery(
        cosines=cos,
        latents=best,
        directions=rows,
        firing=firing,
        represented=toy.represented(),
        fvu=fvu(h, h_hat),
    )
