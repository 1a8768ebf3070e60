"""The five SAE architectures side by side: on synthetic activations whose true features are known, and on
real rows at matched L0 and equal budget (notebook 07).

Matched L0: TopK, BatchTopK and Matryoshka take their L0 as a setting (k); L1 and JumpReLU reach it through
their sparsity coefficient, which :func:`match_l0` searches (:mod:`helpers.sae.search`'s secant on log λ
against log L0, one training run per try). Every run goes through :func:`helpers.sae.train.train_or_load`
where a folder is given, so re-running a notebook reuses its runs.

The synthetic runs are small: each trains on one thread, several side by side with ``parallel``
(:mod:`helpers.sae.parallel`), the same numbers either way.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

import numpy as np
import pandas as pd
import torch

from helpers.config import K_ARCHITECTURES, SAEConfig
from helpers.sae.base import BaseSAE
from helpers.sae.metrics import dead_fraction, sae_metrics
from helpers.sae.parallel import run_all
from helpers.sae.search import Probe, closest, search_lambda
from helpers.sae.synthetic import SyntheticData, make_synthetic, recovery, sae_absorption
from helpers.sae.train import train_or_load, train_sae
from helpers.validate import as_count

NAMES = {
    "topk": "TopK",
    "batchtopk": "BatchTopK",
    "matryoshka": "Matryoshka",
    "jumprelu": "JumpReLU",
    "l1": "L1",
}
# the field that sets each architecture's sparsity (k for the K architectures)
COEFFICIENT = {"l1": "l1_coefficient", "jumprelu": "jumprelu_l0_coefficient"}

# the synthetic set of notebook 07: 192 true features in 48 dimensions (4x superposition), Zipf-like firing
# (~5 true features per token), two correlated triples, and four parents with three children each (a child
# fires only with its parent: the setting of feature absorption)
SYNTH_FEATURES, SYNTH_D = 192, 48
SYNTH_HIERARCHY = {0: (10, 11, 12), 1: (13, 14, 15), 2: (16, 17, 18), 3: (19, 20, 21)}
SYNTH_GROUPS = [(30, 31, 32), (40, 41, 42)]


def synthetic_set(n_tokens: int, seed: int = 0) -> SyntheticData:
    """Notebook 07's synthetic activations (see the constants above) of ``n_tokens`` tokens."""
    return make_synthetic(
        as_count(n_tokens, "n_tokens"),
        SYNTH_FEATURES,
        SYNTH_D,
        groups=SYNTH_GROUPS,
        rho=0.5,
        hierarchy=SYNTH_HIERARCHY,
        child_prob=0.6,
        seed=seed,
    )


def with_sparsity(cfg: SAEConfig, value: float) -> SAEConfig:
    """``cfg`` at sparsity setting ``value``: k for TopK, BatchTopK and Matryoshka, the coefficient (λ or λ_0)
    for L1 and JumpReLU."""
    if cfg.architecture in K_ARCHITECTURES:
        return replace(cfg, k=as_count(value, "k"))
    return replace(cfg, **{COEFFICIENT[cfg.architecture]: float(f"{float(value):.3g}")})


def sparsity_of(cfg: SAEConfig) -> float:
    """The sparsity setting :func:`with_sparsity` sets."""
    return float(
        cfg.k if cfg.architecture in K_ARCHITECTURES else getattr(cfg, COEFFICIENT[cfg.architecture])
    )


@torch.no_grad()
def synthetic_row(sae: BaseSAE, data: SyntheticData, n_eval: int = 8192) -> dict:
    """L0, FVU and dead share on the first ``n_eval`` tokens; MCC (mean cosine of the one-to-one match) and
    the mean absorption over the parent/child pairs (:func:`helpers.sae.synthetic.sae_absorption`); the
    parents'
    best cosine with any latent."""
    m = sae_metrics(sae, data.acts[:n_eval])
    rec = recovery(sae, data.dirs)
    absorbed = np.array(list(sae_absorption(sae, data, rec.match).values()), dtype=float)
    parents = sorted({int(p) for p in data.parent if p >= 0})
    return {
        "L0": m["l0"],
        "FVU": m["fvu"],
        "dead": m["dead_fraction"],
        "MCC": rec.mcc,
        "absorption": float(np.nanmean(absorbed)) if np.isfinite(absorbed).any() else float("nan"),
        "parent cos": float(rec.best_cos[parents].mean()) if parents else float("nan"),
    }


