"""The bench script's pure parts (it is never run by the tests: make bench)."""

from __future__ import annotations

import importlib.util
import sys

import pytest

from helpers.config import ROOT


@pytest.fixture(scope="module")
def bench():
    sys.path.insert(0, str(ROOT / "bench"))
    spec = importlib.util.spec_from_file_location("bench_script", ROOT / "bench" / "bench.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    yield mod
    sys.path.remove(str(ROOT / "bench"))


def test_budgets_and_markdown(bench):
    sae = [
        dict(
            trainer="ours",
            variant="topk",
            tokens_per_s=1200.0,
            fraction_of_matmul=0.65,
            l0=32.0,
            fvu=0.27,
            dead=0.01,
        ),
        dict(
            trainer="ours",
            variant="l1",
            tokens_per_s=900.0,
            fraction_of_matmul=0.5,
            l0=40.0,
            fvu=0.45,
            dead=0.02,
        ),
        dict(trainer="SAELens", variant="topk", tokens_per_s=1100.0, l0=32.0, fvu=0.28, dead=0.02),
    ]
    res = {
        "load": {"load_s": 2.5, "import_s": 1.0, "second_load_s": 0.2},
        "sae": sae,
        "capture": {
            "fraction_of_ideal": 0.85,
            "layer": 16,
            "n_blocks": 30,
            "n_tokens": 100,
            "early_tokens_per_s": 10.0,
            "full_tokens_per_s": 5.0,
            "speedup": 2.0,
            "ideal_speedup": 1.76,
        },
        "notebooks": [{"profile": "full", "notebook": "01_x", "seconds": 1100.0, "peak_rss_gb": 1.0}],
        "generation": {"fraction_of_matmul": 0.38},
        "generation_corpus": {"fraction_of_matmul": 0.52},
        "data": {"sae_training_rows": 282_031},
    }
    got = {b["budget"]: b["met"] for b in bench.budgets(res)}
    assert got["cached model load (fresh process)"] == "yes"
    assert got["capture speed-up vs ideal"] == "NO"
    assert got["SAE training l1: fraction of matmul roofline"] == "NO"
    assert got["ours topk / SAELens topk: tokens/s"] == "NO"  # 1200 / 1100 = 1.09x < 1.2x
    assert got["all notebooks, full profile"] == "NO"  # 1100 s > 2.5 x 354 + 180 s (no machine info: AVX2)
    assert got["generation, 50 prompts: fraction of matmul roofline"] == "NO"  # 38% < 40%
    assert got["generation, 250 prompts: fraction of matmul roofline"] == "yes"  # 52% >= 50%
    assert got["distinct SAE training rows (full profile)"] == "yes"
    res |= {
        "budgets": bench.budgets(res),
        "machine": {"cpu": "cpu", "cores": 2, "matmul_gflops": 100.0, "torch": "t"},
        "date": "d",
        "commit": "c",
        "saelens": None,
        "sae_setup": {
            "steps": 1,
            "batch_size": 2,
            "train_tokens": 3,
            "eval_tokens": 4,
            "expansion": 8,
            "k": 32,
            "l1_coefficient": 5.0,
        },
    }
    md = bench.markdown(res)
    assert "| ours | topk | - | 1,200 | 65% | 32.0 | 0.270 | 1.0% |" in md
    assert "| SAELens | topk | - | 1,100 | - |" in md


def test_match_l0_finds_the_lambda_for_a_target_l0(bench):
    """L1's L0 falls as λ rises; the secant search lands near the target and returns the closest run."""
    calls = []

    def train(lam):
        calls.append(lam)
        return {"l0": 200.0 / lam**0.8, "lam": lam}

    (row,) = bench.match_l0(train, 5.0, 200.0 / 5.0**0.8, 30.0, tries=3)
    assert abs(row["l0"] - 30.0) <= 0.5 and len(calls) <= 3
    assert bench.match_l0(train, 5.0, 30.2, 30.0) == []  # already matched: no extra run


def test_l1_quality_is_compared_at_matched_l0(bench):
    sae = [
        dict(
            trainer="ours",
            variant="topk",
            tokens_per_s=1.0,
            fraction_of_matmul=0.1,
            l0=32.0,
            fvu=0.27,
            dead=0.0,
        ),
        dict(
            trainer="ours",
            variant="l1",
            tokens_per_s=3.0,
            fraction_of_matmul=0.7,
            l0=40.0,
            fvu=0.46,
            dead=0.0,
        ),
        dict(trainer="SAELens", variant="standard", tokens_per_s=2.0, l0=37.5, fvu=0.47, dead=0.1),
        dict(
            trainer="ours", variant="l1 (λ for SAELens' L0)", tokens_per_s=3.0, l0=37.6, fvu=0.471, dead=0.0
        ),
    ]
    got = {b["budget"]: b for b in bench.budgets({"sae": sae})}
    row = got["ours l1 vs SAELens standard: FVU (L0 37.6 vs 37.5)"]
    assert row["measured"] == "0.471 vs 0.470" and row["met"] == "yes"
    assert got["ours l1 / SAELens standard: tokens/s"]["measured"] == "1.500x"  # speed at the shared λ
