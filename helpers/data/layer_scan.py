"""Per-layer statistics of the residual stream, used by notebook 01 to choose a layer.

All functions take ``x``: activations ``[n_tokens, d_model]`` of one layer (padding already
removed), plus ``positions``/``doc_ids`` where they need to know which token is which.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from helpers.config import paths, profile_name
from helpers.files import load_json, save_json
from helpers.validate import as_index, field


def report_stats(x: np.ndarray) -> dict[str, float]:
    """The original report's table: sum, max and mean of every activation value."""
    x = np.asarray(x, dtype=np.float64)
    return {"sum": float(x.sum()), "max": float(x.max()), "mean": float(x.mean())}


def token_norms(x: np.ndarray) -> np.ndarray:
    """L2 norm of each token's vector: ``[n_tokens]``."""
    return np.linalg.norm(np.asarray(x, dtype=np.float64), axis=-1)


def sink_ratio(x: np.ndarray, positions: np.ndarray) -> float:
    """Mean norm of first tokens (position 0) divided by the mean norm of all other tokens.

    A large ratio is the "attention sink": the model parks attention on the first token and
    gives it a huge, mostly content-free vector.
    """
    norms = token_norms(x)
    first = np.asarray(positions) == 0
    if not first.any() or first.all():
        raise ValueError("need both first tokens (position 0) and later tokens")
    return float(norms[first].mean() / norms[~first].mean())


def participation_ratio(x: np.ndarray) -> float:
    """Effective dimensionality: (sum λ)² / sum λ² over the eigenvalues λ of the covariance.

    Equals d when variance is spread evenly over d directions, 1 when one direction holds it
    all. Uses tr(C)² / ||C||_F², which equals the eigenvalue formula without an eigensolver.
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or len(x) < 2:
        raise ValueError("participation_ratio needs a 2-D array with at least two rows")
    xc = x - x.mean(0)
    cov = xc.T @ xc / (len(x) - 1)
    return float(np.trace(cov) ** 2 / np.sum(cov * cov))


def outlier_dims(x: np.ndarray, k: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` dimensions with the largest mean |activation|, and how many times the median
    dimension's mean |activation| each one is."""
    mag = np.abs(np.asarray(x, dtype=np.float64)).mean(0)
    top = np.argsort(-mag, kind="stable")[:k]
    return top, mag[top] / np.median(mag)


