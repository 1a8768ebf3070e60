"""Notebook 03's "diagnose the bad runs" exercise: three short L1 runs, each set up wrongly in one
way, shuffled as A, B, C. Only their metrics and a salted hash of each answer leave this module,
so the student's code cannot read the answer (``helpers.exercises.sae_training`` checks it)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from helpers.config import SAEConfig
from helpers.sae.metrics import encode_all, sae_metrics
from helpers.sae.train import train_or_load

DIAGNOSES = ("lambda too low", "learning rate too high", "width 1x")


def answer_hash(salt: str, run: str, diagnosis: str) -> str:
    return hashlib.sha256(f"{salt}|{run}|{diagnosis}".encode()).hexdigest()


@dataclass
class BadRuns:
    table: pd.DataFrame  # per run: L0, FVU, dead, dense (held-out rows)
    latents: dict[str, np.ndarray]  # per run: latent activations on the held-out rows
    salt: str
    key: dict[str, str]  # per run: hash of the right diagnosis


def train_bad_runs(
    base: SAEConfig,
    x_train: np.ndarray,
    x_eval: np.ndarray,
    data_key: str,
    folder: Path,
    steps: int,
    seed: int = 0,
) -> BadRuns:
    """Train the three mis-set runs (λ / 100, learning rate x 50, width 1x) on ``x_train``."""
    mistakes = {
        "lambda too low": dict(l1_coefficient=base.l1_coefficient / 100),
        "learning rate too high": dict(lr=base.lr * 50),
        "width 1x": dict(expansion=1),
    }
    order = np.random.default_rng(seed).permutation(list(mistakes))
    salt = hashlib.sha256(f"{data_key}|{seed}".encode()).hexdigest()[:16]
    rows, latents, key = [], {}, {}
    for label, mistake in zip("ABC", order, strict=True):
        cfg = replace(base, steps=steps, **mistakes[str(mistake)])
        sae = train_or_load(cfg, x_train, data_key + "|bad", folder, progress=False)[0]
        m = sae_metrics(sae, x_eval)
        latents[label] = encode_all(sae, x_eval)[0]
        rows.append(
            {
                "run": label,
                "L0": m["l0"],
                "FVU": m["fvu"],
                "dead": m["dead_fraction"],
                "dense": m["dense_fraction"],
            }
        )
        key[label] = answer_hash(salt, label, str(mistake))
    return BadRuns(table=pd.DataFrame(rows).set_index("run"), latents=latents, salt=salt, key=key)
