"""Where one SAE training step's time goes: ``train_sae`` under ``torch.profiler`` for a few steps, self CPU
time per step grouped into the step's parts. Standalone so that it also runs against an older checkout's
helpers (``PYTHONPATH=<checkout> python bench/step_profile.py``): the bench's "before" and "after".

    python bench/step_profile.py [--steps 20] [--arch topk] [--rows acts.npy]
    python bench/step_profile.py --aux --steps 2000 --rows acts.npy   # AuxK's share of a whole run
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict

import numpy as np

# op name -> part of the step (first match wins); anything else is "other"
PARTS = (
    ("encoder product (dense)", ("aten::addmm", "aten::mm", "aten::addmv", "aten::_addmm_activation")),
    ("top-k selection", ("aten::topk", "aten::sort", "aten::argsort")),
    ("sparse products", ("embedding_bag", "sparse", "aten::_to_sparse", "aten::index_add", "aten::bincount")),
    ("optimiser (Adam) + clipping", ("adam", "aten::linalg_vector_norm", "aten::_foreach", "clip")),
    (
        "memory (copy, fill, gather)",
        (
            "aten::copy_",
            "aten::fill_",
            "aten::zero_",
            "aten::index",
            "aten::cat",
            "aten::empty",
            "aten::clone",
            "aten::contiguous",
            "aten::scatter",
        ),
    ),
)


def part_of(name: str) -> str:
    low = name.lower()
    for part, keys in PARTS:
        if any(k.lower() in low for k in keys):
            return part
    return "elementwise and other"


def profile_steps(cfg, x: np.ndarray, steps: int) -> dict[str, float]:
    """ms per step of each part (self CPU time), plus the wall ms per step without the profiler."""
    from torch.profiler import ProfilerActivity, profile

    from helpers.sae.train import train_sae

    run = type(cfg)(**{**cfg.__dict__, "steps": steps})
    train_sae(run, x, progress=False)  # warm-up: allocator, threads
    _, log = train_sae(run, x, progress=False)
    wall = log.seconds / steps * 1e3
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        train_sae(run, x, progress=False)
    parts: dict[str, float] = defaultdict(float)
    for ev in prof.key_averages():
        if ev.self_cpu_time_total > 0 and not ev.key.startswith(("ProfilerStep", "Optimizer.")):
            parts[part_of(ev.key)] += ev.self_cpu_time_total / 1e3 / steps
    total = sum(parts.values())
    # the profiled step runs slower than the plain one: scale the parts to the wall time
    return {
        "wall_ms_per_step": wall,
        **{k: v * wall / total for k, v in sorted(parts.items(), key=lambda kv: -kv[1])},
    }


def aux_share(cfg, x: np.ndarray, window: int = 200) -> dict:
    """A whole TopK run with AuxK's two paths timed and the dead count logged at every step: how much of the
    run AuxK takes, and how the dead count (silent for ``cfg.dead_tokens`` tokens) grows with it. On notebook
    03's rows at 2,000 steps (2-core EPYC, 203 GFLOP/s): 69 of 182.5 s, the dead count rising from ~180 to
    ~1,200, the sparse path (more than ``DENSE_AUX`` x aux_k dead) on 881 steps at ~50 ms each."""
    import time

    from helpers.sae import topk as T
    from helpers.sae.train import train_sae

    seconds: dict[str, float] = defaultdict(float)
    calls: dict[str, int] = defaultdict(int)
    dead: list[int] = []
    originals = {"dense": T.TopKSAE._aux_dense, "sparse": T.TopKSAE._aux_sparse}

    def timed(kind):
        def run(self, pre, dead_idx, *rest):
            t = time.perf_counter()
            out = originals[kind](self, pre, dead_idx, *rest)
            seconds[kind] += time.perf_counter() - t
            calls[kind] += 1
            dead.append(len(dead_idx))
            return out

        return run

    T.TopKSAE._aux_dense, T.TopKSAE._aux_sparse = timed("dense"), timed("sparse")
    try:
        _, log = train_sae(cfg, x, progress=False)
    finally:
        T.TopKSAE._aux_dense, T.TopKSAE._aux_sparse = originals["dense"], originals["sparse"]
    d = np.asarray(dead)
    return {
        "steps": cfg.steps,
        "train_seconds": log.seconds,
        "aux_seconds": dict(seconds),
        "aux_steps": dict(calls),
        "aux_share": sum(seconds.values()) / log.seconds,
        "dead_mean_by_window": [round(float(d[i : i + window].mean()), 1) for i in range(0, len(d), window)],
    }


def main(argv: list[str] | None = None) -> int:
    from helpers.config import SAEConfig

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--arch", default="topk")
    ap.add_argument("--rows", help="a .npy of activation rows [n, 576] (default: 60k Gaussian rows)")
    ap.add_argument("--aux", action="store_true", help="instead: a whole TopK run, AuxK's share, dead counts")
    args = ap.parse_args(argv)
    x = (
        np.load(args.rows, allow_pickle=False)
        if args.rows
        else np.random.default_rng(0).standard_normal((60_000, 576), dtype=np.float32)
    )
    cfg = SAEConfig(architecture=args.arch, d_in=x.shape[1], lr=3e-3 if args.arch == "topk" else 1e-3)
    if args.aux:
        run = type(cfg)(**{**cfg.__dict__, "architecture": "topk", "steps": args.steps})
        print(json.dumps(aux_share(run, x)))
        return 0
    print(json.dumps(profile_steps(cfg, x, args.steps)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