def mean_pool(
    x: np.ndarray, doc_ids: np.ndarray, keep: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Average each document's token vectors (rows where ``keep``): ``(docs, [n_docs, d])``."""
    doc_ids = np.asarray(doc_ids)
    keep = np.ones(len(doc_ids), bool) if keep is None else np.asarray(keep, bool)
    docs, inv = np.unique(doc_ids[keep], return_inverse=True)
    sums = np.zeros((len(docs), x.shape[-1]))
    np.add.at(sums, inv, np.asarray(x, dtype=np.float64)[keep])
    return docs, sums / np.bincount(inv)[:, None]


def probe_accuracy(features: np.ndarray, labels, folds: int = 5, seed: int = 0) -> tuple[float, float]:
    """Cross-validated accuracy (mean, std over folds) of a standardised logistic-regression
    probe predicting ``labels`` from ``features``."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    labels = np.asarray(labels)
    n_min = pd.Series(labels).value_counts().min()
    folds = int(min(folds, n_min))
    if folds < 2:
        raise ValueError("the probe needs at least 2 examples of every class")
    probe = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=2000))
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    scores = cross_val_score(probe, features, labels, cv=cv)
    return float(scores.mean()), float(scores.std())


def scan_layers(
    acts: np.ndarray, positions: np.ndarray, doc_ids: np.ndarray, doc_themes, seed: int = 0
) -> pd.DataFrame:
    """One row per layer of every statistic notebook 01 reports.

    ``acts`` is ``[n_layers, n_tokens, d]``; ``doc_themes[doc]`` is each document's theme.
    Norms, dimensionality, outliers and the probe leave out the first token of each document
    (the attention sink), which would otherwise dominate them: ``first_norm`` is the mean norm of
    the first tokens, ``other_norm`` that of all other tokens (``sink_ratio`` is their quotient). The
    report's ``sum``/``max``/``mean`` keep every token, as the report did.
    """
    later = np.asarray(positions) > 0
    doc_themes = np.asarray(doc_themes)
    rows = []
    for layer, x in enumerate(acts):
        xs = x[later]
        dims, ratios = outlier_dims(xs, k=3)
        docs, pooled = mean_pool(x, doc_ids, later)
        acc, acc_sd = probe_accuracy(pooled, doc_themes[docs], seed=seed)
        norms = token_norms(x)
        rows.append(
            {
                "layer": layer,
                **report_stats(x),
                "other_norm": float(norms[later].mean()),
                "first_norm": float(norms[~later].mean()),
                "sink_ratio": sink_ratio(x, positions),
                "top_dim": int(dims[0]),
                "top_dims": ",".join(map(str, dims)),
                "outlier_ratio": float(ratios[0]),
                "participation_ratio": participation_ratio(xs),
                "probe_acc": acc,
                "probe_sd": acc_sd,
            }
        )
    return pd.DataFrame(rows)


@dataclass(frozen=True)
class Recommendation:
    layer: int
    reason: str


def recommend_layer(scan: pd.DataFrame, band: tuple[float, float] = (1 / 3, 2 / 3)) -> Recommendation:
    """Pick the layer for the SAE from the scan.

    Rule: within the middle band of depth (the advice of Scaling Monosemanticity that the report
    cites), take the layers whose probe accuracy is within one fold-std of the band's best; among
    them prefer the highest participation ratio (variance spread over more directions: more for
    an SAE to find, less dominated by outlier dimensions); ties go to the shallower layer, which
    is cheaper to capture.
    """
    n = len(scan)
    lo, hi = int(round(band[0] * (n - 1))), int(round(band[1] * (n - 1)))
    mid = scan[(scan["layer"] >= lo) & (scan["layer"] <= hi)]
    best = mid.loc[mid["probe_acc"].idxmax()]
    near = mid[mid["probe_acc"] >= best["probe_acc"] - best["probe_sd"]]
    pick = near.sort_values(["participation_ratio", "layer"], ascending=[False, True]).iloc[0]
    reason = (
        f"layer {int(pick['layer'])}: middle band {lo}-{hi} of 0-{n - 1}; its theme probe reaches "
        f"{pick['probe_acc']:.2f} (band best {best['probe_acc']:.2f} at layer {int(best['layer'])}, "
        f"{len(near)} layers within one fold-std) and it has the highest participation ratio among "
        f"those, {pick['participation_ratio']:.1f}"
    )
    return Recommendation(layer=int(pick["layer"]), reason=reason)


def save_scan(scan: pd.DataFrame, rec: Recommendation, model: str, n_prompts: int) -> None:
    """Write ``layer_scan.json`` (per-layer table + recommended layer) atomically."""
    save_json(
        paths().layer_scan,
        {
            "model": model,
            "profile": profile_name(),
            "n_prompts": int(n_prompts),
            "recommended_layer": rec.layer,
            "reason": rec.reason,
            "layers": scan.round(6).to_dict(orient="records"),
        },
    )


def load_chosen_layer(n_layers: int | None = None) -> int:
    """The layer notebook 01 recommended (read from ``layer_scan.json``): a whole number in 0..n-1,
    where n is ``n_layers`` (the model's, when the caller has it) or the number of layers the file's
    scan covers. Anything else (``true``, ``16.7``, ``"sixteen"``, null, -1, 99, the key missing) is
    one ``ValueError`` line naming the file."""
    path = paths().layer_scan
    if not path.is_file():
        raise FileNotFoundError(
            f"{path.name} not found; run notebooks/01_layer_scan.ipynb first (or set LAYER by hand)"
        )
    data = load_json(path)
    if n_layers is None:
        n_layers = field(data, "layers", path, _scan_rows)
    return field(data, "recommended_layer", path, lambda v, name: _layer(v, name, n_layers))


def _scan_rows(value: object, name: str) -> int:
    """How many layers a scan's ``layers`` table covers (one row per layer)."""
    if not isinstance(value, list) or not value:
        raise ValueError(f"{name} must be the scan's table (a list, one row per layer), not {value!r:.40}")
    return len(value)


def _layer(value: object, name: str, n_layers: int) -> int:
    try:
        return as_index(value, "layer", n_layers, "the model")
    except ValueError as err:
        raise ValueError(f"{name}: {err}") from None
