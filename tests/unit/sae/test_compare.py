import numpy as np
import pytest

from helpers.config import SAEConfig
from helpers.sae.compare import SeedSpread, best_by_fvu, choose, run_table


def test_seed_spread_summary():
    s = SeedSpread((0.2, 0.3, 0.25))
    assert s.mean == pytest.approx(0.25) and s.low == 0.2 and s.high == 0.3
    assert "3 seeds" in str(s)
    with pytest.raises(ValueError, match="at least one"):
        SeedSpread(())


def test_choose_needs_every_seed_to_win():
    a, b = SeedSpread((0.20, 0.21, 0.22)), SeedSpread((0.25, 0.26, 0.27))
    assert choose(a, b, ("TopK", "L1"), "TopK")[0] == "TopK"
    assert choose(b, a, ("TopK", "L1"), "TopK")[0] == "L1"  # the other recipe wins where it is lower
    overlap = SeedSpread((0.21, 0.30))
    kept, why = choose(overlap, a, ("TopK", "L1"), "L1")
    assert kept == "L1" and "overlap" in why
    with pytest.raises(ValueError, match="default"):
        choose(a, b, ("TopK", "L1"), "JumpReLU")


def test_run_table_varies_one_field_and_picks_lowest_fvu(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1024, 8)).astype(np.float32)
    cfg = SAEConfig(architecture="topk", d_in=8, expansion=2, k=2, aux_k=4, batch_size=128, steps=4)
    table, saes = run_table(cfg, {"lr": [1e-3, 1e-2]}, x, "d", tmp_path, x[:256])
    assert list(table.index) == [1e-3, 1e-2] and len(saes) == 2
    assert set(table.columns) == {"l0", "fvu", "dead"}
    assert best_by_fvu(table) == table["fvu"].idxmin()
    with pytest.raises(ValueError, match="one field"):
        run_table(cfg, {"lr": [1e-3], "seed": [0]}, x, "d", tmp_path, x)
    with pytest.raises(ValueError, match="no values"):
        run_table(cfg, {"seed": []}, x, "d", tmp_path, x)
