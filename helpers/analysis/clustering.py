"""Clustering documents by their SAE features (notebook 05), measured against the themes.

Document vectors: an SAE feature vector per document (max or mean over its tokens), the raw
residual stream pooled the same way, or a random-projection baseline of the SAE's width. Each is
weighed per column (:func:`prepare`: z-scores or tf-idf, rare columns optionally dropped) and
scaled to unit length per document before clustering, so k-means works on cosine geometry.

Two kinds of spread stand behind a comparison of representations: k-means seeds for a clustering
score (:func:`seed_scores`, :func:`seed_ranking`: one representation ranks above another only when
every seed of it scores above every seed of the other), and prompts for the linear probe
(:func:`probe`: folds grouped by prompt, the interval resampling prompts, because the samples of
one prompt are not independent).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from sklearn.cluster import AgglomerativeClustering, KMeans
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score, silhouette_score

from helpers.analysis.features import FeatureIndex, top_k_codes
from helpers.data.layer_scan import mean_pool
from helpers.data.store import Store
from helpers.stats import Interval, grouped_interval
from helpers.validate import as_count, as_finite, as_indices

POOLS = ("max", "mean")


def doc_feature_vectors(
    index: FeatureIndex, store: Store, pool: str = "max"
) -> tuple[np.ndarray, np.ndarray]:
    """``(doc_ids, X)`` with ``X[d, i]`` the max (or mean) of feature i over document d's tokens."""
    if pool not in POOLS:
        raise ValueError(f"pool must be one of {', '.join(POOLS)}, got {pool!r}")
    docs, doc_of_row = np.unique(store.doc_ids, return_inverse=True)
    lat = index.latents
    d = doc_of_row[index.rows]
    X = np.zeros((len(docs), index.d_sae), np.float32)
    if pool == "max":
        np.maximum.at(X, (d, lat), index.values)
    else:
        np.add.at(X, (d, lat), index.values)
        X /= np.bincount(doc_of_row, minlength=len(docs))[:, None]
    return docs, X


def pool_rows(acts: np.ndarray, doc_ids: np.ndarray, pool: str = "mean") -> tuple[np.ndarray, np.ndarray]:
    """``(docs, [n_docs, d])``: ``acts`` rows pooled per document (mean or max)."""
    if pool not in POOLS:
        raise ValueError(f"pool must be one of {', '.join(POOLS)}, got {pool!r}")
    if pool == "mean":
        return mean_pool(acts, doc_ids)
    docs, inv = np.unique(doc_ids, return_inverse=True)
    if len(acts) == 0:
        return docs, np.full((0, acts.shape[1]), -np.inf)
    # each document's rows together, then one maximum per run of rows (np.maximum.at took ~1.3 s here)
    order = np.argsort(inv, kind="stable")
    starts = np.flatnonzero(np.r_[True, np.diff(inv[order]) != 0])
    return docs, np.maximum.reduceat(np.asarray(acts)[order], starts, axis=0).astype(np.float64)


@torch.no_grad()
def random_features(store: Store, width: int, k: int, seed: int = 0, batch_size: int = 4096) -> FeatureIndex:
    """A random 'SAE' of the same width and sparsity: the k largest of ReLU((x - mean) R) per
    token for a fixed Gaussian R — the baseline that says what the SAE's *learned* directions add."""
    g = torch.Generator().manual_seed(seed)
    R = torch.randn(store.d_model, width, generator=g) / np.sqrt(store.d_model)
    return top_k_codes(store.acts, store.acts.mean(0), R.T.numpy(), k, batch_size)


WEIGHTINGS = ("z", "tfidf")


