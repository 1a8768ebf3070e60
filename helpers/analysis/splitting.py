"""Feature splitting: how the features of a small SAE reappear in wider SAEs trained on the same rows.

A latent's decoder row ``W_dec[i]`` is the direction it writes into the residual stream, so two
latents of two SAEs mean the same thing to the model when their decoder rows point the same way.
We compare them by **cosine similarity** of the rows (the dot product of the rows scaled to length
1: 1 = same direction, 0 = unrelated, -1 = opposite). For every feature of the small SAE we keep its
best matches in each wider SAE; a feature is *matched* at a width when its best cosine there
reaches ``match`` (0.7 by default), and its *children* at that width are every wider feature within
``child`` cosine (the finer features it splits into, after Anthropic's "Towards Monosemanticity",
2023). All products are chunked over the small SAE's rows, so memory stays at ``chunk x d_large``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from helpers.analysis.features import FeatureIndex
from helpers.validate import as_count, as_finite, as_index, as_indices

MATCH = 0.7  # best cosine at which a small feature counts as found again in a wider SAE
CHILD = 0.5  # cosine at which a wider feature counts as one of a small feature's children


def unit_rows(W: np.ndarray | torch.Tensor, what: str = "W") -> torch.Tensor:
    """``W`` [n, d] as float32 rows of length 1 (a decoder matrix's directions).

    Refused with one line: not 2-D, no rows, NaN/inf, or an all-zero row (a direction has length)."""
    t = torch.as_tensor(W.detach() if isinstance(W, torch.Tensor) else np.asarray(W)).float().cpu()
    if t.ndim != 2 or len(t) == 0:
        raise ValueError(f"{what} must be a 2-D [features, d_in] matrix with rows, not {tuple(t.shape)}")
    if not torch.isfinite(t).all():
        raise ValueError(f"{what} holds NaN or inf; pass a trained SAE's W_dec")
    norms = t.norm(dim=1, keepdim=True)
    if (norms == 0).any():
        n = int((norms == 0).sum())
        raise ValueError(f"{what} has {n} all-zero rows; every decoder row needs a direction")
    return t / norms


def _pair(W_small, W_large) -> tuple[torch.Tensor, torch.Tensor]:
    A, B = unit_rows(W_small, "W_small"), unit_rows(W_large, "W_large")
    if A.shape[1] != B.shape[1]:
        raise ValueError(
            f"W_small rows have {A.shape[1]} dims but W_large rows {B.shape[1]}; compare SAEs of one layer"
        )
    return A, B


@dataclass(frozen=True)
class Matches:
    """The ``k`` best wider features of every small feature: ``ids[i]`` and ``cos[i]``, best first."""

    ids: np.ndarray  # [n_small, k] int64
    cos: np.ndarray  # [n_small, k] float32

    @property
    def best(self) -> np.ndarray:
        """Each small feature's best cosine in the wider SAE."""
        return self.cos[:, 0]


def best_matches(W_small, W_large, k: int = 5, chunk: int = 2048) -> Matches:
    """For every row of ``W_small`` [n_small, d], its ``k`` most similar rows of ``W_large``
    [n_large, d] by signed cosine, best first (chunks of ``chunk`` small rows at a time)."""
    A, B = _pair(W_small, W_large)
    k = min(as_count(k, "k (matches kept per small feature)"), len(B))
    chunk = as_count(chunk, "chunk")
    ids, cos = [], []
    for s in range(0, len(A), chunk):
        c, j = torch.topk(A[s : s + chunk] @ B.T, k, dim=1)
        ids.append(j)
        cos.append(c)
    return Matches(ids=torch.cat(ids).numpy().astype(np.int64), cos=torch.cat(cos).numpy())


def best_match(W_small, W_large) -> tuple[np.ndarray, np.ndarray]:
    """For every row of ``W_small``, the index of the most similar row of ``W_large`` by cosine and
    that cosine: ``(indices [n_small], cosines [n_small])`` (the notebook's exercise)."""
    m = best_matches(W_small, W_large, k=1)
    return m.ids[:, 0], m.cos[:, 0]


def child_counts(W_small, W_large, child: float = CHILD, chunk: int = 2048) -> np.ndarray:
    """How many rows of ``W_large`` lie within cosine ``child`` of each row of ``W_small``."""
    A, B = _pair(W_small, W_large)
    child, chunk = as_finite(child, "child (a cosine)", -1, 1), as_count(chunk, "chunk")
    return np.concatenate(
        [(A[s : s + chunk] @ B.T >= child).sum(1).numpy() for s in range(0, len(A), chunk)]
    ).astype(np.int64)


def children(W_small, W_large, i: int, child: float = CHILD) -> pd.DataFrame:
    """The wider features within cosine ``child`` of small feature ``i``, most similar first
    (columns ``feature``, ``cosine``; empty when none is that close)."""
    A, B = _pair(W_small, W_large)
    i = as_index(i, "feature", len(A), "W_small")
    child = as_finite(child, "child (a cosine)", -1, 1)
    c = (B @ A[i]).numpy()
    keep = np.flatnonzero(c >= child)
    keep = keep[np.argsort(-c[keep], kind="stable")]
    return pd.DataFrame({"feature": keep.astype(np.int64), "cosine": c[keep].astype(np.float32)})


@dataclass
class Splitting:
    """One small SAE against wider ones (``larger``: name -> W_dec, narrowest first).

    ``matches[name]`` holds every small feature's best matches there, ``counts[name]`` its number
    of children (wider features within cosine ``child``)."""

    small: str
    d_small: int
    sizes: dict[str, int]  # wider SAE name -> its number of features
    matches: dict[str, Matches]
    counts: dict[str, np.ndarray]
    match: float = MATCH
    child: float = CHILD

    def table(self) -> pd.DataFrame:
        """One row per wider SAE: how many small features are found again there (best cosine >=
        ``match``), their share, the median best cosine, and how the small features split."""
        rows = []
        for name in self.sizes:
            best, n = self.matches[name].best, self.counts[name]
            rows.append(
                {
                    "sae": name,
                    "features": self.sizes[name],
                    f"matched (cos >= {self.match:g})": int((best >= self.match).sum()),
                    "share matched": float((best >= self.match).mean()),
                    "median best cos": float(np.median(best)),
                    f"with >= 2 children (cos >= {self.child:g})": int((n >= 2).sum()),
                    "mean children": float(n.mean()),
                }
            )
        return pd.DataFrame(rows).set_index("sae")

    def child_distribution(self, most: int = 4) -> pd.DataFrame:
        """Small features by their number of children at each width: rows 0, 1, ..., ``most``+."""
        most = as_count(most, "most")
        names = [str(c) for c in range(most)] + [f"{most}+"]
        out = {}
        for name, n in self.counts.items():
            out[name] = np.bincount(np.minimum(n, most), minlength=most + 1)
        return pd.DataFrame(out, index=pd.Index(names, name="children"))

    def candidates(self, at: str, min_children: int = 2, live: np.ndarray | None = None) -> np.ndarray:
        """Small features with at least ``min_children`` children in ``at`` (only those in ``live``
        when given), the clearest splits first: ranked by the cosine of their ``min_children``-th
        nearest wider feature, so a feature whose second child is nearly as close as its first
        comes before one with many loosely related neighbours."""
        if at not in self.counts:
            raise ValueError(f"{at!r} is not one of the wider SAEs {list(self.counts)}")
        m = self.matches[at]
        min_children = as_count(min_children, "min_children (at most the matches kept, k)", 1, m.cos.shape[1])
        ids = np.flatnonzero(self.counts[at] >= min_children)
        if live is not None:
            ids = ids[np.isin(ids, live)]
        return ids[np.argsort(-m.cos[ids, min_children - 1], kind="stable")]


def firing_overlap(index: FeatureIndex, a: int, b: int) -> float:
    """How often features ``a`` and ``b`` of one SAE fire together on the indexed tokens: the rows
    where both fire over the rows where either fires (Jaccard; 0 = never together, 1 = always).
    Two children that split a feature divide its tokens between them (low overlap); two that
    duplicate each other fire on the same tokens (high overlap)."""
    ra, rb = index.of(a)[0], index.of(b)[0]
    either = len(np.union1d(ra, rb))
    return len(np.intersect1d(ra, rb, assume_unique=True)) / either if either else 0.0


def child_overlaps(res: Splitting, at: str, index: FeatureIndex, ids) -> np.ndarray:
    """For each small feature in ``ids``, the :func:`firing_overlap` of its two nearest features in
    the wider SAE ``at`` (``index``: that SAE's index over the same tokens). Each id is a whole number
    in 0..d_small-1: -1 (which would silently mean the last feature) or 3.5 is refused in one line."""
    if at not in res.matches:
        raise ValueError(f"{at!r} is not one of the wider SAEs {list(res.matches)}")
    m = res.matches[at]
    if m.ids.shape[1] < 2:
        raise ValueError("the matches keep only one wider feature per small one; compare with k >= 2")
    if index.d_sae != res.sizes[at]:
        raise ValueError(f"index has {index.d_sae} features but {at} has {res.sizes[at]}; pass {at}'s index")
    rows = as_indices(ids, "feature", res.d_small, f"the small SAE {res.small!r}").ravel().tolist()
    return np.array([firing_overlap(index, *m.ids[i, :2]) for i in rows])


def compare_widths(
    W_small,
    larger: Mapping[str, object],
    *,
    small: str = "small",
    k: int = 5,
    match: float = MATCH,
    child: float = CHILD,
    chunk: int = 2048,
) -> Splitting:
    """Match every feature of ``W_small`` against each decoder in ``larger`` (name -> W_dec)."""
    if not larger:
        raise ValueError("pass at least one wider SAE's W_dec in `larger` (name -> W_dec)")
    match, child = as_finite(match, "match (a cosine)", -1, 1), as_finite(child, "child (a cosine)", -1, 1)
    A = unit_rows(W_small, "W_small")
    sizes, matches, counts = {}, {}, {}
    for name, W in larger.items():
        B = unit_rows(W, f"W_dec of {name}")
        sizes[name] = len(B)
        matches[name] = best_matches(A, B, k=k, chunk=chunk)
        counts[name] = child_counts(A, B, child, chunk=chunk)
    return Splitting(
        small=small, d_small=len(A), sizes=sizes, matches=matches, counts=counts, match=match, child=child
    )


def pair_shares(decoders: Mapping[str, object], match: float = MATCH) -> pd.DataFrame:
    """For every pair (narrower, wider) of ``decoders`` (name -> W_dec, any order): the share of the
    narrower SAE's features whose best cosine in the wider one reaches ``match``."""
    units = {name: unit_rows(W, f"W_dec of {name}") for name, W in decoders.items()}
    order = sorted(units, key=lambda n: len(units[n]))
    rows = []
    for a, sa in enumerate(order):
        for sb in order[a + 1 :]:
            best = best_matches(units[sa], units[sb], k=1).best
            rows.append(
                {
                    "small": sa,
                    "large": sb,
                    "d_small": len(units[sa]),
                    "d_large": len(units[sb]),
                    "share matched": float((best >= match).mean()),
                    "median best cos": float(np.median(best)),
                }
            )
    return pd.DataFrame(rows)


def random_like(W, n: int | None = None, seed: int = 0) -> torch.Tensor:
    """``n`` random directions (default: as many as ``W`` has rows) drawn in the decoder rows' own
    subspace: Gaussian with the covariance of ``W``'s unit rows, i.e. random combinations of the
    actual rows. Decoder rows of a layer do not fill its 576 dimensions evenly (their participation
    ratio is far below 576), so isotropic directions would make chance look lower than it is. A
    dictionary of these directions with as many rows as a wider SAE is a null with the same number of
    candidates: how many matches and children would such a dictionary give by chance?"""
    U = unit_rows(W, "W").double()
    n = len(U) if n is None else as_count(n, "n (random directions)")
    seed = as_count(seed, "seed", 0)
    vals, vecs = torch.linalg.eigh(U.T @ U / len(U))
    g = torch.randn(n, U.shape[1], generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return ((g * vals.clamp_min(0).sqrt()) @ vecs.T).float()


def participation_ratio(W) -> float:
    """Effective number of dimensions the unit rows of ``W`` spread over: (sum λ)² / sum λ² of the
    eigenvalues λ of their second-moment matrix (d when even over d dimensions, 1 when all in one)."""
    U = unit_rows(W, "W").double()
    lam = torch.linalg.eigvalsh(U.T @ U / len(U))
    return float(lam.sum() ** 2 / (lam**2).sum())


def random_baseline(W_large, n: int = 1000, seed: int = 0, like=None) -> np.ndarray:
    """Best cosine in ``W_large`` of ``n`` random directions: what a match looks like by chance.
    With ``like`` (a decoder matrix, the small SAE's) they are drawn in its rows' subspace
    (:func:`random_like`); without, uniformly on the sphere (which understates chance when the rows
    occupy few effective dimensions)."""
    B = unit_rows(W_large, "W_large")
    n, seed = as_count(n, "n (random directions)"), as_count(seed, "seed", 0)
    if like is not None:
        return best_matches(random_like(like, n, seed), B, k=1).best
    g = torch.Generator().manual_seed(seed)
    return best_matches(torch.randn(n, B.shape[1], generator=g), B, k=1).best


def refind_pairs(
    decoders: Mapping[str, object],
    widths: Mapping[str, str],
    nulls: Mapping[str, object] | None = None,
    match: float = MATCH,
    child: float = CHILD,
) -> pd.DataFrame:
    """Every pair (a, b) of SAEs in ``decoders`` (name -> W_dec) with a no wider than b (one order for
    two SAEs of one width: a listed first), plus every SAE against each random dictionary of ``nulls``
    (name -> directions, e.g. :func:`random_like` of a wider SAE) at least as wide: the share of a's
    features found again in b (best cosine >= ``match``), the median best cosine, the share with two or
    more children (cosine >= ``child``) and the mean number of children. ``widths`` names each SAE's
    and null's width ("x1", "x8", "random like x8"): :func:`refind_summary` groups the pairs by it."""
    nulls = dict(nulls or {})
    missing = [n for n in [*decoders, *nulls] if n not in widths]
    if missing:
        raise ValueError(f"widths has no entry for {missing}; name the width of every SAE and null")
    units = {name: unit_rows(W, f"W_dec of {name}") for name, W in {**decoders, **nulls}.items()}
    names = list(decoders)
    rows = []
    for ai, a in enumerate(names):
        for b in [*names[ai + 1 :], *names[:ai], *nulls]:
            if len(units[a]) > len(units[b]) or (b in names[:ai] and len(units[a]) == len(units[b])):
                continue
            m = best_matches(units[a], units[b], k=1).best
            n = child_counts(units[a], units[b], child)
            rows.append(
                {
                    "small": a,
                    "large": b,
                    "small width": widths[a],
                    "large width": widths[b],
                    "share matched": float((m >= match).mean()),
                    "median best cos": float(np.median(m)),
                    "share with >= 2 children": float((n >= 2).mean()),
                    "mean children": float(n.mean()),
                }
            )
    if not rows:
        raise ValueError("no pair to compare: pass at least two SAEs, or an SAE and a null as wide")
    return pd.DataFrame(rows)


def refind_summary(pairs: pd.DataFrame) -> pd.DataFrame:
    """:func:`refind_pairs` grouped by (small width, large width): the number of pairs (each a
    different pair of training seeds) and the mean, min and max over them of the share found again and
    of the share with >= 2 children. The spread is over seeds; pairs that share an SAE are not
    independent, so it is a range, not a confidence interval."""
    need = {"small width", "large width", "share matched", "share with >= 2 children"}
    if not need <= set(pairs.columns):
        raise ValueError("pass the table refind_pairs returns")
    g = pairs.groupby(["small width", "large width"], sort=False)
    out = g.size().rename("pairs").to_frame()
    for col in ("share matched", "share with >= 2 children"):
        out[f"{col}: mean"] = g[col].mean()
        out[f"{col}: min"] = g[col].min()
        out[f"{col}: max"] = g[col].max()
    return out
