"""Graded checks of Notebook 06 (steering)."""

from __future__ import annotations

from collections.abc import Callable

from helpers.exercises.common import CheckFailed, call, passed

# the expected edit on the fixed case below (clamp_edit's; a unit test keeps them equal)
CLAMP_EDIT = [
    [-2.25313, -1.615872, -0.001834, 0.444177, 0.176395, 1.4806],
    [0.497753, 0.482446, 0.228399, -0.567854, 0.669756, -0.510293],
    [-0.602877, -0.356145, -0.628512, 0.693497, 0.260694, 0.394351],
    [-0.531628, 0.294264, 0.062969, 0.218159, -0.530074, -1.01634],
]


def clamp_case():
    """The fixed case: an L1 SAE still scaling its inputs by 0.5, 4 residual vectors, feature 2 set to 3."""
    import torch

    from helpers.config import SAEConfig
    from helpers.sae.model import make_sae

    sae = make_sae(SAEConfig(architecture="l1", d_in=6, expansion=2, seed=3))
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        sae.W_enc.copy_(torch.randn(6, 12, generator=g))
        sae.b_enc.fill_(0.5)
        sae.b_dec.copy_(torch.randn(6, generator=g))
        sae.scale.fill_(0.5)
    return sae, torch.randn(4, 6, generator=g), 2, 3.0


def check_clamp_edit(fn: Callable) -> None:
    """Exercise: h + (c - f_i(h)) · W_dec,i in raw space, for an SAE that still scales its inputs."""
    import torch

    from helpers.analysis import steering

    sae, h, i, c = clamp_case()
    want = torch.tensor(CLAMP_EDIT)
    with torch.no_grad():
        got = torch.as_tensor(
            call(fn, h, sae, i, c, forbidden=[steering.clamp_edit, steering.clamp_features]),
            dtype=torch.float32,
        )
        if got.shape == want.shape and torch.allclose(got, want, atol=1e-5):
            passed("clamp_edit", "feature set to c, reconstruction error kept")
            return
        f = sae.encode(h)
        f2 = f.clone()
        f2[:, i] = c
        wrong = {
            "forgot to keep the error term: returning the SAE's reconstruction throws away everything the "
            "SAE misses; add (c - f_i) · W_dec,i to h instead": sae.decode(f2),
            "clamped in the scaled space but added in the raw space: the SAE multiplies inputs by sae.scale, "
            "so its decoder row in raw space is W_dec[i] / sae.scale": h
            + (c - f[:, i : i + 1]) * sae.W_dec[i],
            "forgot to subtract the feature's current value: add (c - f_i) · W_dec,i, not c · W_dec,i": h
            + c * sae.W_dec[i] / sae.scale,
        }
    for hint, value in wrong.items():
        if got.shape == value.shape and torch.allclose(got, value, atol=1e-5):
            raise CheckFailed(hint)
    raise CheckFailed("expected h + (c - f_i(h)) * W_dec[i] / sae.scale, with f = sae.encode(h)")
