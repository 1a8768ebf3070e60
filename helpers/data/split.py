"""Train / evaluation split of the activation store, by prompt."""

from __future__ import annotations

import numpy as np
import pandas as pd

from helpers.data.store import Store


def split_by_prompt(
    store: Store, docs: pd.DataFrame, eval_frac: float = 0.2, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Boolean masks (train, eval) over the store's rows, keeping every sample of a prompt on
    the same side: samples of one prompt share its tokens, whose residuals are identical, so a
    split by document would put training rows into the evaluation. ``eval_frac`` of each
    theme's prompts (at least one) go to eval, picked with ``seed``."""
    if not 0 < eval_frac < 1:
        raise ValueError(f"eval_frac must lie strictly between 0 and 1, got {eval_frac}")
    rng = np.random.default_rng(seed)
    eval_prompts = []
    for _, sub in docs.groupby("theme", sort=False):
        ids = np.unique(sub["prompt_id"])
        if len(ids) < 2:
            raise ValueError("each theme needs at least 2 prompts to split train/eval by prompt")
        n = min(len(ids) - 1, max(1, int(round(eval_frac * len(ids)))))
        eval_prompts.extend(rng.choice(ids, n, replace=False).tolist())
    eval_docs = docs.loc[docs["prompt_id"].isin(eval_prompts), "doc_id"].to_numpy()
    ev = np.isin(store.doc_ids, eval_docs)
    return ~ev, ev


def subset_by_document(doc_ids: np.ndarray, frac: float, seed: int = 0) -> np.ndarray:
    """Boolean mask over rows keeping ``frac`` of the documents (whole documents, drawn with
    ``seed``): a smaller training set of distinct text for the data-scaling runs."""
    if not 0 < frac <= 1:
        raise ValueError(f"frac must lie in (0, 1], got {frac}")
    ids = np.unique(doc_ids)
    keep = np.random.default_rng(seed).permutation(ids)[: max(1, int(round(frac * len(ids))))]
    return np.isin(doc_ids, keep)
