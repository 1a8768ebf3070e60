"""Controls for "the SAE's features are readable": compared with what? (notebook 07)

A readability score means something only beside the score of a representation that should *not*
be readable, or that is readable for a cheaper reason. Three controls, each put through exactly the
measures the real SAE goes through:

* **an SAE on a randomly initialised model** (:func:`helpers.model.random_init.random_like`, after
  Heap et al. 2025): the same SAE recipe and budget on the same texts, read from a model that has
  learned nothing. What it reaches, tokens and architecture give for free;
* **a PCA basis** of the real residual stream (:func:`pca_features`): the ± directions of its
  principal components, each token coded by its ``k`` largest positive projections, so it has the
  SAE's L0 and fits every measure. It is what linear algebra alone finds, without a dictionary;
* **random sparse features** (:func:`random_sparse_features`: random directions, top ``k``): what a
  sparse code of the SAE's width and L0 gives with no learning at all.

The measures: :func:`top_token_share` (does a feature's dashboard show one token?), the token-list
detection AUROC of notebook 04 (:func:`detection_table`, a thin wrapper over
:func:`helpers.analysis.neurons.unit_labels` and :func:`~helpers.analysis.neurons.compare_kinds`), and
notebook 05's theme probe and k-means (called directly from :mod:`helpers.analysis.clustering`).
:func:`readability_table` puts them in one table, each with its unit of resampling and its n.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from helpers.analysis import labels as autolabel
from helpers.analysis import neurons as units_lib
from helpers.analysis.clustering import probe_interval, random_features
from helpers.analysis.features import FeatureIndex, top_k_codes
from helpers.data.store import Store
from helpers.stats import Interval, mean_interval
from helpers.validate import as_count, finite_array

# --- the PCA basis and random sparse features ---------------------------------------------------------


def _fit_rows(fit_rows: np.ndarray | None, n: int) -> np.ndarray:
    """Row indices to fit on: all rows, a bool mask over the rows, or row indices; else one line."""
    if fit_rows is None:
        return np.arange(n)
    f = np.asarray(fit_rows)
    if f.dtype == bool:
        if f.shape != (n,):
            raise ValueError(f"fit_rows as a mask must have one entry per row ({n}), got shape {f.shape}")
        f = np.flatnonzero(f)
    elif f.ndim != 1 or not np.issubdtype(f.dtype, np.integer) or (len(f) and (f.min() < 0 or f.max() >= n)):
        raise ValueError(f"fit_rows must be a bool mask over the {n} rows or row indices in 0..{n - 1}")
    if len(f) < 2:
        raise ValueError(f"fit_rows selects {len(f)} rows; a PCA needs at least 2 (pass the training rows)")
    return f


def pca_basis(
    acts: np.ndarray, n_components: int | None = None, fit_rows: np.ndarray | None = None, chunk: int = 8192
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(mean [d], components [n, d], variances [n])`` of the rows ``fit_rows`` of ``acts`` (default all),
    largest variance first. Each component's sign is fixed so that its largest coordinate is positive
    (an eigenvector's sign is arbitrary; this makes the basis reproducible). The covariance is summed in
    float64 over chunks of rows, so memory stays at ``d x d`` beside the store."""
    if not isinstance(acts, np.ndarray) or acts.ndim != 2:
        raise ValueError("acts must be a [tokens, d_model] array (store.acts)")
    d = acts.shape[1]
    rows = _fit_rows(fit_rows, len(acts))
    n_components = d if n_components is None else as_count(n_components, "n_components", 1, d)
    n_components = min(n_components, len(rows))
    finite_array(acts[rows[:chunk]], "the activation matrix")
    mu = np.zeros(d)
    for s in range(0, len(rows), chunk):
        mu += acts[rows[s : s + chunk]].sum(0, dtype=np.float64)
    mu /= len(rows)
    cov = np.zeros((d, d))
    for s in range(0, len(rows), chunk):
        x = acts[rows[s : s + chunk]].astype(np.float64) - mu
        cov += x.T @ x
    finite_array(cov, "the activations' covariance", "some rows hold NaN or inf; check the store")
    var, vec = np.linalg.eigh(cov / (len(rows) - 1))
    order = np.argsort(-var, kind="stable")[:n_components]
    comps = vec[:, order].T
    comps *= np.sign(comps[np.arange(len(comps)), np.abs(comps).argmax(1)])[:, None]
    return mu, comps, var[order]


