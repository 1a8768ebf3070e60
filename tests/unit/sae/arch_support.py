"""Checks every SAE architecture must pass, shared by tests/unit/sae/test_<architecture>.py."""

from __future__ import annotations

import numpy as np
import torch

from helpers.sae.model import load_sae, make_sae, sae_lens_cfg, save_sae
from helpers.sae.train import train_sae
from tests.unit.sae.test_model import cfg, sparse_data


def trains_and_mse_falls(arch: str, **kw):
    """A few steps through train_sae: finite loss, MSE falling. Returns (sae, log, config)."""
    c = cfg(arch, steps=48, **kw)
    sae, log = train_sae(c, sparse_data(), progress=False, log_every=1)
    assert np.isfinite(log.loss).all()
    assert np.mean(log.mse[-5:]) < 0.7 * np.mean(log.mse[:3])
    return sae, log, c


def round_trip_keeps_outputs(sae, tmp_path) -> None:
    save_sae(sae, tmp_path, sae_lens_cfg(sae, "tiny", 3))
    back, meta = load_sae(tmp_path)
    assert type(back) is type(sae) and meta["architecture"] == sae.saelens_architecture
    x = torch.as_tensor(sparse_data(n=64, seed=5))
    with torch.no_grad():
        torch.testing.assert_close(back.encode(x), sae.encode(x), rtol=0, atol=0)
        torch.testing.assert_close(back(x), sae(x), rtol=0, atol=0)


def fold_scale_keeps_outputs(arch: str, **kw) -> None:
    sae = make_sae(cfg(arch, **kw))
    with torch.no_grad():
        sae.b_dec.normal_()
        sae.b_enc.normal_()
        sae.scale.fill_(0.37)
    x = torch.randn(10, sae.cfg.d_in) * 3
    with torch.no_grad():
        f, y = sae.encode(x), sae(x)
        sae.fold_scale()
        assert float(sae.scale) == 1.0
        torch.testing.assert_close(sae.encode(x), f, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(sae(x), y, rtol=1e-5, atol=1e-5)
    assert (f > 0).any()  # the check saw active latents