def prepare(X: np.ndarray, weighting: str = "z", min_docs: int = 1) -> np.ndarray:
    """Weigh the columns, scale each row to unit length, and rotate onto the rows' own span.

    Columns active (non-zero) in fewer than ``min_docs`` documents are dropped first, and so are
    constant ones. ``weighting="z"`` standardises each column: a column that fires in 1 of 400
    documents then gets a value near sqrt(400) = 20 there, enough to dominate that document's
    direction, which is what ``min_docs`` guards against. ``"tfidf"`` (non-negative features only)
    multiplies each column by its inverse document frequency, ``log((1 + n) / (1 + df)) + 1``,
    without centring or dividing by the spread, so a rare column weighs at most ~log(n) + 1 times a
    common one. With n documents and d > n columns, ``Z V`` (V from the SVD of Z) has n columns and
    the same dot products and distances between documents, so every clustering and every
    L2-penalised probe below gives the same result, d / n times faster."""
    if weighting not in WEIGHTINGS:
        raise ValueError(f"weighting must be one of {', '.join(WEIGHTINGS)}, got {weighting!r}")
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or len(X) < 2:
        raise ValueError(f"X must be [documents, columns] with at least 2 documents, got shape {X.shape}")
    min_docs = as_count(min_docs, "min_docs", 1, len(X))
    df = (X != 0).sum(0)
    sd = X.std(0)
    keep = (df >= min_docs) & (sd > 0)
    if not keep.any():
        raise ValueError(f"no column is active in >= {min_docs} documents and non-constant; lower min_docs")
    X, df, sd = X[:, keep], df[keep], sd[keep]
    if weighting == "z":
        Z = (X - X.mean(0)) / sd
    else:
        if (X < 0).any():
            raise ValueError(
                "tf-idf weighs non-negative features (counts, pooled SAE latents); use 'z' for a signed one"
            )
        Z = X * (np.log((1 + len(X)) / (1 + df)) + 1)
    Z = Z / np.maximum(np.linalg.norm(Z, axis=1, keepdims=True), 1e-12)
    if Z.shape[1] > Z.shape[0]:
        # Z Z^T = U diag(lam) U^T, and U sqrt(lam) = Z V: the Gram matrix's eigenvectors give the rotation
        # without an SVD of the wide matrix (400 x 4,608: ~0.1 s instead of ~3 s)
        lam, U = np.linalg.eigh(Z @ Z.T)
        Z = U * np.sqrt(np.clip(lam, 0.0, None))
    return Z


def rare_share(X: np.ndarray, max_docs: int) -> float:
    """Share of the live columns (active in >= 1 document) active in at most ``max_docs`` documents."""
    df = (np.asarray(X) != 0).sum(0)
    live = df > 0
    return float((df[live] <= as_count(max_docs, "max_docs", 0)).mean()) if live.any() else 0.0


def check_k(k: int, n: int) -> int:
    """``k`` as a number of clusters for ``n`` documents (a whole number, 2 <= k < n), or one line."""
    k = as_count(k, "k (clusters)", 2)
    if not k <= n - 1:
        raise ValueError(f"k = {k} clusters needs 2 <= k < number of documents ({n}); choose a smaller k")
    return k


def kmeans(Z: np.ndarray, k: int, seed: int = 0) -> np.ndarray:
    k = check_k(k, len(Z))
    return KMeans(n_clusters=k, n_init=10, random_state=as_count(seed, "seed", 0)).fit_predict(Z)


def agglomerative(Z: np.ndarray, k: int) -> np.ndarray:
    k = check_k(k, len(Z))
    return AgglomerativeClustering(n_clusters=k, metric="cosine", linkage="average").fit_predict(Z)


def silhouette_scan(Z: np.ndarray, ks=range(2, 11), seed: int = 0) -> pd.Series:
    """Silhouette score (cosine) of k-means for each k."""
    return pd.Series(
        {k: silhouette_score(Z, kmeans(Z, k, seed), metric="cosine") for k in ks if k < len(Z)},
        name="silhouette",
    )


def agreement(labels, themes) -> dict[str, float]:
    """Adjusted Rand index and normalised mutual information between clusters and themes."""
    return {
        "ARI": float(adjusted_rand_score(themes, labels)),
        "NMI": float(normalized_mutual_info_score(themes, labels)),
    }


def purity(labels, themes) -> float:
    """Share of documents whose cluster's most common theme is their own."""
    t = pd.crosstab(np.asarray(labels), np.asarray(themes))
    return float(t.max(axis=1).sum() / t.to_numpy().sum())


def seed_scores(Z: np.ndarray, themes: np.ndarray, k: int, seeds) -> pd.DataFrame:
    """Purity, ARI and NMI of k-means against ``themes``, one row per k-means seed (index ``seed``)."""
    seeds = [as_count(s, "seed", 0) for s in seeds]
    if not seeds:
        raise ValueError("seeds is empty: pass the k-means seeds to run, e.g. range(5)")
    themes = np.asarray(themes)
    if len(themes) != len(Z):
        raise ValueError(f"themes has {len(themes)} labels for {len(Z)} documents; pass one per document")
    rows = {}
    for s in seeds:
        lab = kmeans(Z, k, s)
        rows[s] = {"purity": purity(lab, themes), **agreement(lab, themes)}
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("seed")


