import numpy as np
import pytest
import torch

from helpers.config import SAEConfig
from helpers.sae.model import TopKSAE, load_sae, make_sae, sae_lens_cfg, save_sae
from helpers.sae.train import train_or_load, train_sae

D = 16


def sparse_data(n=2048, d=D, n_feat=48, active=3, seed=0):
    """Tokens made of a few of ``n_feat`` random directions, plus an offset: what an SAE should find."""
    rng = np.random.default_rng(seed)
    dirs = rng.normal(size=(n_feat, d))
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    codes = np.zeros((n, n_feat))
    for row in codes:
        row[rng.choice(n_feat, active, replace=False)] = rng.uniform(1, 4, active)
    return (codes @ dirs + 5.0).astype(np.float32)


def cfg(arch="topk", **kw):
    base = dict(
        architecture=arch,
        d_in=D,
        expansion=4,
        k=4,
        l1_coefficient=1.0,
        aux_k=8,
        batch_size=128,
        steps=48,  # 3 passes over 2,048 tokens
        lr=3e-3,
        dead_tokens=512,
    )
    return SAEConfig(**{**base, **kw})


@pytest.mark.parametrize("arch", ["l1", "topk"])
def test_fold_scale_keeps_outputs(arch):
    sae = make_sae(cfg(arch))
    with torch.no_grad():
        sae.b_dec.normal_()
        sae.b_enc.normal_()
        sae.scale.fill_(0.37)
    x = torch.randn(10, D)
    f, y = sae.encode(x), sae(x)
    sae.fold_scale()
    assert float(sae.scale) == 1.0
    torch.testing.assert_close(sae.encode(x), f, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(sae(x), y, rtol=1e-5, atol=1e-5)


def test_topk_keeps_k_and_sparse_decode_matches_dense():
    sae = make_sae(cfg("topk", k=5))
    x = torch.randn(20, D)
    f = sae.encode(x)
    assert ((f > 0).sum(1) <= 5).all()
    vals, idx = sae.topk(sae.pre_acts(x))
    torch.testing.assert_close(sae.decode_sparse(vals, idx), sae.decode(f), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("arch", ["l1", "topk"])
def test_training_learns_and_is_seeded(arch):
    from helpers.sae.metrics import sae_metrics

    x = sparse_data()
    c = cfg(arch, l1_coefficient=0.03)
    sae, log = train_sae(c, x, progress=False)
    m = sae_metrics(sae, x)
    assert m["fvu"] < 0.45 and 0 < m["l0"] < 0.9 * c.d_sae  # reconstructs, and sparsely
    sae2, _ = train_sae(c, x, progress=False)
    torch.testing.assert_close(sae.W_dec, sae2.W_dec)  # same seed, same weights


def test_save_load_round_trip_in_sae_lens_layout(tmp_path):
    from safetensors.torch import load_file

    sae, _ = train_sae(cfg("topk", steps=16), sparse_data(), progress=False)
    save_sae(sae, tmp_path, sae_lens_cfg(sae, "tiny", 3))
    w = load_file(str(tmp_path / "sae_weights.safetensors"))
    assert {k: tuple(v.shape) for k, v in w.items()} == {
        "W_enc": (D, 64),
        "b_enc": (64,),
        "W_dec": (64, D),
        "b_dec": (D,),
    }
    back, meta = load_sae(tmp_path, d_in=D)
    assert (
        meta["architecture"] == "topk"
        and meta["d_sae"] == 64
        and meta["hook_name"] == "blocks.3.hook_resid_post"
    )
    assert meta["activation_fn_kwargs"] == {"k": 4} and meta["apply_b_dec_to_input"] is True
    x = torch.randn(30, D) + 5
    with torch.no_grad():
        assert torch.equal(back.encode(x), sae.encode(x))
    assert isinstance(back, TopKSAE)
    with pytest.raises(ValueError, match="d_in = 16 but the activations have 8"):
        load_sae(tmp_path, d_in=8)
    with pytest.raises(FileNotFoundError, match="03_sae_training"):
        load_sae(tmp_path / "nothing")


@pytest.mark.parametrize(
    "bad, match",
    [
        (dict(k=1000), "k = 1000 must lie in 1..d_sae"),
        (
            dict(architecture="l1", l1_coefficient=-1.0),
            r"λ \(l1_coefficient\) = -1.0 must be a finite number >= 0",
        ),
        (dict(architecture="gated"), "not one of"),
    ],
)
def test_bad_config(bad, match):
    with pytest.raises(ValueError, match=match):
        make_sae(cfg(**bad))


def test_bad_activations():
    x = sparse_data(n=64)
    x[3, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        train_sae(cfg(), x, progress=False)
    with pytest.raises(ValueError, match="SAE reads d_in = 16"):
        train_sae(cfg(), np.zeros((10, 8), np.float32), progress=False)


def test_train_or_load_reuses_and_survives_an_interrupted_run(tmp_path):
    x = sparse_data(n=512)
    c = cfg(steps=16)
    sae, _, reused = train_or_load(c, x, "data-a", tmp_path, progress=False)
    assert not reused
    again, log, reused = train_or_load(c, x, "data-a", tmp_path, progress=False)
    assert reused and len(log.mse) > 0
    torch.testing.assert_close(again.W_enc, sae.W_enc)
    # a run cut off before its log was written is trained again, not half-loaded
    (run_dir,) = list(tmp_path.iterdir())
    (run_dir / "log.json").unlink()
    _, _, reused = train_or_load(c, x, "data-a", tmp_path, progress=False)
    assert not reused
    _, _, reused = train_or_load(c, x, "data-b", tmp_path, progress=False)  # other data: new run
    assert not reused


# none; all take part in AuxK (aux_k = 5); each token's top 5 of them in the dense block (<= DENSE_AUX x
# aux_k = 20 dead); the top 5 of 30 by the sparse products
@pytest.mark.parametrize("n_dead", [0, 4, 9, 30])
def test_topk_sparse_backward_matches_dense_autograd(n_dead):
    """The training step's hand-written sparse backward (encoder) gives autograd's dense gradients,
    AuxK included."""
    torch.manual_seed(0)
    c = cfg(k=3, aux_k=5, aux_coefficient=0.25)
    sae = make_sae(c).double()
    with torch.no_grad():
        sae.b_enc.normal_(0, 0.1)
        sae.b_dec.normal_(0, 0.5)
        sae.W_enc.normal_(0, 0.3)
    xs = torch.randn(20, D, dtype=torch.float64)
    dead = torch.zeros(c.d_sae, dtype=torch.bool)
    dead[torch.randperm(c.d_sae)[:n_dead]] = True
    stats = sae.train_step(xs, dead, 0, 1)
    loss = stats.loss
    got = {
        "W_enc": sae.W_enc_t.grad.T,
        "b_enc": sae.b_enc.grad,
        "W_dec": sae.W_dec.grad,
        "b_dec": sae.b_dec.grad,
    }

    ref = {k: getattr(sae, k).detach().clone().requires_grad_() for k in got}
    pre = (xs - ref["b_dec"]) @ ref["W_enc"] + ref["b_enc"]
    vals, idx = pre.topk(c.k, dim=-1)
    xhat = torch.zeros_like(pre).scatter(-1, idx, vals.relu()) @ ref["W_dec"] + ref["b_dec"]
    err = xs - xhat
    a_vals, a_idx = pre.masked_fill(~dead, float("-inf")).topk(min(c.aux_k, n_dead), dim=-1)
    e_hat = torch.zeros_like(pre).scatter(-1, a_idx, a_vals.relu()) @ ref["W_dec"]
    aux = (e_hat - err.detach()).pow(2).sum(-1).mean() if n_dead else 0.0  # no dead latent: no AuxK term
    want_loss = err.pow(2).sum(-1).mean() + 0.25 * aux
    want_loss.backward()
    torch.testing.assert_close(loss, want_loss)
    for k, g in got.items():
        torch.testing.assert_close(g, ref[k].grad, msg=f"gradient of {k}")


def _saved(tmp_path, arch="topk"):
    sae = make_sae(cfg(arch))
    save_sae(sae, tmp_path, sae_lens_cfg(sae, "tiny", 3))
    return sae


def _rewrite_weights(tmp_path, change):
    from safetensors.torch import load_file, save_file

    w = load_file(str(tmp_path / "sae_weights.safetensors"))
    change(w)
    save_file(w, str(tmp_path / "sae_weights.safetensors"))
    from helpers.files import commit

    commit(tmp_path / "workbook_sae.json", [tmp_path / "sae_weights.safetensors", tmp_path / "cfg.json"])


def test_sae_missing_a_tensor_or_holding_nan_is_refused(tmp_path):
    _saved(tmp_path)
    _rewrite_weights(tmp_path, lambda w: w.pop("b_dec"))
    with pytest.raises(ValueError, match=r"missing \['b_dec'\]"):
        load_sae(tmp_path)
    _saved(tmp_path)
    _rewrite_weights(tmp_path, lambda w: w["W_enc"].__setitem__((0, 0), float("nan")))
    with pytest.raises(ValueError, match="W_enc holds NaN"):
        load_sae(tmp_path)


def test_a_sae_lens_standard_cfg_loads_as_relu_not_topk(tmp_path):
    """A SAELens cfg.json with no workbook section once loaded as TopK k = 32 whatever it said."""
    import json

    sae = _saved(tmp_path, "l1")
    meta = json.loads((tmp_path / "cfg.json").read_text())
    meta.pop("workbook")
    (tmp_path / "cfg.json").write_text(json.dumps(meta))
    back, _ = load_sae(tmp_path)
    assert back.cfg.architecture == "l1" and not isinstance(back, TopKSAE)
    x = torch.randn(20, D)
    with torch.no_grad():
        assert torch.equal(back.encode(x), sae.encode(x))
    for arch in ("jumprelu", "gated", None):
        (tmp_path / "cfg.json").write_text(json.dumps({**meta, "architecture": arch}))
        with pytest.raises(ValueError, match="is not one this workbook runs"):
            load_sae(tmp_path)


def test_a_sae_whose_pair_does_not_match_is_refused(tmp_path):
    import json

    _saved(tmp_path)
    meta = json.loads((tmp_path / "cfg.json").read_text())
    meta["workbook"]["k"] = 8  # cfg.json from another save, weights kept: the marker no longer matches
    (tmp_path / "cfg.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="does not match its marker"):
        load_sae(tmp_path)


def test_truncated_weights_are_one_line(tmp_path):
    _saved(tmp_path)
    w = tmp_path / "sae_weights.safetensors"
    w.write_bytes(w.read_bytes()[:200])
    from helpers.files import commit

    commit(tmp_path / "workbook_sae.json", [w, tmp_path / "cfg.json"])
    with pytest.raises(ValueError, match="sae_weights.safetensors in .* is unreadable"):
        load_sae(tmp_path)


def test_train_or_load_retrains_an_interrupted_run(tmp_path):
    from helpers.sae.train import train_or_load

    c, x = cfg("topk", steps=8), sparse_data()
    _, _, reused = train_or_load(c, x, "data", tmp_path, progress=False)
    assert not reused
    _, _, reused = train_or_load(c, x, "data", tmp_path, progress=False)
    assert reused
    run = next(tmp_path.iterdir())
    (run / "workbook_sae.json").unlink()  # killed before the marker
    _, _, reused = train_or_load(c, x, "data", tmp_path, progress=False)
    assert not reused


def test_a_killed_saves_safetensors_temp_does_not_survive_the_next_save(tmp_path):
    """safetensors' save_file writes its own .tmpXXXXXX (21 MB for the workbook's SAE); a kill -9 mid-save
    left it for good. The weights now go through a temp of ours, and an older one is removed."""
    import os
    import time

    leftover = tmp_path / ".tmpAb3xZ9"  # safetensors' name for it
    leftover.write_bytes(b"\0" * 4096)
    old = time.time() - 3600
    os.utime(leftover, (old, old))
    keep = tmp_path / ".tmp_notes"  # not safetensors' pattern: not ours to remove
    keep.write_text("x")
    sae = _saved(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [".tmp_notes", "cfg.json", "sae_weights.safetensors", "workbook_sae.json"]
    )
    back, _ = load_sae(tmp_path)
    assert torch.equal(back.W_dec, sae.W_dec)


def test_save_sae_writes_no_temp_but_its_own(tmp_path, monkeypatch):
    """save_file (whose temp a kill leaves under a name we do not own) is no longer used."""
    import safetensors.torch

    monkeypatch.setattr(safetensors.torch, "save_file", lambda *a, **k: pytest.fail("save_file used"))
    _saved(tmp_path)
    load_sae(tmp_path)