def pca_features(
    acts: np.ndarray, k: int, n_components: int | None = None, fit_rows: np.ndarray | None = None
) -> tuple[FeatureIndex, np.ndarray]:
    """A sparse "dictionary" from PCA of the residual stream: latent ``j`` is principal component ``j``
    (its + side) and latent ``n + j`` the same component's - side (``n = n_components``, default all
    ``d_model``), so ``2n`` latents. Each token is coded by its ``k`` largest positive projections
    ``ReLU(±(x - mean) · v_j)``: at most one side of a component fires, so L0 <= min(k, n), the SAE's L0
    when ``k`` is its k. The PCA is fitted on ``fit_rows`` (a mask or indices; default every row: pass
    the training rows so no held-out token shapes the basis). Returns the index over every row of
    ``acts`` and the directions ``[2n, d]`` (unit length; what each latent writes, for its logit
    weights). ``mean + Σ value · direction`` over a token's latents is its projection on those ``k``
    components: with ``k >= n`` it is the reconstruction from the top ``n`` components."""
    mu, comps, _ = pca_basis(acts, n_components, fit_rows)
    directions = np.concatenate([comps, -comps]).astype(np.float32)
    return top_k_codes(acts, mu, directions, k), directions


def random_sparse_features(
    store: Store, width: int, k: int, seed: int = 0
) -> tuple[FeatureIndex, np.ndarray]:
    """Notebook 05's random sparse features (:func:`helpers.analysis.clustering.random_features`: the
    ``k`` largest of ReLU((x - mean) R) per token for a Gaussian R [d, width] drawn from ``seed``) and
    their directions ``[width, d]`` (R's columns: the encoder :func:`top_k_codes` reproduces the index with),
    which the automatic labels need for their promoted tokens (the direction's scale does not change them)."""
    width, k = as_count(width, "width", 1), as_count(k, "k", 1)
    index = random_features(store, width, k, seed=seed)
    R = torch.randn(store.d_model, width, generator=torch.Generator().manual_seed(seed))  # the same draw
    directions = (R / np.sqrt(store.d_model)).T.numpy().astype(np.float32)
    return index, directions


def check_same_rows(a: Store, b: Store) -> None:
    """Two stores (the real model's and a random copy's) must hold the same tokens in the same rows, so
    that masks, prompts and themes per row apply to both; else one line."""
    for key in ("token_ids", "doc_ids", "positions"):
        if not np.array_equal(getattr(a, key), getattr(b, key)):
            raise ValueError(
                f"the two stores differ in {key}: capture the random model on the same documents with the "
                "same settings (build_store + drop_repeated_prompts, as notebook 02 does)"
            )


# --- (a) a dashboard's top tokens ---------------------------------------------------------------------


def top_token_share(index: FeatureIndex, store: Store, n_top: int = 20, min_fires: int = 20) -> pd.DataFrame:
    """For every feature firing on at least ``min_fires`` rows: among its ``n_top`` highest activations
    (ties by row order), the share whose token is the commonest token among them (``top_token_share``;
    1 = its dashboard shows one token, 1/n_top = every example a different token) and the number of
    distinct tokens among them (``distinct_tokens``), with ``fires`` (its firings), ``n_top`` (the
    examples counted: fewer than ``n_top`` when it fires less) and ``top_token`` (that token's id).
    Indexed by feature. A token-level reading only: a feature on one token may still mean one thing."""
    n_top, min_fires = as_count(n_top, "n_top"), as_count(min_fires, "min_fires")
    if index.n_tokens != len(store):
        raise ValueError(
            f"the index covers {index.n_tokens:,} rows but the store has {len(store):,}; encode this store"
        )
    lat = index.latents
    order = np.lexsort((-index.values, lat))  # starts[] already group by latent: sort values within each
    rank = np.arange(len(order)) - index.starts[lat[order]]
    top = order[rank < n_top]
    tl = lat[top]
    keep = index.counts[tl] >= min_fires
    tl, tok = tl[keep], store.token_ids[index.rows[top[keep]]].astype(np.int64)
    V = int(store.token_ids.max()) + 1 if len(store) else 1
    pairs, cnt = np.unique(tl.astype(np.int64) * V + tok, return_counts=True)
    pf, pt = pairs // V, pairs % V
    feats, n_distinct = np.unique(pf, return_counts=True)
    # the commonest token of each feature: the largest count in its run of pairs (lowest id on ties)
    best = np.lexsort((pt, -cnt, pf))
    lead = best[np.r_[0, np.flatnonzero(np.diff(pf[best])) + 1]] if len(best) else best
    n_in = np.minimum(index.counts[feats], n_top)
    return pd.DataFrame(
        {
            "fires": index.counts[feats],
            "n_top": n_in,
            "top_token": pt[lead],
            "top_token_share": cnt[lead] / n_in,
            "distinct_tokens": n_distinct,
        },
        index=pd.Index(feats, name="feature"),
    )


