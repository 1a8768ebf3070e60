"""A shorter run branched off a longer one (train_sae's ``branches``) is, number for number, the run trained
alone: the steps curve of notebook 03 costs only its decays."""

import pytest
import torch

from helpers.sae.train import branch_point, train_or_load, train_sae
from tests.unit.sae.test_model import cfg, sparse_data


def _same(a, b) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k


def test_a_branch_equals_the_run_trained_alone():
    x = sparse_data(n=1024)
    # dead_tokens small so that AuxK runs in the shared steps too (its state must be forked with the rest)
    long = cfg(steps=60, dead_tokens=256)
    got = {}
    main, main_log = train_sae(
        long,
        x,
        progress=False,
        branches={s: lambda m, lg, s=s: got.__setitem__(s, (m, lg)) for s in (10, 25, 48)},
    )
    assert sorted(got) == [10, 25, 48]
    for s, (sae, log) in got.items():
        alone, alone_log = train_sae(cfg(steps=s, dead_tokens=256), x, progress=False)
        _same(sae, alone)
        assert sae.cfg.steps == s
        for field in ("step", "tokens", "loss", "mse", "sparsity", "l0"):
            assert getattr(log, field) == getattr(alone_log, field), (s, field)
    _same(main, train_sae(long, x, progress=False)[0])  # the long run is not disturbed by its branches


def test_branch_point_is_where_the_decay_starts():
    c = cfg(steps=2000)
    assert branch_point(c, 250) == 200 and branch_point(c, 2000) == 1600


@pytest.mark.parametrize("arch", ["l1", "batchtopk", "jumprelu", "matryoshka"])
def test_an_architecture_whose_steps_read_the_length_refuses_branches(arch):
    with pytest.raises(ValueError, match="cannot branch shorter runs: its steps depend on the run's length"):
        train_sae(cfg(arch, steps=20), sparse_data(n=512), progress=False, branches={10: print})


def test_a_branch_not_shorter_than_the_run_is_refused():
    with pytest.raises(ValueError, match=r"budgets \[20\] are not shorter than its 20 steps"):
        train_sae(cfg(steps=20), sparse_data(n=512), progress=False, branches={20: print})


def test_train_or_load_saves_the_branches_where_a_plain_call_finds_them(tmp_path):
    x = sparse_data(n=1024)
    c = cfg(steps=40)
    _, _, reused = train_or_load(c, x, "data", tmp_path, progress=False, branches=(10, 20))
    assert not reused
    for s in (10, 20):
        sae, log, reused = train_or_load(cfg(steps=s), x, "data", tmp_path, progress=False)
        assert reused and log.step[-1] == s - 1
        _same(sae, train_sae(cfg(steps=s), x, progress=False)[0])
    # the long run reused and a new budget asked for: it is trained alone, the long run not retrained
    _, _, reused = train_or_load(c, x, "data", tmp_path, progress=False, branches=(10, 20, 30))
    assert reused
    assert train_or_load(cfg(steps=30), x, "data", tmp_path, progress=False)[2]