def _synthetic_job(data: SyntheticData, cfg: SAEConfig) -> tuple[BaseSAE, dict]:
    sae, log = train_sae(cfg, data.acts, progress=False)
    return sae, synthetic_row(sae, data) | {"seconds": log.seconds}


def synthetic_runs(
    base: SAEConfig,
    data: SyntheticData,
    plan: dict[str, Sequence[float]],
    seeds: Sequence[int] = (0,),
    parallel: bool = False,
) -> tuple[pd.DataFrame, dict[tuple[str, float, int], BaseSAE]]:
    """Train every architecture of ``plan`` (architecture -> its sparsity settings) at every seed on
    ``data.acts`` and score it against the true features (runs side by side with ``parallel``). Returns one
    row per run (architecture, setting, seed, :func:`synthetic_row`'s columns, seconds) and the SAEs by
    (architecture, setting, seed)."""
    if not plan:
        raise ValueError("the plan names no architecture: give {architecture: [settings]}")
    keys = [
        (arch, float(v), int(seed)) for arch, settings in plan.items() for v in settings for seed in seeds
    ]
    cfgs = [with_sparsity(replace(base, architecture=a, seed=seed), v) for a, v, seed in keys]
    done = run_all(_synthetic_job, [(c,) for c in cfgs], shared=data, parallel=parallel)
    rows = [
        {"architecture": NAMES[a], "setting": v, "seed": seed} | row
        for (a, v, seed), (_, row) in zip(keys, done, strict=True)
    ]
    return pd.DataFrame(rows), {k: sae for k, (sae, _) in zip(keys, done, strict=True)}


def match_l0(
    cfg: SAEConfig,
    target: float,
    l0_of: Callable[[SAEConfig], float],
    start: float | None = None,
    tries: int = 2,
) -> tuple[SAEConfig, list[Probe]]:
    """``cfg`` at the sparsity setting whose L0 is closest to ``target``: K architectures are set to
    k = target at once; L1 and JumpReLU search their coefficient from ``start`` (default: ``cfg``'s own)
    with up to ``tries`` more runs. ``l0_of(cfg)`` trains (or reuses) a run and returns its held-out L0."""
    if cfg.architecture in K_ARCHITECTURES:
        k = with_sparsity(cfg, round(target))
        return k, [Probe(float(k.k), float(k.k))]
    first = with_sparsity(cfg, start) if start is not None else cfg
    probes = search_lambda(
        lambda lam: l0_of(with_sparsity(cfg, lam)), Probe(sparsity_of(first), l0_of(first)), target, tries
    )
    best = closest(probes, target)
    return with_sparsity(cfg, best.lam), probes


def real_runs(
    configs: dict[str, SAEConfig],
    seeds: Sequence[int],
    X: np.ndarray,
    data_key: str,
    folder,
    x_eval: np.ndarray,
) -> tuple[pd.DataFrame, dict[tuple[str, int], BaseSAE]]:
    """Train (or reuse) each named config at every seed on ``X``; one row per run with L0, FVU and dead share
    on the held-out rows ``x_eval`` and dead share on all of ``X`` (the larger sample: a few thousand held-out
    rows overstate dead latents). (These runs keep both threads busy enough that side by side, one thread
    each, they took longer on a 2-core EPYC, 98.6 against 93 s for notebook 07's §2.)"""
    rows, saes = [], {}
    for name, cfg in configs.items():
        for seed in seeds:
            sae, log, _ = train_or_load(replace(cfg, seed=int(seed)), X, data_key, folder, progress=False)
            m = sae_metrics(sae, x_eval)
            saes[name, int(seed)] = sae
            rows.append(
                {
                    "architecture": name,
                    "seed": int(seed),
                    "setting": sparsity_of(cfg),
                    "L0": m["l0"],
                    "FVU": m["fvu"],
                    f"dead ({len(X):,} training rows)": dead_fraction(sae, X),
                    "train s": log.seconds,
                }
            )
    return pd.DataFrame(rows), saes