# --- (b) token-list detection, as notebook 04 computes it ---------------------------------------------


@dataclass
class Detection:
    """What :func:`detection_table` returns: ``kinds`` (one row per representation, the columns of
    :func:`~helpers.analysis.neurons.compare_kinds`, intervals over held-out prompts), ``scores`` (per
    representation, one row per labelled unit: :func:`~helpers.analysis.neurons.unit_labels`' table)
    and ``counts`` (the detector's counts per held-out prompt), with the settings that made them."""

    kinds: pd.DataFrame
    scores: dict[str, pd.DataFrame]
    counts: dict[str, autolabel.DetectionCounts]
    n_boot: int
    seed: int
    min_eval_fires: int

    def differences(self, pairs: list[tuple[str, str]]) -> pd.DataFrame:
        """Mean AUROC of ``a`` minus ``b`` for each pair, on the same prompt resamples
        (:func:`~helpers.analysis.neurons.kind_differences`; ``clear`` where the interval excludes 0)."""
        return units_lib.kind_differences(self.counts, pairs, self.min_eval_fires, self.n_boot, self.seed)


def detection_table(
    reps: dict[str, tuple[FeatureIndex, np.ndarray | torch.Tensor]],
    store: Store,
    theme_of_row: np.ndarray,
    themes: Sequence[str],
    prompt_of_row: np.ndarray,
    train_mask: np.ndarray,
    eval_mask: np.ndarray,
    W_U: torch.Tensor | dict[str, torch.Tensor],
    seed: int = 0,
    n_boot: int = 1000,
    min_eval_fires: int = 1,
    tokenizer=None,
) -> Detection:
    """Notebook 04's token-list detection AUROC for every representation of ``reps`` (name ->
    ``(index, directions [latents, d])``), by the very code notebook 04 runs on SAE features and the
    model's units: each representation's latents become units that fire where > 0
    (:func:`~helpers.analysis.neurons.sae_units`), get the automatic label from the training rows and are
    scored on the held-out rows (:func:`~helpers.analysis.neurons.unit_labels`), then compared with
    bootstrap intervals over the held-out prompts, all kinds on the same resamples
    (:func:`~helpers.analysis.neurons.compare_kinds`). ``W_U`` is the unembedding (one for all, or one
    per name: an SAE on a random model writes into that model's residual space); it only shapes the
    promoted tokens, never the headline token AUROC. Every index must cover the store's rows (an SAE on
    a random model: its store must hold the same rows, see :func:`check_same_rows`)."""
    if not reps:
        raise ValueError("pass at least one representation: {name: (index, directions)}")
    n = len(store)
    for name, arr in (
        ("theme_of_row", theme_of_row),
        ("prompt_of_row", prompt_of_row),
        ("train_mask", train_mask),
        ("eval_mask", eval_mask),
    ):
        if len(arr) != n:
            raise ValueError(f"{name} has {len(arr):,} entries for {n:,} store rows; pass one per row")
    next_ids = autolabel.next_tokens(store.token_ids, store.doc_ids, store.positions)
    theme_codes = pd.Categorical(theme_of_row, categories=list(themes)).codes
    scores, counts = {}, {}
    for name, (index, directions) in reps.items():
        if index.n_tokens != n:
            raise ValueError(
                f"{name}: its index covers {index.n_tokens:,} rows, the store {n:,}; encode this store"
            )
        W = torch.as_tensor(np.asarray(directions, dtype=np.float32))
        if W.ndim != 2 or len(W) != index.d_sae:
            raise ValueError(
                f"{name}: {index.d_sae:,} latents but directions of shape {tuple(W.shape)}; "
                "pass one row per latent"
            )
        unembed = W_U[name] if isinstance(W_U, dict) else W_U
        units = units_lib.sae_units(index, W, kind=name)
        scores[name], counts[name] = units_lib.unit_labels(
            units,
            store.token_ids,
            next_ids,
            theme_codes,
            themes,
            train_mask,
            eval_mask,
            unembed,
            prompt_of_row,
            tokenizer,
            seed=seed,
        )
    kinds = units_lib.compare_kinds(counts, min_eval_fires=min_eval_fires, n_boot=n_boot, seed=seed)
    return Detection(kinds, scores, counts, n_boot, seed, min_eval_fires)


