"""Automatic feature labels without an API, and a score saying whether each label is true.

A label is built from evidence the SAE and the data give: the tokens most *enriched* where the
feature fires (P(token | feature active) / P(token), on training rows), the tokens its decoder
direction promotes through the unembedding, and its most over-represented theme. Its detection
score asks whether that evidence predicts where the feature fires on held-out documents: the
AUROC of "the enrichment of the current token" against "the feature fires here". A random
label (another feature's evidence) gives the baseline.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from scipy.stats import rankdata

from helpers.analysis.features import FeatureIndex


def enrichment(
    index: FeatureIndex, token_ids: np.ndarray, rows_mask: np.ndarray, min_count: int = 3
) -> pd.DataFrame:
    """``feature, token, count, ratio`` over the rows in ``rows_mask``: how much more often
    ``token`` appears where the feature fires than overall. Pairs seen fewer than ``min_count``
    times are dropped (one-off coincidences)."""
    lat = index.latents
    keep = rows_mask[index.rows]
    lat, rows = lat[keep], index.rows[keep]
    V = int(token_ids.max()) + 1
    key = lat.astype(np.int64) * V + token_ids[rows]
    uniq, cnt = np.unique(key, return_counts=True)
    f, t = uniq // V, uniq % V
    n_active = np.bincount(lat, minlength=index.d_sae)
    p_tok = np.bincount(token_ids[rows_mask], minlength=V) / rows_mask.sum()
    ratio = (cnt / n_active[f]) / p_tok[t]
    df = pd.DataFrame({"feature": f, "token": t, "count": cnt, "ratio": ratio})
    return df[df["count"] >= min_count].sort_values(
        ["feature", "ratio", "count"], ascending=[True, False, False]
    )


@torch.no_grad()
def top_logit_tokens(W_dec: torch.Tensor, W_U: torch.Tensor, k: int = 3, chunk: int = 512) -> np.ndarray:
    """The ``k`` tokens each feature's decoder direction promotes most: ``[d_sae, k]``."""
    out = []
    for s in range(0, len(W_dec), chunk):
        out.append(torch.topk(W_dec[s : s + chunk].float() @ W_U.T, k, dim=-1).indices.cpu().numpy())
    return np.concatenate(out)


def _auroc(fires: np.ndarray, score: np.ndarray) -> float:
    """Area under the ROC curve by the rank-sum (Mann-Whitney) formula, ties counted half."""
    n_pos = int(fires.sum())
    n_neg = len(fires) - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(score)
    return float((ranks[fires].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def detection_scores(
    index: FeatureIndex,
    token_ids: np.ndarray,
    eval_mask: np.ndarray,
    enr: pd.DataFrame,
    features: np.ndarray,
    seed: int = 0,
    theme_codes: np.ndarray | None = None,
    theme_lift: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """For each feature, AUROC on the eval rows of its label's token evidence (``auroc``) and,
    given ``theme_codes`` per row and ``theme_lift`` [feature x theme], of its theme evidence
    (``auroc_theme``: the lift of the row's theme); each beside the same score computed with a
    random other feature's evidence (``*_random``). NaN where the feature never (or always)
    fires on eval."""
    V = int(token_ids.max()) + 1
    eval_rows = np.flatnonzero(eval_mask)
    eval_tok = token_ids[eval_rows]
    tables = {f: (g["token"].to_numpy(), g["ratio"].to_numpy()) for f, g in enr.groupby("feature")}
    perm = np.random.default_rng(seed).permutation(len(features))
    donor = dict(zip(features[perm], features[np.roll(perm, 1)], strict=True))  # never itself (if > 1)
    lut = np.zeros(V)
    rows = []
    for f in features:
        fires = index.values_at(int(f), eval_rows) > 0
        res = {"feature": int(f), "eval_fires": int(fires.sum())}
        for name, src in (("auroc", f), ("auroc_random", donor[f])):
            tok, ratio = tables.get(int(src), (np.array([], int), np.array([])))
            lut[:] = 0.0
            lut[tok] = ratio
            res[name] = _auroc(fires, lut[eval_tok])
        if theme_codes is not None and theme_lift is not None:
            ev_theme = theme_codes[eval_rows]
            res["auroc_theme"] = _auroc(fires, theme_lift.loc[f].to_numpy()[ev_theme])
            res["auroc_theme_random"] = _auroc(fires, theme_lift.loc[donor[f]].to_numpy()[ev_theme])
        rows.append(res)
    return pd.DataFrame(rows).set_index("feature")


def build_labels(
    lifts: pd.DataFrame,
    enr: pd.DataFrame,
    logit_top: np.ndarray,
    tokenizer,
    n_tokens: int = 3,
    theme_lift: float = 1.5,
) -> pd.DataFrame:
    """One label per feature of ``lifts`` (its theme lifts on the training rows):
    ``enriched tokens | ↑ promoted tokens | theme``."""

    def show(t):
        return repr(tokenizer.decode([int(t)]).strip() or tokenizer.decode([int(t)]))

    top_enr = enr.groupby("feature").head(n_tokens).groupby("feature")["token"].apply(list)
    rows = []
    for f, r in lifts.iterrows():
        toks = [show(t) for t in top_enr.get(f, [])]
        ups = [show(t) for t in logit_top[f][:2]]
        theme = r.idxmax() if r.max() >= theme_lift else "any theme"
        label = f"{'/'.join(toks) or '(no enriched token)'} | ↑{'/'.join(ups)} | {theme}"
        rows.append(
            {
                "feature": f,
                "label": label,
                "enriched_tokens": " ".join(toks),
                "promoted_tokens": " ".join(ups),
                "theme": theme,
            }
        )
    return pd.DataFrame(rows).set_index("feature")


def load_labels(path) -> dict[int, str]:
    """Notebook 04's labels by feature, or ``{}`` (saying so) when the file is missing."""
    from pathlib import Path

    path = Path(path)
    if not path.is_file():
        print(
            f"{path.name} not found (run notebooks/04_manual_features.ipynb for labels): showing feature ids "
            f"only"
        )
        return {}
    df = pd.read_csv(path, keep_default_na=False)
    if not {"feature", "label"} <= set(df.columns):
        print(f"{path.name} has no feature/label columns: showing feature ids only")
        return {}
    return dict(zip(df["feature"].astype(int), df["label"].astype(str), strict=True))
