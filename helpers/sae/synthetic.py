"""Synthetic activations with known ground-truth features, to ask how well an SAE recovers them.

Each token is x = Σ_i a_i d_i: ``n_features`` unit directions d_i in ``d`` dimensions (more features than
dimensions: superposition), feature i firing with probability p_i (Zipf-like by default: a few common
features, many rare ones) with a magnitude a_i = 0.5 + Exponential(mean 0.5) (mean 1, never below 0.5).
Options:

* correlated groups: members of a group fire together more often than chance, through a Gaussian copula
  (feature i fires when √ρ s_g + √(1-ρ) e_i < Φ⁻¹(p_i), with s_g shared by the group), which keeps every
  p_i exactly;
* hierarchies: a child fires only when its parent fires (with probability ``child_prob`` one of the
  parent's children, chosen uniformly, fires with it), the setting in which feature absorption appears:
  an SAE can fold the parent's direction into each child's latent and let the parent's latent go silent
  whenever a child fires.

:func:`recovery` matches SAE latents to true features (per-feature best cosine; mean cosine after a
one-to-one Hungarian match, the MCC-style score) and :func:`absorption` measures the parent's loss.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from scipy.stats import norm

from helpers.validate import as_count, as_finite


@dataclass
class SyntheticData:
    """``acts`` [n, d] float32 = ``codes`` [n, n_features] @ ``dirs`` [n_features, d]; ``freqs`` the firing
    probabilities used; ``parent`` [n_features] each feature's parent (-1: none)."""

    acts: np.ndarray
    codes: np.ndarray
    dirs: np.ndarray
    freqs: np.ndarray
    parent: np.ndarray
    groups: list[tuple[int, ...]] = field(default_factory=list)

    def children(self, p: int) -> list[int]:
        return [int(c) for c in np.flatnonzero(self.parent == p)]


def zipf_frequencies(n_features: int, top: float = 0.2, exponent: float = 0.5) -> np.ndarray:
    """p_i = top / (i + 1)^exponent: feature 0 fires with probability ``top``, later ones less often."""
    as_count(n_features, "n_features")
    as_finite(top, "top", 0, 1, open_lo=True)
    as_finite(exponent, "exponent", 0)
    return top / np.arange(1, n_features + 1) ** exponent


def unit_directions(n_features: int, d: int, seed: int = 0) -> np.ndarray:
    """``n_features`` random unit directions in ``d`` dimensions [n_features, d] (float64)."""
    dirs = np.random.default_rng(seed).normal(size=(as_count(n_features, "n_features"), as_count(d, "d")))
    return dirs / np.linalg.norm(dirs, axis=1, keepdims=True)


def make_synthetic(
    n_tokens: int,
    n_features: int,
    d: int,
    *,
    freqs: np.ndarray | None = None,
    groups: list[tuple[int, ...]] = (),
    rho: float = 0.5,
    hierarchy: dict[int, tuple[int, ...]] | None = None,
    child_prob: float = 0.5,
    seed: int = 0,
) -> SyntheticData:
    """Tokens of known features (see the module's docstring). ``freqs`` defaults to :func:`zipf_frequencies`;
    ``groups`` are correlated with copula correlation ``rho``; ``hierarchy`` maps a parent to its children
    (a child's own entry in ``freqs`` is ignored: it fires, when its parent does, with probability
    ``child_prob`` / number of children)."""
    n, m = as_count(n_tokens, "n_tokens"), as_count(n_features, "n_features")
    as_finite(rho, "rho", 0, 1)
    as_finite(child_prob, "child_prob", 0, 1)
    p = zipf_frequencies(m) if freqs is None else np.asarray(freqs, dtype=float)
    if p.shape != (m,) or not ((p >= 0) & (p <= 1)).all():
        raise ValueError(f"freqs must be {m} probabilities in [0, 1]; got shape {p.shape}")
    hierarchy = hierarchy or {}
    parent = np.full(m, -1)
    for par, kids in hierarchy.items():
        for c in kids:
            if not (0 <= c < m and 0 <= par < m and c != par) or parent[c] >= 0 or c in hierarchy:
                raise ValueError(
                    f"hierarchy {hierarchy}: each child must be a feature id other than its parent, with one "
                    "parent and no children of its own"
                )
            parent[c] = par
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n, m))
    for g in groups:
        g = list(g)
        if not g or min(g) < 0 or max(g) >= m:
            raise ValueError(f"group {g} holds feature ids outside 0..{m - 1}")
        z[:, g] = np.sqrt(rho) * rng.standard_normal((n, 1)) + np.sqrt(1 - rho) * z[:, g]
    fires = z < norm.ppf(p)
    for par, kids in hierarchy.items():
        kids = list(kids)
        fires[:, kids] = False
        pick = rng.integers(len(kids), size=n)
        on = fires[:, par] & (rng.random(n) < child_prob)
        fires[np.flatnonzero(on), np.asarray(kids)[pick[on]]] = True
    codes = np.where(fires, 0.5 + rng.exponential(0.5, size=(n, m)), 0.0)
    dirs = unit_directions(m, d, seed + 1)
    acts = (codes @ dirs).astype(np.float32)
    return SyntheticData(acts, codes.astype(np.float32), dirs, p, parent, [tuple(g) for g in groups])


