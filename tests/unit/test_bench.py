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
            fvu_themed=0.27,
            fvu_corpus=0.2,
            dead=0.01,
            dead_rows=100_000,
        ),
        dict(
            trainer="ours",
            variant="l1",
            tokens_per_s=900.0,
            fraction_of_matmul=0.5,
            l0=40.0,
            fvu_themed=0.45,
            fvu_corpus=0.4,
            dead=0.02,
            dead_rows=100_000,
        ),
        dict(
            trainer="SAELens",
            variant="topk",
            lr=1e-3,
            chosen=False,
            tokens_per_s=1000.0,
            l0=32.0,
            fvu_themed=0.30,
            fvu_corpus=0.25,
            dead=0.03,
            dead_rows=100_000,
        ),
        dict(
            trainer="SAELens",
            variant="topk",
            lr=3e-3,
            chosen=True,
            tokens_per_s=1100.0,
            l0=32.0,
            fvu_themed=0.28,
            fvu_corpus=0.19,
            dead=0.02,
            dead_rows=100_000,
        ),
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
    assert got["SAE training topk: fraction of matmul roofline"] == "yes"  # 65% >= 50%
    assert got["ours topk / SAELens topk (its best lr): tokens/s"] == "NO"  # 1200 / 1100 = 1.09x < 1.2x
    assert got["ours topk vs SAELens topk: held-out FVU, themed prompts"] == "yes"  # 0.27 < 0.28 (chosen lr)
    assert got["ours topk vs SAELens topk: held-out FVU, corpus prompts"] == "NO"  # 0.20 > 0.19
    assert got["ours topk vs SAELens topk: dead on 100,000 training rows"] == "yes"
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
            "eval_tokens": {"themed": 4, "corpus": 5},
            "expansion": 8,
            "k": 32,
            "l1_coefficient": 5.0,
        },
    }
    md = bench.markdown(res)
    assert "| ours | topk | - | - | - | 1,200 | 65% | 32.0 | 0.270 | 0.200 | 1.00% |" in md
    assert "| SAELens | topk | 0.003 | True | - | 1,100 | - | 32.0 | 0.280 | 0.190 | 2.00% |" in md
