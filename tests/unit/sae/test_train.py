"""The trainer refuses what it cannot learn from, and a diverging run, in one line; nothing is cached."""

import numpy as np
import pytest
import torch

from helpers.sae import train as T
from helpers.sae.model import make_sae
from helpers.sae.train import TrainLog, train_or_load, train_sae
from tests.unit.sae.test_model import cfg, sparse_data


@pytest.mark.parametrize("arch", ["topk", "l1"])
def test_a_diverging_run_is_refused_naming_lr_and_nothing_is_cached(tmp_path, arch):
    """lr 1e30 once returned a NaN SAE and cached it; every rerun then failed on the cached NaN."""
    c = cfg(arch, steps=20, lr=1e30)
    with pytest.raises(ValueError, match=r"diverged: its loss was nan .* lr = 1e\+30 is too high; lower it"):
        train_or_load(c, sparse_data(n=512), "data", tmp_path, progress=False)
    assert list(tmp_path.iterdir()) == []  # nothing saved
    with pytest.raises(ValueError, match=r"lr = 1e\+30 is too high"):  # the rerun says the same
        train_or_load(c, sparse_data(n=512), "data", tmp_path, progress=False)


def test_an_l1_coefficient_that_overflows_the_loss_is_named():
    with pytest.raises(
        ValueError, match=r"at step 1 of .* λ = 1e\+38 overflows the loss or its gradient; lower it"
    ):
        train_sae(cfg("l1", l1_coefficient=1e38), sparse_data(n=512), progress=False)


def test_a_nan_run_cached_by_older_code_is_retrained_and_refused(tmp_path, monkeypatch):
    """The cached NaN SAE said "re-run notebook 03", which loaded the same cache again."""
    c = cfg(steps=8, lr=1e30)
    nan_sae = make_sae(c)
    with torch.no_grad():
        nan_sae.W_dec.fill_(float("nan"))
    with monkeypatch.context() as m:  # the old trainer: returned the NaN SAE, which was saved
        m.setattr(T, "train_sae", lambda *a, **k: (nan_sae, TrainLog()))
        train_or_load(c, sparse_data(n=512), "data", tmp_path, progress=False)
    with pytest.raises(ValueError, match=r"lr = 1e\+30 is too high"):
        train_or_load(c, sparse_data(n=512), "data", tmp_path, progress=False)


def test_all_zero_activations_are_refused():
    with pytest.raises(ValueError, match="activation rows are all zero .*nothing to learn"):
        train_sae(cfg(), np.zeros((256, 16), np.float32), progress=False)


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        (dict(grad_clip=float("nan")), "grad_clip = nan must be a finite number > 0"),
        (dict(lr=float("inf")), "lr = inf must be a finite number > 0"),
        (dict(architecture="l1", l1_coefficient="5"), r"λ \(l1_coefficient\) = '5' must be a number"),
    ],
)
def test_non_finite_knobs_are_refused_before_training(tmp_path, bad, match):
    with pytest.raises(ValueError, match=match):
        train_sae(cfg(**bad), sparse_data(n=256), progress=False)
    with pytest.raises(ValueError, match=match):
        train_or_load(cfg(**bad), sparse_data(n=256), "data", tmp_path, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_a_new_step_version_retrains_only_its_architecture(monkeypatch, tmp_path):
    """Runs saved by an architecture's old step are not reused once its step changes; TopK's saved runs
    keep their keys (its step did not change)."""
    from helpers.sae.batchtopk import BatchTopKSAE
    from helpers.sae.topk import TopKSAE

    before = {a: T._run_dir(cfg(a), "data", tmp_path) for a in ("topk", "batchtopk", "matryoshka")}
    monkeypatch.setattr(BatchTopKSAE, "step_version", BatchTopKSAE.step_version + 1)
    after = {a: T._run_dir(cfg(a), "data", tmp_path) for a in before}
    assert after["topk"] == before["topk"] and TopKSAE.step_version == 0
    assert after["batchtopk"] != before["batchtopk"] and after["matryoshka"] != before["matryoshka"]


def test_topk_and_l1_run_keys_are_those_saved_before_step_versions():
    """Adding step versions left the keys of the unchanged architectures as they were (saved runs reused)."""
    from helpers.files import params_key

    for a in ("topk", "l1"):
        c = cfg(a)
        old = params_key({"cfg": c.key(), "data": "d", "trainer": T.TRAINER_VERSION})
        assert T._run_dir(c, "d", "f").name == f"{c.name()}-{old[:8]}"
