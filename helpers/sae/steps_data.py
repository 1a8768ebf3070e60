"""What binds the SAE, steps or data? Two curves at equal budgets that separate the causes.

* the **steps curve**: the recipe trained on all the training rows for a few step budgets up to the kept
  run's (each run with its own learning-rate schedule, not a snapshot of the long run);
* the **data curve at equal passes**: the same budgets on a share of the training documents, each share
  trained for the same number of passes over its rows as the kept run makes over all of them.

At each budget the two runs take the same steps on the same batch size; they differ only in how many
distinct rows they draw from. If the share's held-out FVU is no worse, more distinct data would not help at
that budget (step-bound); if it is worse, data binds. Held-out FVU is reported on themed and on corpus
prompts separately (their gap is domain shift), with the training FVU on each run's own rows.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from helpers.config import SAEConfig
from helpers.data.split import subset_by_document
from helpers.sae.metrics import sae_metrics
from helpers.sae.train import train_or_load


def step_budgets(cfg: SAEConfig, shares: tuple[float, ...] = (1 / 8, 1 / 4, 1 / 2)) -> tuple[int, ...]:
    """The steps curve's budgets below the kept run's: ``cfg.steps`` x each share. Pass them as the kept
    run's ``branches`` (:func:`helpers.sae.train.train_or_load`) and they cost only their decays."""
    return tuple(max(1, round(share * cfg.steps)) for share in sorted(shares))


def steps_and_data(
    cfg: SAEConfig,
    x_train: np.ndarray,
    train_docs: np.ndarray,
    evals: dict[str, np.ndarray],
    data_key: str,
    folder: str | Path,
    shares: tuple[float, ...] = (1 / 8, 1 / 4, 1 / 2),
    *,
    train_sample: int = 4096,
    progress: bool = False,
) -> pd.DataFrame:
    """One row per run: ``curve`` ("all rows" or "share, equal passes"), ``steps``, ``share`` of the
    training documents, distinct ``tokens``, ``passes`` over them, FVU on each of ``evals`` (held-out sets
    by name), ``fvu_train`` on up to ``train_sample`` of the run's own rows and the run's ``sae``. The
    kept run (all rows, ``cfg.steps``) is the last row of both curves (trained or reused from ``folder``)."""
    if len(x_train) != len(train_docs):
        raise ValueError(
            f"{len(x_train):,} training rows but {len(train_docs):,} document ids; pass one per row"
        )
    rng = np.random.default_rng(cfg.seed)
    rows = []

    def run(curve: str, share: float, steps: int) -> None:
        keep = (
            np.ones(len(x_train), bool)
            if share == 1
            else subset_by_document(train_docs, share, seed=cfg.seed)
        )
        x = x_train[keep]
        key = data_key if share == 1 else f"{data_key}|docs{share:g}"
        sae, _, _ = train_or_load(replace(cfg, steps=steps), x, key, folder, progress=progress)
        row = {
            "curve": curve,
            "steps": steps,
            "share": share,
            "tokens": len(x),
            "passes": steps * cfg.batch_size / len(x),
        }
        for name, xe in evals.items():
            row[f"fvu_{name}"] = sae_metrics(sae, xe)["fvu"]
        row["fvu_train"] = sae_metrics(sae, x[rng.permutation(len(x))[:train_sample]])["fvu"]
        rows.append({**row, "sae": sae})

    for share, steps in zip(sorted(shares), step_budgets(cfg, shares), strict=True):
        run("all rows", 1.0, steps)
        run("share, equal passes", share, steps)
    run("all rows", 1.0, cfg.steps)
    return pd.DataFrame(rows)