# --- one table ------------------------------------------------------------------------------------------


def _row(measure: str, rep: str, iv: Interval, over: str, units: int) -> dict:
    return {
        "measure": measure,
        "representation": rep,
        "value": iv.value,
        "low": iv.low,
        "high": iv.high,
        "over": over,
        "n": iv.n,
        "units": units,
    }


SHARE_MEASURES = (("top_token_share", "top-token share"), ("distinct_tokens", "distinct top tokens"))


def readability_table(
    shares: dict[str, pd.DataFrame] | None = None,
    detection: Detection | None = None,
    probe: dict[str, np.ndarray] | None = None,
    probe_groups: np.ndarray | None = None,
    clusters: dict[str, pd.DataFrame] | None = None,
    n_boot: int = 1000,
    seed: int = 0,
) -> pd.DataFrame:
    """Every representation on every readability measure given, one row per (measure, representation):
    ``value`` with a 95% interval ``[low, high]`` resampled ``over`` n units of resampling, and
    ``units`` (how many features, units or documents the value averages over):

    * from ``shares`` (name -> :func:`top_token_share`): the mean top-token share and the mean number of
      distinct tokens among each feature's top examples, intervals over **features** (bootstrap of the
      mean over the features that fire enough; they are the sample of features, not of text);
    * from ``detection`` (:func:`detection_table`): the mean token-list detection AUROC, its mean gain
      over a random label, intervals over held-out **prompts** (every unit rescored per resample);
    * from ``probe`` (name -> :func:`~helpers.analysis.clustering.probe_correct`, one bool per document)
      and ``probe_groups`` (each document's prompt): theme-probe accuracy, intervals over **prompts**;
    * from ``clusters`` (name -> :func:`~helpers.analysis.clustering.seed_scores`): k-means NMI and ARI
      against the themes, the mean with the **min-max over k-means seeds** (not an interval: a spread).
    """
    rows: list[dict] = []
    kw = {"n_boot": as_count(n_boot, "n_boot"), "seed": as_count(seed, "seed", 0)}
    for name, df in (shares or {}).items():
        if len(df) < 2:
            raise ValueError(f"{name}: {len(df)} features fire enough for top_token_share; lower min_fires")
        for col, measure in SHARE_MEASURES:
            iv = mean_interval(df[col].to_numpy(), **kw)
            rows.append(_row(f"{measure} (top {int(df['n_top'].max())})", name, iv, "features", len(df)))
    if detection is not None:
        for name, r in detection.kinds.iterrows():
            for col, measure in (
                ("mean", "token-list detection AUROC"),
                ("gain (own - random)", "  gain over a random label"),
            ):
                rows.append(_row(measure, name, r[col], "held-out prompts", int(r["units"])))
    if probe:
        if probe_groups is None:
            raise ValueError("pass probe_groups: each document's prompt (the probe's unit of resampling)")
        for name, correct in probe.items():
            iv = probe_interval(np.asarray(correct), np.asarray(probe_groups), **kw)
            rows.append(_row("theme probe accuracy", name, iv, "prompts", len(correct)))
    for name, per_seed in (clusters or {}).items():
        for col in ("NMI", "ARI"):
            v = per_seed[col].to_numpy(dtype=np.float64)
            iv = Interval(float(v.mean()), float(v.min()), float(v.max()), len(v))
            rows.append(_row(f"k-means {col} vs themes", name, iv, "k-means seeds (min-max)", len(v)))
    if not rows:
        raise ValueError("pass at least one of shares, detection, probe or clusters")
    return pd.DataFrame(rows).set_index(["measure", "representation"])


__all__ = [
    "Detection",
    "check_same_rows",
    "detection_table",
    "pca_basis",
    "pca_features",
    "random_sparse_features",
    "readability_table",
    "top_k_codes",
    "top_token_share",
]
