import dataclasses
import json
import re

import numpy as np

from helpers.config import SAEConfig
from helpers.sae import bad_runs
from helpers.sae.bad_runs import DIAGNOSES, LABELS, SECRET_ENV, run_order, session_secret, train_bad_runs


def test_run_order_is_a_permutation_fixed_by_the_secret():
    orders = [run_order(f"secret-{i}") for i in range(300)]
    assert all(list(o) == list(LABELS) and sorted(o.values()) == sorted(DIAGNOSES) for o in orders)
    assert len({tuple(o.values()) for o in orders}) == 6  # every order occurs
    assert run_order("secret-7") == orders[7]  # the same secret, the same order


def test_the_grader_secret_overrides_the_session_one(monkeypatch):
    monkeypatch.delenv(SECRET_ENV, raising=False)
    assert re.fullmatch(r"[0-9a-f]{32}", session_secret())  # drawn once per process
    assert session_secret() == bad_runs._SESSION_SECRET
    monkeypatch.setenv(SECRET_ENV, "graded")
    assert session_secret() == "graded"


def test_train_bad_runs_shuffles_labels_and_reuses_runs(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    x = (rng.normal(size=(600, 16)) * np.linspace(0.5, 3, 16)).astype(np.float32)
    base = SAEConfig(architecture="l1", d_in=16, expansion=4, l1_coefficient=5.0, lr=1e-3, batch_size=64)
    for secret in ("one", "two", "three"):
        monkeypatch.setenv(SECRET_ENV, secret)
        bad = train_bad_runs(base, x[:500], x[500:], "key", tmp_path, steps=3)
        assert [f.name for f in dataclasses.fields(bad)] == ["table", "latents"]  # no hashes, no configs
        assert list(bad.table.index) == list(LABELS) and list(bad.table.columns) == [
            "L0",
            "FVU",
            "dead",
            "dense",
        ]
        widths = {k: bad.latents[k].shape[1] for k in LABELS}
        assert widths == {k: 16 if m == "width 1x" else 64 for k, m in run_order(secret).items()}
    cfgs = [json.loads((p / "cfg.json").read_text())["workbook"] for p in tmp_path.iterdir()]
    assert len(cfgs) == 3  # one run per mistake, reused under every shuffle
    got = {(c["expansion"], c["l1_coefficient"], c["lr"], c["steps"]) for c in cfgs}
    # λ / 100, learning rate x 50, and width 1x at the same compute: expansion x the steps
    assert got == {(4, 0.05, 1e-3, 3), (4, 5.0, 0.05, 3), (1, 5.0, 1e-3, 12)}
    assert {c["data_key"] for c in cfgs} == {"key|bad500"}  # the rows' count is part of the key
