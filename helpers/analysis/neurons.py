"""Neurons, residual dimensions and SAE features judged by one rule: is a unit as readable as a
feature?

A **unit** is anything with one number per token and one direction it writes into the residual
stream: a residual-stream dimension ``d`` (writes the unit vector e_d), an MLP neuron ``j``
(writes column ``j`` of the MLP's output projection), an SAE feature (writes its decoder row).
Every kind goes through the same three steps:

1. **fires / does not fire** per token. An SAE feature fires where it is > 0. A dense unit (a
   dimension or neuron is non-zero on every token) fires where it lies above its own threshold:
   the value it exceeds on a share ``density`` of the training tokens, on the side (high or low) whose
   tail lies farther from its median on training tokens. ``density`` is set to the SAE features'
   median firing rate, so a typical feature and every dense unit fire equally often; and the side
   is picked because a neuron's or a dimension's sign is arbitrary (``silu(gate) * up`` is as often
   strongly negative as positive): the dense units get their more feature-like side, which favours
   them, so an SAE that still wins does so despite the help.
2. the **same automatic label** (:mod:`helpers.analysis.labels`): enriched tokens on training rows,
   promoted tokens of its direction through the unembedding, its theme.
3. the **same detector** on held-out rows (:func:`helpers.analysis.labels.label_detection_scores`:
   the token-list detection AUROC), beside a random label of the same kind.

The held-out rows are the tokens of a few held-out prompts, and the samples of one prompt share its
text, so the intervals of :func:`compare_kinds` and :func:`kind_differences` resample **prompts**
(every unit rescored on each resample), never units or tokens: the units of a layer are all there
is, the prompts are the sample.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from helpers.analysis import labels as autolabel
from helpers.analysis.features import FeatureIndex, theme_lifts
from helpers.stats import Interval
from helpers.validate import as_count, as_index


@dataclass
class Units:
    """Units of one ``kind``, turned into firings. ``index`` holds where each unit fires and by how
    much it exceeds its threshold there (an SAE feature: its activation, the threshold being 0);
    ``directions`` [units, d_model] what each writes, times its ``signs`` (+1 / -1, the side
    that fires); ``thresholds`` in the unit's own units (before the sign)."""

    kind: str
    index: FeatureIndex
    directions: torch.Tensor
    thresholds: np.ndarray
    signs: np.ndarray

    @property
    def W_dec(self) -> torch.Tensor:  # noqa: N802 - what a dashboard reads of an SAE
        return self.directions

    def feature_id(self, i: object) -> int:
        """``i`` as a unit of this kind, or one ``ValueError`` line (what a dashboard asks an SAE)."""
        return as_index(i, self.kind, len(self.directions), f"this set of {self.kind}s")

    def describe(self, i: int) -> str:
        """How unit ``i`` fires, in words (for a dashboard's title)."""
        i = self.feature_id(i)
        if self.thresholds[i] == 0 and self.signs[i] == 1:
            return f"{self.kind} {i}: fires where > 0"
        side = "above" if self.signs[i] > 0 else "below"
        return (
            f"{self.kind} {i}: fires {side} {self.thresholds[i]:.3g}; its activation here is how far "
            "beyond that it lies"
        )


def train_density(index: FeatureIndex, train_mask: np.ndarray) -> np.ndarray:
    """Share of the training rows on which each unit of ``index`` fires."""
    keep = train_mask[index.rows]
    return np.bincount(index.latents[keep], minlength=index.d_sae) / max(int(train_mask.sum()), 1)


@torch.no_grad()
def dense_units(
    acts: np.ndarray,
    train_mask: np.ndarray,
    density: float,
    directions: torch.Tensor,
    kind: str,
    chunk: int = 4096,
) -> Units:
    """Dense per-token values ``acts`` [rows, units] as firings: each unit fires where it lies beyond
    the value it exceeds on ``density`` of the training rows, on its heavier side (see the module's
    docstring). ``directions`` [units, d_model] is what each unit writes."""
    if acts.ndim != 2 or len(acts) != len(train_mask):
        raise ValueError(f"acts must be [rows, units] with one row per mask entry, got {acts.shape}")
    if directions.shape[0] != acts.shape[1]:
        raise ValueError(f"{acts.shape[1]} units but {directions.shape[0]} directions; pass one per unit")
    if not 0 < density < 0.5:
        raise ValueError(
            f"density must lie in (0, 0.5), got {density}: the share of training rows a unit fires on"
        )
    n_train = int(train_mask.sum())
    k = max(1, int(round(density * n_train)))  # at least one training firing (a tiny store)
    if k >= n_train // 2:
        raise ValueError(
            f"only {n_train} training rows: too few to pick a firing threshold; use a larger store"
        )
    X = torch.from_numpy(np.ascontiguousarray(acts[train_mask], dtype=np.float32))
    hi = torch.topk(X, k + 1, dim=0).values[k]  # exceeded by exactly k training rows (without ties)
    lo = -torch.topk(-X, k + 1, dim=0).values[k]
    med = X.median(dim=0).values
    del X
    sign = torch.where(hi - med >= med - lo, 1.0, -1.0)
    thr = torch.where(sign > 0, hi, lo)
    rows, cols, vals = [], [], []
    for s in range(0, len(acts), chunk):
        excess = (torch.from_numpy(np.asarray(acts[s : s + chunk], dtype=np.float32)) - thr) * sign
        r, c = torch.nonzero(excess > 0, as_tuple=True)
        rows.append((r + s).numpy())
        cols.append(c.numpy())
        vals.append(excess[r, c].numpy())
    index = FeatureIndex.from_entries(
        np.concatenate(rows), np.concatenate(cols), np.concatenate(vals), len(acts), acts.shape[1]
    )
    return Units(
        kind=kind,
        index=index,
        directions=directions.detach().float() * sign[:, None],
        thresholds=thr.numpy(),
        signs=sign.numpy().astype(np.int8),
    )


