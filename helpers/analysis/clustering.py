"""Clustering documents by their SAE features (notebook 05), measured against the themes.

Document vectors: an SAE feature vector per document (max or mean over its tokens), the raw
residual stream mean-pooled, or a random-projection baseline of the SAE's width. Each is
standardised per column and scaled to unit length per document before clustering, so k-means
works on cosine geometry and a dense feature does not dominate by its size.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from sklearn.cluster import AgglomerativeClustering, KMeans
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score, silhouette_score

from helpers.analysis.features import FeatureIndex
from helpers.data.layer_scan import mean_pool
from helpers.data.store import Store
from helpers.validate import as_count, as_indices

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
    out = np.full((len(docs), acts.shape[1]), -np.inf)
    np.maximum.at(out, inv, acts)
    return docs, out


@torch.no_grad()
def random_features(store: Store, width: int, k: int, seed: int = 0, batch_size: int = 4096) -> FeatureIndex:
    """A random 'SAE' of the same width and sparsity: the k largest of ReLU((x - mean) R) per
    token for a fixed Gaussian R — the baseline that says what the SAE's *learned* directions add."""
    g = torch.Generator().manual_seed(seed)
    R = torch.randn(store.d_model, width, generator=g) / np.sqrt(store.d_model)
    mu = torch.as_tensor(store.acts.mean(0))
    rows, lats, vals = [], [], []
    for s in range(0, len(store), batch_size):
        pre = (torch.as_tensor(store.acts[s : s + batch_size]) - mu) @ R
        v, i = torch.topk(pre, k, dim=-1)
        v = torch.relu(v)
        r = torch.arange(s, s + len(pre)).unsqueeze(1).expand_as(i)
        keep = v > 0
        rows.append(r[keep].numpy())
        lats.append(i[keep].numpy())
        vals.append(v[keep].numpy())
    return FeatureIndex.from_entries(
        np.concatenate(rows), np.concatenate(lats), np.concatenate(vals), len(store), width
    )


def prepare(X: np.ndarray) -> np.ndarray:
    """Standardise each column (constant columns dropped), scale each row to unit length, and
    rotate onto the rows' own span: with n documents and d > n columns, ``Z V`` (V from the SVD
    of Z) has n columns and the same dot products and distances between documents, so every
    clustering below gives the same result, d / n times faster."""
    X = np.asarray(X, dtype=np.float64)
    sd = X.std(0)
    Z = (X[:, sd > 0] - X[:, sd > 0].mean(0)) / sd[sd > 0]
    Z = Z / np.maximum(np.linalg.norm(Z, axis=1, keepdims=True), 1e-12)
    if Z.shape[1] > Z.shape[0]:
        U, S, _ = np.linalg.svd(Z, full_matrices=False)
        Z = U * S
    return Z


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