def seed_summary(values) -> dict[str, float]:
    """``mean``, ``sd`` (n - 1), ``min``, ``max`` and ``seeds`` (their number) of one score over seeds."""
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 1 or len(v) < 2:
        raise ValueError(f"a spread needs one score per seed for at least 2 seeds, got shape {v.shape}")
    return {
        "mean": float(v.mean()),
        "sd": float(v.std(ddof=1)),
        "min": float(v.min()),
        "max": float(v.max()),
        "seeds": len(v),
    }


def spread_text(values) -> str:
    """``mean ± sd [min, max]`` of one score over seeds, as one short string for a table."""
    s = seed_summary(values)
    return f"{s['mean']:.3f} ± {s['sd']:.3f} [{s['min']:.3f}, {s['max']:.3f}]"


def seed_grid(
    reps: dict[str, dict[str, np.ndarray]],
    themes: np.ndarray,
    k: int,
    seeds,
    weightings: dict[str, tuple[str, int]],
) -> pd.DataFrame:
    """k-means scores of every representation under every pooling and weighting, one row per seed:
    ``pool, representation, weighting, seed, purity, ARI, NMI``. ``reps`` maps a pooling to
    ``{representation: X}``; ``weightings`` maps a label to :func:`prepare`'s ``(weighting, min_docs)``.
    tf-idf is skipped for a representation with negative values (the raw residual stream)."""
    rows = []
    for pool, by_name in reps.items():
        for name, X in by_name.items():
            for label, (weighting, min_docs) in weightings.items():
                if weighting == "tfidf" and (np.asarray(X) < 0).any():
                    continue
                per_seed = seed_scores(prepare(X, weighting, min_docs), themes, k, seeds).reset_index()
                rows.append(per_seed.assign(pool=pool, representation=name, weighting=label))
    cols = ["pool", "representation", "weighting", "seed", "purity", "ARI", "NMI"]
    return pd.concat(rows, ignore_index=True)[cols]


MIN_SEEDS = 3


def seed_ranking(scores: dict[str, object]) -> pd.DataFrame:
    """Every pair of representations, the higher mean first: ``above, below, gap`` (difference of the
    means) and ``ranked`` (True when every seed of ``above`` scores above every seed of ``below``: the
    seed ranges do not overlap). With 5 seeds each, no overlap arises by chance with probability 2/252
    when the two score alike (an exact rank test), so ``ranked`` is a claim the spread supports; an
    overlap claims nothing. At least :data:`MIN_SEEDS` seeds per representation."""
    vals = {name: np.asarray(v, dtype=np.float64).ravel() for name, v in scores.items()}
    for name, v in vals.items():
        if len(v) < MIN_SEEDS:
            raise ValueError(
                f"{name!r} has {len(v)} seed(s); a ranking needs >= {MIN_SEEDS} k-means seeds each"
            )
    order = sorted(vals, key=lambda n: -vals[n].mean())
    rows = []
    for i, a in enumerate(order):
        for b in order[i + 1 :]:
            rows.append(
                {
                    "above": a,
                    "below": b,
                    "gap": float(vals[a].mean() - vals[b].mean()),
                    "ranked": bool(vals[a].min() > vals[b].max()),
                }
            )
    return pd.DataFrame(rows, columns=["above", "below", "gap", "ranked"])


def check_groups(groups, n: int) -> np.ndarray:
    """``groups`` (one prompt id per document) as an array, or one line saying what to pass."""
    if groups is None:
        raise ValueError(
            "pass groups: one prompt id per document (the samples of one prompt are not independent)"
        )
    g = np.asarray(groups)
    if g.ndim != 1 or len(g) != n:
        raise ValueError(f"groups must hold one prompt id per document ({n}), got shape {g.shape}")
    return g


def grouped_folds(themes: np.ndarray, groups: np.ndarray, folds: int) -> int:
    """The folds a probe grouped by prompt and stratified by theme can use: ``folds`` capped at the fewest
    prompts of any theme (a theme needs a prompt in every fold); one line when there are too few."""
    themes = np.asarray(themes)
    g = check_groups(groups, len(themes))
    per_theme = pd.Series(g).groupby(themes).nunique()
    if len(per_theme) < 2 or per_theme.min() < 2:
        raise ValueError(
            f"a grouped probe needs >= 2 themes with >= 2 prompts each, got {per_theme.to_dict()}"
        )
    return min(as_count(folds, "folds", 2), int(per_theme.min()))