def sae_units(index: FeatureIndex, W_dec: torch.Tensor, kind: str = "SAE feature") -> Units:
    """An SAE's features as units: they fire where > 0 and write their decoder rows."""
    return Units(
        kind=kind,
        index=index,
        directions=W_dec.detach().float(),
        thresholds=np.zeros(index.d_sae, np.float32),
        signs=np.ones(index.d_sae, np.int8),
    )


def unit_labels(
    units: Units,
    token_ids: np.ndarray,
    next_ids: np.ndarray,
    theme_codes: np.ndarray,
    themes,
    train_mask: np.ndarray,
    eval_mask: np.ndarray,
    W_U: torch.Tensor,
    groups: np.ndarray,
    tokenizer=None,
    seed: int = 0,
    n_tokens: int = 3,
    n_promoted: int = 2,
) -> tuple[pd.DataFrame, autolabel.DetectionCounts]:
    """The automatic label of every unit that fires on the store, scored on the held-out rows (columns
    of :func:`~helpers.analysis.labels.label_detection_scores`), with ``train_density`` (its firing
    rate on the training rows) and, given a ``tokenizer``, the label text; and the token-list
    detector's counts per held-out group (``groups``: each store row's prompt) for
    :func:`compare_kinds`."""
    enr = autolabel.enrichment(units.index, token_ids, train_mask)
    lifts = theme_lifts(units.index, theme_codes, themes, train_mask)
    logit_top = autolabel.top_logit_tokens(units.directions, W_U, k=n_promoted)
    parts = autolabel.label_parts(lifts, enr, logit_top, n_tokens, n_promoted)
    out = autolabel.label_detection_scores(
        units.index, token_ids, next_ids, eval_mask, parts, seed=seed, theme_codes=theme_codes
    )
    out.insert(0, "train_density", train_density(units.index, train_mask)[parts.features])
    if tokenizer is not None:
        text = autolabel.build_labels(lifts, enr, logit_top, tokenizer, n_tokens, n_promoted=n_promoted)
        out.insert(0, "label", text["label"])
    out.index.name = units.kind
    counts = autolabel.detection_counts(units.index, token_ids, eval_mask, parts, groups, seed=seed)
    return out, counts


def prompt_draws(n_groups: int, n_boot: int, seed: int = 0) -> np.ndarray:
    """[n_boot, n_groups]: how often each group (prompt) is drawn in each bootstrap resample (the
    same draws for every kind of unit given the same seed, so kinds are compared on paired resamples)."""
    n_groups = as_count(n_groups, "n_groups (held-out prompts)", 2)
    n_boot = as_count(n_boot, "n_boot (bootstrap resamples)")
    rng = np.random.default_rng(seed)
    return np.stack(
        [np.bincount(rng.integers(0, n_groups, n_groups), minlength=n_groups) for _ in range(n_boot)]
    )


def _kept(counts: autolabel.DetectionCounts, min_eval_fires: int) -> autolabel.DetectionCounts:
    fires = counts.own[..., 1].sum((1, 2))
    own, rnd = autolabel.auroc_from_counts(counts.own), autolabel.auroc_from_counts(counts.random)
    keep = (fires >= min_eval_fires) & np.isfinite(own) & np.isfinite(rnd)
    return counts.subset(counts.units[keep])


def _interval(value: float, draws: np.ndarray, n: int, level: float = 0.95) -> Interval:
    d = draws[np.isfinite(draws)]
    a = (1 - level) / 2
    lo, hi = np.quantile(d, [a, 1 - a]) if len(d) else (np.nan, np.nan)
    return Interval(value=float(value), low=float(lo), high=float(hi), n=n, level=level)