def _decoder(sae_or_dirs) -> np.ndarray:
    w = getattr(sae_or_dirs, "W_dec", sae_or_dirs)
    return (w.detach().cpu().numpy() if isinstance(w, torch.Tensor) else np.asarray(w)).astype(np.float64)


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.linalg.norm(a, axis=1, keepdims=True).clip(1e-12)
    b = b / np.linalg.norm(b, axis=1, keepdims=True).clip(1e-12)
    return a @ b.T


@dataclass
class Recovery:
    """``best_cos`` [n_features]: each true feature's largest cosine with any decoder row; ``match``
    [n_features] the latent a one-to-one (Hungarian) match gives it (-1: none, when d_sae < n_features),
    ``matched_cos`` its cosine (0 where unmatched); ``mcc`` = mean of ``matched_cos``."""

    best_cos: np.ndarray
    match: np.ndarray
    matched_cos: np.ndarray
    mcc: float


def recovery(sae, true_dirs: np.ndarray) -> Recovery:
    """How well the decoder rows of ``sae`` (an SAE, or a [d_sae, d] array) recover ``true_dirs``
    [n_features, d]. Cosines are signed: a latent pointing against a feature does not recover it. The
    match maximises the summed cosine, one latent per feature (``scipy.optimize.linear_sum_assignment``),
    so one latent cannot be credited for two features, as a per-feature best can."""
    W, D = _decoder(sae), np.asarray(true_dirs, dtype=np.float64)
    if W.ndim != 2 or D.ndim != 2 or W.shape[1] != D.shape[1]:
        raise ValueError(f"decoder {W.shape} and true directions {D.shape} must be 2-D with the same width")
    cos = _cosines(D, W)
    rows, cols = linear_sum_assignment(cos, maximize=True)
    match = np.full(len(D), -1)
    match[rows] = cols
    matched = np.where(match >= 0, cos[np.arange(len(D)), match.clip(0)], 0.0)
    return Recovery(cos.max(1), match, matched, float(matched.mean()))


def absorption(
    latents: np.ndarray, W_dec, data: SyntheticData, match: np.ndarray
) -> dict[tuple[int, int], float]:
    """For every (parent, child) pair of ``data``: the share of the parent's direction that the parent's
    latent ℓ = ``match[parent]`` stops carrying when the child fires.

    On token t where the parent fires with magnitude a_p(t), latent ℓ carries
    s(t) = f_ℓ(t) (w_ℓ · d_p) / a_p(t) of it (f_ℓ its activation in ``latents`` [n, d_sae], w_ℓ its
    decoder row ``W_dec`` [d_sae, d], d_p the parent's unit direction): 1 when the latent alone rebuilds
    the parent's part of x. Then

        absorption(p, c) = 1 - mean s(t) over tokens where p and c fire / mean s(t) over tokens where p fires
                           and none of its children does,

    0 when the parent's latent carries the parent as well with the child as without, 1 when it is silent
    whenever the child fires (the child's latent took the parent's direction: absorbed), between for
    partial absorption (negative: it carries more with the child). NaN where either set of tokens is empty
    or the parent's latent carries nothing without children."""
    f = np.asarray(latents, dtype=np.float64)
    W = _decoder(W_dec)
    out: dict[tuple[int, int], float] = {}
    for p in sorted({int(q) for q in data.parent if q >= 0}):
        kids = data.children(p)
        lat = int(match[p])
        on = data.codes[:, p] > 0
        s = np.zeros(len(f))
        if lat >= 0:
            s[on] = f[on, lat] * (W[lat] @ data.dirs[p]) / data.codes[on, p]
        alone = on & ~(data.codes[:, kids] > 0).any(1)
        base = s[alone].mean() if alone.any() else np.nan
        for c in kids:
            both = on & (data.codes[:, c] > 0)
            ok = both.any() and np.isfinite(base) and base != 0
            out[(p, c)] = float(1 - s[both].mean() / base) if ok else float("nan")
    return out


@torch.no_grad()
def sae_absorption(sae, data: SyntheticData, match: np.ndarray | None = None) -> dict[tuple[int, int], float]:
    """:func:`absorption` of an SAE on ``data`` (its latents on ``data.acts``; ``match`` from
    :func:`recovery` unless given)."""
    if match is None:
        match = recovery(sae, data.dirs).match
    f = sae.encode(torch.as_tensor(data.acts)).cpu().numpy()
    return absorption(f, sae.W_dec, data, match)
