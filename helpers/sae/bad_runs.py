"""Notebook 03's "diagnose the bad runs" exercise: three short L1 runs, each set up wrongly in one
way, shown as runs A, B, C. Which mistake sits behind which label is a permutation drawn from a
secret (:func:`run_order`): the grader's, from ``WORKBOOK_GRADER_SECRET``, when it grades, else one
drawn afresh in each Python process, so a notebook's own run shows a new shuffle each time its kernel
starts and nothing in the notebook holds the answer (``helpers.exercises.sae_training`` grades it).

Every run gets the same training compute: a step of the width-1x run costs 1/expansion of a step at
the base width, so it trains expansion times as many steps (with as few, it would not have learnt
anything yet and would read like the dead run)."""

from __future__ import annotations

import hashlib
import itertools
import os
import secrets
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from helpers.config import SAEConfig
from helpers.sae.metrics import encode_all, sae_metrics
from helpers.sae.train import train_or_load

DIAGNOSES = ("lambda too low", "learning rate too high", "width 1x")
LABELS = ("A", "B", "C")
SECRET_ENV = "WORKBOOK_GRADER_SECRET"
_SESSION_SECRET = secrets.token_hex(16)  # this process's shuffle when the grader's secret is not set


def session_secret() -> str:
    """The grader's secret when it is set, else this process's own random one."""
    return os.environ.get(SECRET_ENV) or _SESSION_SECRET


def run_order(secret: str) -> dict[str, str]:
    """The mistake behind each run label: one of the 3! orders, picked by a hash of ``secret``."""
    orders = list(itertools.permutations(DIAGNOSES))
    digest = hashlib.sha256(f"bad-runs|{secret}".encode()).digest()
    return dict(zip(LABELS, orders[int.from_bytes(digest[:8], "big") % len(orders)], strict=True))


def _mistake(base: SAEConfig, diagnosis: str, steps: int) -> SAEConfig:
    if diagnosis == "lambda too low":
        return replace(base, steps=steps, l1_coefficient=base.l1_coefficient / 100)
    if diagnosis == "learning rate too high":
        return replace(base, steps=steps, lr=base.lr * 50)
    return replace(base, steps=steps * base.expansion, expansion=1)  # same compute: 1/expansion per step


@dataclass
class BadRuns:
    table: pd.DataFrame  # per run label: L0, FVU, dead, dense (held-out rows)
    latents: dict[str, np.ndarray]  # per run label: latent activations on the held-out rows


def train_bad_runs(
    base: SAEConfig,
    x_train: np.ndarray,
    x_eval: np.ndarray,
    data_key: str,
    folder: Path,
    steps: int,
    seed: int = 0,
) -> BadRuns:
    """Train the three mis-set runs (λ / 100, learning rate x 50, width 1x) on ``x_train``: ``steps``
    steps at the base width, expansion x ``steps`` for the width-1x run; ``seed`` seeds the runs.
    Each is saved and reused like any run (keyed by its config and the rows), so a new shuffle of the
    labels trains nothing."""
    order = run_order(session_secret())
    rows, latents = [], {}
    for label in LABELS:
        cfg = _mistake(replace(base, seed=seed), order[label], steps)
        sae = train_or_load(cfg, x_train, f"{data_key}|bad{len(x_train)}", folder, progress=False)[0]
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
    return BadRuns(table=pd.DataFrame(rows).set_index("run"), latents=latents)