def _check_groups(counts: dict[str, autolabel.DetectionCounts]) -> np.ndarray:
    if not counts:
        raise ValueError("pass at least one kind of unit (name -> DetectionCounts)")
    groups = next(iter(counts.values())).groups
    for kind, c in counts.items():
        if not isinstance(c, autolabel.DetectionCounts):
            raise ValueError(f"{kind}: pass the DetectionCounts of labels.detection_counts (or unit_labels)")
        if not np.array_equal(c.groups, groups):
            raise ValueError(f"{kind} was counted over other held-out prompts; count every kind on one split")
    return groups


def compare_kinds(
    counts: dict[str, autolabel.DetectionCounts], min_eval_fires: int = 1, n_boot: int = 1000, seed: int = 0
) -> pd.DataFrame:
    """One row per kind (name -> its :class:`~helpers.analysis.labels.DetectionCounts`): how many units
    were scored (firing at least ``min_eval_fires`` times on held-out rows, with a defined score), the
    mean token-list detection AUROC, the same for the random-label baseline and the mean gain over it
    (own - random, paired per unit), each with a bootstrap 95% interval over the held-out **prompts**
    (``prompts``: their number, the n of every interval): each resample draws prompts with replacement
    and rescores every unit on their tokens. All kinds share the resamples (one ``seed``).

    The median AUROC and the shares of units above 0.9 (own and random label) are given as point values
    only, to 3 decimals: under prompt resampling they are biased. A unit that fires in one or two prompts
    drops out of the resamples that miss them and scores an extreme AUROC in those that repeat them, so
    their percentile intervals missed their own point values (the share above 0.9 of notebook 04's SAE
    features: 0.088 with an "interval" of [0.100, 0.123]). The means and the gain are what the notebooks
    read and compare."""
    groups = _check_groups(counts)
    draws = prompt_draws(len(groups), n_boot, seed)
    n = len(groups)
    rows = []
    for kind, c in counts.items():
        c = _kept(c, min_eval_fires)
        if len(c.units) < 2:
            raise ValueError(f"{kind}: {len(c.units)} units fire on the held-out rows; too few to compare")
        own, rnd = autolabel.auroc_from_counts(c.own), autolabel.auroc_from_counts(c.random)
        b_own, b_rnd = autolabel.auroc_from_counts(c.own, draws), autolabel.auroc_from_counts(c.random, draws)
        with np.errstate(invalid="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a resample in which no unit fires: NaN, dropped
            rows.append(
                {
                    "kind": kind,
                    "units": len(c.units),
                    "prompts": n,
                    "mean": _interval(own.mean(), np.nanmean(b_own, 1), n),
                    "random mean": _interval(rnd.mean(), np.nanmean(b_rnd, 1), n),
                    "gain (own - random)": _interval((own - rnd).mean(), np.nanmean(b_own - b_rnd, 1), n),
                    # no intervals for these three: see the docstring
                    "median (no interval)": round(float(np.median(own)), 3),
                    "share > 0.9 (no interval)": round(float((own > 0.9).mean()), 3),
                    "random share > 0.9": round(float((rnd > 0.9).mean()), 3),
                }
            )
    return pd.DataFrame(rows).set_index("kind")


def kind_differences(
    counts: dict[str, autolabel.DetectionCounts],
    pairs: list[tuple[str, str]],
    min_eval_fires: int = 1,
    n_boot: int = 1000,
    seed: int = 0,
) -> pd.DataFrame:
    """For each ``(a, b)`` in ``pairs``: the mean token-list detection AUROC of kind ``a`` minus that
    of kind ``b``, with a bootstrap 95% interval over the held-out prompts (the same resamples for both
    kinds: the units of both are rescored on the same drawn prompts). ``a`` beats ``b`` where the
    interval excludes 0 (column ``clear``)."""
    groups = _check_groups(counts)
    draws = prompt_draws(len(groups), n_boot, seed)
    n = len(groups)
    point, boot = {}, {}
    for kind in {k for p in pairs for k in p}:
        if kind not in counts:
            raise ValueError(f"{kind!r} is not one of the kinds {list(counts)}")
        c = _kept(counts[kind], min_eval_fires)
        point[kind] = float(autolabel.auroc_from_counts(c.own).mean())
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            boot[kind] = np.nanmean(autolabel.auroc_from_counts(c.own, draws), 1)
    rows = []
    for a, b in pairs:
        iv = _interval(point[a] - point[b], boot[a] - boot[b], n)
        rows.append({"a": a, "b": b, "prompts": n, "mean a - mean b": iv, "clear": iv.excludes(0.0)})
    return pd.DataFrame(rows)