def probe_correct(
    Z: np.ndarray, themes: np.ndarray, groups: np.ndarray, folds: int = 5, seed: int = 0, C: float = 1.0
) -> np.ndarray:
    """Whether a linear probe (multinomial logistic regression, L2 penalty ``C``) names each document's
    theme when that document's prompt was held out: cross-validation with folds grouped by prompt (all
    samples of a prompt in one fold) and stratified by theme. ``folds`` is capped at the fewest prompts
    of any theme. The columns' weighting in ``Z`` uses no labels, so fitting it on all documents leaks
    nothing about the themes."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedGroupKFold

    themes = np.asarray(themes)
    g = check_groups(groups, len(Z))
    if len(themes) != len(Z):
        raise ValueError(f"themes has {len(themes)} labels for {len(Z)} documents; pass one per document")
    folds = grouped_folds(themes, g, folds)
    split = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=as_count(seed, "seed", 0))
    pred = np.empty(len(Z), dtype=themes.dtype)
    for train, test in split.split(Z, themes, g):
        model = LogisticRegression(C=as_finite(C, "C", 0, open_lo=True), max_iter=2000)
        pred[test] = model.fit(Z[train], themes[train]).predict(Z[test])
    return pred == themes


def probe_interval(correct: np.ndarray, groups: np.ndarray, **kw) -> Interval:
    """Accuracy of :func:`probe_correct` with a bootstrap interval over prompts (whole groups resampled);
    the interval's ``n`` is the number of prompts. Two representations' ``correct`` arrays differenced
    (``a.astype(float) - b``) give the interval of their accuracy gap, paired by prompt."""
    v = np.asarray(correct, dtype=np.float64)
    return grouped_interval(v, check_groups(groups, len(v)), **kw)


def probe_ranking(correct: dict[str, np.ndarray], groups: np.ndarray, **kw) -> pd.DataFrame:
    """Every pair of representations' probe accuracies, the higher first: ``above, below, gap`` (an
    :class:`~helpers.stats.Interval` of the accuracy difference, paired by document and resampled by
    prompt) and ``ranked`` (True when that interval excludes 0)."""
    acc = {name: np.asarray(c, dtype=np.float64) for name, c in correct.items()}
    g = check_groups(groups, len(next(iter(acc.values()))) if acc else 0)
    order = sorted(acc, key=lambda n: -acc[n].mean())
    rows = []
    for i, a in enumerate(order):
        for b in order[i + 1 :]:
            gap = probe_interval(acc[a] - acc[b], g, **kw)
            rows.append({"above": a, "below": b, "gap": gap, "ranked": gap.excludes(0.0)})
    return pd.DataFrame(rows, columns=["above", "below", "gap", "ranked"])


def mean_ranking(X: np.ndarray, labels: np.ndarray, c: int, n: int = 5) -> np.ndarray:
    """The report's ranking: the features with the largest mean activation in cluster ``c``."""
    return np.argsort(-X[labels == c].mean(0), kind="stable")[:n]


def lift_scores(X: np.ndarray, labels: np.ndarray, c: int) -> np.ndarray:
    """(in-cluster mean - out-of-cluster mean) / overall std, per feature (0 for constant ones)."""
    inside = labels == c
    sd = X.std(0)
    diff = X[inside].mean(0) - X[~inside].mean(0)
    return np.where(sd > 0, diff / np.where(sd > 0, sd, 1.0), 0.0)


def lift_ranking(X: np.ndarray, labels: np.ndarray, c: int, n: int = 5) -> np.ndarray:
    """The features most distinctive of cluster ``c``: largest :func:`lift_scores`."""
    return np.argsort(-lift_scores(X, labels, c), kind="stable")[:n]


def feature_families(W_dec: np.ndarray, features: np.ndarray, n_families: int, seed: int = 0) -> pd.DataFrame:
    """Cluster the decoder directions of ``features`` by cosine (k-means on unit vectors):
    ``feature, family, cos_to_centre``. Each feature id is a whole number in 0..d_sae-1 (-1, which would
    silently cluster the last feature under the label -1, is refused in one line); ``n_families`` lies in
    1..len(features)."""
    features = as_indices(features, "feature", len(W_dec), "W_dec").ravel()
    n_families = as_count(n_families, "n_families", 1, max(len(features), 1))
    W = W_dec[features] / np.linalg.norm(W_dec[features], axis=1, keepdims=True)
    km = KMeans(n_clusters=n_families, n_init=1, max_iter=100, random_state=as_count(seed, "seed", 0)).fit(W)
    centres = km.cluster_centers_ / np.linalg.norm(km.cluster_centers_, axis=1, keepdims=True)
    cos = (W * centres[km.labels_]).sum(1)
    return pd.DataFrame({"feature": features, "family": km.labels_, "cos_to_centre": cos})
