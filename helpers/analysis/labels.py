"""Automatic feature labels without an API, and a score saying whether each label is true.

A label is built from evidence the SAE and the data give: the tokens most *enriched* where the
feature fires (P(token | feature active) / P(token), on training rows), the tokens its decoder
direction *promotes* through the unembedding, and its most over-represented theme. It reads
``'solar'/'panel'/'energy' | ↑'s'/'cells' | Environment & Sustainability``.

Its **token-list detection AUROC** (:func:`label_detection_scores`) asks whether the label's list of
enriched tokens predicts where the feature fires on held-out documents: the list, used as a
detector, flags a held-out token when it is one of those tokens. The promoted tokens are scored
apart, as next-token evidence (does the next token belong to them?), and so is the theme. A random
label (another feature's) gives the baseline. :func:`detection_counts` keeps the token-list
detector's counts per held-out prompt, so that intervals can resample prompts (the samples of one
prompt share its text: they are not independent).
"""

from __future__ import annotations

import io
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy.stats import rankdata

from helpers.analysis.features import FeatureIndex
from helpers.files import commit, load_json, save_csv, verify
from helpers.validate import as_count, as_indices, id_column, is_whole

# enrichment's smoothing: every token counts as if seen this many more times where the feature is silent
PRIOR = 10


def enrichment(
    index: FeatureIndex,
    token_ids: np.ndarray,
    rows_mask: np.ndarray,
    min_count: int = 3,
    prior: float = PRIOR,
) -> pd.DataFrame:
    """``feature, token, count, token_count, ratio, smoothed`` over the rows in ``rows_mask``: how much
    more often ``token`` appears where the feature fires than overall, best first by ``smoothed``.

    ``ratio`` is the raw lift P(token | feature fires) / P(token). It favours rare tokens: a token seen
    3 times in the whole store, all 3 where the feature fires, gets the largest lift there is, above a
    token the feature fires on 30 times out of 40. ``smoothed`` is the lift with ``prior``
    pseudo-occurrences of every token where the feature is silent: ``ratio * n / (n + prior)`` for a
    token seen ``n`` times (``token_count``), so a token needs many sightings to reach the top (the rare
    token above drops to 3/13 of its lift, the common one keeps 40/50). ``prior = 0`` ranks by the raw
    lift. Pairs seen fewer than ``min_count`` times are dropped (one-off coincidences)."""
    min_count = as_count(min_count, "min_count", 1)
    if not (np.isfinite(prior) and prior >= 0):
        raise ValueError(f"prior must be a finite number >= 0 (pseudo-occurrences), got {prior!r}")
    lat = index.latents
    keep = rows_mask[index.rows]
    lat, rows = lat[keep], index.rows[keep]
    V = int(token_ids.max()) + 1
    key = lat.astype(np.int64) * V + token_ids[rows]
    uniq, cnt = np.unique(key, return_counts=True)
    f, t = uniq // V, uniq % V
    n_active = np.bincount(lat, minlength=index.d_sae)
    n_tok = np.bincount(token_ids[rows_mask], minlength=V)
    ratio = (cnt / n_active[f]) / (n_tok[t] / rows_mask.sum())
    smoothed = ratio * n_tok[t] / (n_tok[t] + prior)
    df = pd.DataFrame(
        {
            "feature": f,
            "token": t,
            "count": cnt,
            "token_count": n_tok[t],
            "ratio": ratio,
            "smoothed": smoothed,
        }
    )
    return df[df["count"] >= min_count].sort_values(
        ["feature", "smoothed", "count"], ascending=[True, False, False]
    )


def label_words(
    top_tokens: Sequence[str], all_tokens: Sequence[str], k: int, min_count: int = 2
) -> list[str]:
    """The ``k`` words that best characterise a feature, from the tokens at its top activations
    (``top_tokens``, with repeats) and the tokens of the whole corpus (``all_tokens``, with repeats; it
    holds every token of ``top_tokens``), best first (notebook 04's exercise).

    A word's **lift** is its share among ``top_tokens`` divided by its share among ``all_tokens``: how
    many times its base rate it appears where the feature fires. Raw counts would pick stop words
    (``the``, ``,``), which are frequent everywhere. Only words seen at least ``min_count`` times among
    ``top_tokens`` qualify (a word seen once is noise). Ties in lift go to the higher count among
    ``top_tokens``, then alphabetical order. Tokens are compared after ``.strip().lower()``; empty ones
    (whitespace) are skipped, and the shares count the other tokens only. Lifts are compared exactly, as
    fractions, so equal lifts tie. Fewer than ``k`` words come back when fewer qualify.
    :func:`enrichment` ranks every feature's tokens at once by a smoothed version of this lift (token ids,
    no case folding, ``min_count`` 3)."""
    k = as_count(k, "k (words to return)", 0)
    top = Counter(w for w in (str(t).strip().lower() for t in top_tokens) if w)
    base = Counter(w for w in (str(t).strip().lower() for t in all_tokens) if w)
    missing = [w for w in top if not base[w]]
    if missing:
        raise ValueError(
            f"{len(missing)} words of top_tokens are not in all_tokens (e.g. {missing[0]!r}): pass the whole "
            "corpus, top tokens included, as all_tokens"
        )
    n_top, n_all = sum(top.values()), sum(base.values())
    lift = {w: Fraction(c * n_all, n_top * base[w]) for w, c in top.items() if c >= min_count}
    return sorted(lift, key=lambda w: (-lift[w], -top[w], w))[:k]


@torch.no_grad()
def top_logit_tokens(W_dec: torch.Tensor, W_U: torch.Tensor, k: int = 3, chunk: int = 512) -> np.ndarray:
    """The ``k`` tokens each direction (a row of ``W_dec``) promotes most: ``[n_directions, k]``."""
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


def auroc_rows(fires: np.ndarray, score: np.ndarray) -> np.ndarray:
    """:func:`_auroc` of every row of ``fires`` [units, tokens] (bool) against the same row of
    ``score`` (small whole numbers: a detector's count of hits), all rows at once.

    With few score levels the rank sum reduces to counting: a positive at level ``l`` beats the
    negatives below ``l`` and ties, counted half, with those at ``l``. One pass per level, no sort
    (sorting 3,000 rows of 5,000 tokens takes seconds; this takes milliseconds). NaN where a row has
    no positive or no negative."""
    fires = np.asarray(fires, dtype=bool)
    score = np.asarray(score)
    score = score.view(np.int8) if score.dtype == bool else score
    if fires.shape != score.shape or fires.ndim != 2:
        raise ValueError(
            f"fires {fires.shape} and score {score.shape} must be the same [units, tokens] shape"
        )
    if not np.issubdtype(score.dtype, np.integer) or (score.size and score.max() - score.min() > 15):
        raise ValueError("auroc_rows takes small whole-number scores (counts of hits); use _auroc per row")
    ax = 0 if fires.T.flags.c_contiguous else 1  # reduce along the memory layout (transposed views)
    f, sc = (fires.T, score.T) if ax == 0 else (fires, score)
    f = f.view(np.int8)  # int8 sums with an int32 accumulator: several times faster than bool counts
    n_pos = f.sum(ax, dtype=np.int32).astype(np.float64)
    n_neg = fires.shape[1] - n_pos
    wins = np.zeros(len(fires))
    neg_below = np.zeros(len(fires))
    for lv in range(int(score.min()), int(score.max()) + 1) if score.size else ():
        at = (sc == lv).view(np.int8)
        pos_at = (at & f).sum(ax, dtype=np.int32)
        neg_at = at.sum(ax, dtype=np.int32) - pos_at
        wins += pos_at * (neg_below + 0.5 * neg_at)
        neg_below += neg_at
    with np.errstate(invalid="ignore", divide="ignore"):
        out = wins / (n_pos * n_neg)
    out[(n_pos == 0) | (n_neg == 0)] = np.nan
    return out


def next_tokens(token_ids: np.ndarray, doc_ids: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """The token that follows each row in its document, or -1 where it is not stored (a document's
    last row; rows of a document are consecutive, in position order)."""
    out = np.full(len(token_ids), -1, dtype=np.int64)
    same = (doc_ids[1:] == doc_ids[:-1]) & (positions[1:] == positions[:-1] + 1)
    out[:-1][same] = token_ids[1:][same]
    return out


@dataclass(frozen=True)
class LabelParts:
    """Exactly what each feature's label says, as token ids: ``enriched`` [features, n_tokens] and
    ``promoted`` [features, n_promoted] (-1 pads a shorter list), ``theme`` [features] (a theme's
    position in the themes, -1 for "any theme")."""

    features: np.ndarray
    enriched: np.ndarray
    promoted: np.ndarray
    theme: np.ndarray
    themes: tuple[str, ...]


def label_parts(
    lifts: pd.DataFrame,
    enr: pd.DataFrame,
    logit_top: np.ndarray,
    n_tokens: int = 3,
    n_promoted: int = 2,
    theme_lift: float = 1.5,
) -> LabelParts:
    """The pieces of the label of every feature of ``lifts`` ([feature x theme] lifts on training
    rows): its ``n_tokens`` most enriched tokens (``enr``, sorted as :func:`enrichment` sorts), the
    first ``n_promoted`` of ``logit_top[feature]``, and its theme if the lift reaches ``theme_lift``."""
    if n_promoted > logit_top.shape[1]:
        raise ValueError(f"n_promoted = {n_promoted} but logit_top holds {logit_top.shape[1]} tokens per row")
    features = lifts.index.to_numpy().astype(np.int64)
    top = enr.groupby("feature").head(n_tokens)
    rank = top.groupby("feature").cumcount().to_numpy()
    enriched = np.full((len(features), n_tokens), -1, dtype=np.int64)
    pos = pd.Series(np.arange(len(features)), index=features).reindex(top["feature"].to_numpy())
    ok = pos.notna().to_numpy()
    enriched[pos.to_numpy()[ok].astype(int), rank[ok]] = top["token"].to_numpy()[ok]
    L = lifts.to_numpy()
    theme = np.where(L.max(1) >= theme_lift, L.argmax(1), -1)
    return LabelParts(
        features=features,
        enriched=enriched,
        promoted=np.asarray(logit_top)[features, :n_promoted].astype(np.int64),
        theme=theme.astype(np.int64),
        themes=tuple(lifts.columns),
    )


def _hits(tokens: np.ndarray, label_tokens: np.ndarray) -> np.ndarray:
    """[features, rows] 1 where the row's token is one of the feature's ``label_tokens`` (-1 pads
    and never matches): a [features x distinct tokens] membership table, then one gather."""
    vocab, col = np.unique(tokens, return_inverse=True)
    at = np.clip(np.searchsorted(vocab, label_tokens), 0, len(vocab) - 1)
    match = (vocab[at] == label_tokens) & (label_tokens >= 0)
    member = np.zeros((len(vocab), len(label_tokens)), dtype=np.int8)
    member[at[match], np.nonzero(match)[0]] = 1
    return member[col].T  # gathering rows is ~20x faster than columns; the view is [features, rows]


def fires_matrix(index: FeatureIndex, features: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """[features, rows] True where the feature fires (is in ``index``) on that row (a transposed
    view, laid out as :func:`_hits` lays out its matrices, so elementwise work between them is fast).
    Feature ids and rows are checked (-1 would silently mean the last one)."""
    features = as_indices(features, "feature", index.d_sae, "this SAE")
    rows = as_indices(rows, "row", index.n_tokens, "the store")
    col = np.full(index.n_tokens, -1, dtype=np.int64)
    col[rows] = np.arange(len(rows))
    fpos = np.full(index.d_sae, -1, dtype=np.int64)
    fpos[features] = np.arange(len(features))
    lat = index.latents
    keep = (col[index.rows] >= 0) & (fpos[lat] >= 0)
    out = np.zeros((len(rows), len(features)), dtype=bool)
    out[col[index.rows[keep]], fpos[lat[keep]]] = True
    return out.T


def _donors(n: int, seed: int) -> np.ndarray:
    """A seeded derangement: feature ``i`` is read with feature ``donor[i]``'s label, never its own
    (when there is more than one feature)."""
    perm = np.random.default_rng(seed).permutation(n)
    donor = np.empty(n, dtype=np.int64)
    donor[perm] = np.roll(perm, 1)
    return donor


def label_detection_scores(
    index: FeatureIndex,
    token_ids: np.ndarray,
    next_ids: np.ndarray,
    eval_mask: np.ndarray,
    parts: LabelParts,
    seed: int = 0,
    theme_codes: np.ndarray | None = None,
) -> pd.DataFrame:
    """How well each part of every feature's label (``parts``) detects where the feature fires on the
    rows of ``eval_mask``, as an AUROC per part (0.5 = chance, 1 = flags every firing and nothing else):

    * ``token_auroc``, the headline (the **token-list detection AUROC**): a held-out token scores 1 if
      it is one of the label's enriched tokens (the ``n_tokens`` it shows; the label claims the
      feature fires *on* them), else 0;
    * ``next_token_auroc``: 1 if the *next* token of the document is one of its promoted tokens (the
      decoder direction pushes them up through the unembedding: a claim about what comes next, so the
      token after, never the current one; 0 at a document's last stored token). Kept apart from the
      headline: it is next-token evidence, and at a middle layer it sits near chance;
    * with ``theme_codes`` (each row's theme, coded as ``parts.themes``), ``theme_auroc``: 1 on tokens
      of documents of the label's theme ("any theme" flags nothing: 0.5).

    The enrichment *ratios* are not used: the label shows which tokens, not how enriched they are.
    The AUROC of a 0/1 detector is (hit rate + correct-rejection rate) / 2. Each score sits beside
    ``*_random``: the same detector with another feature's label (a seeded derangement, never its
    own). ``eval_fires`` counts the held-out firings; NaN where a feature never (or always) fires on
    the held-out rows. Vectorised: [features x held-out tokens] 0/1 matrices and :func:`auroc_rows`."""
    features = parts.features
    if len(next_ids) != len(token_ids) or len(eval_mask) != len(token_ids):
        raise ValueError("token_ids, next_ids and eval_mask must have one entry per store row")
    eval_rows = np.flatnonzero(eval_mask)
    fires = fires_matrix(index, features, eval_rows)
    donor = _donors(len(features), seed)
    cur, nxt = token_ids[eval_rows], next_ids[eval_rows]
    out = {"eval_fires": fires.sum(1)}
    for suffix, take in (("", slice(None)), ("_random", donor)):
        out["token_auroc" + suffix] = auroc_rows(fires, _hits(cur, parts.enriched[take]))
        out["next_token_auroc" + suffix] = auroc_rows(fires, _hits(nxt, parts.promoted[take]))
        if theme_codes is not None:
            th = parts.theme[take]
            t = ((theme_codes[eval_rows][None, :] == th[:, None]) & (th[:, None] >= 0)).astype(np.int8)
            out["theme_auroc" + suffix] = auroc_rows(fires, t)
    order = ["eval_fires"] + [
        n + s for n in ("token_auroc", "next_token_auroc", "theme_auroc") for s in ("", "_random")
    ]
    df = pd.DataFrame(out, index=pd.Index(features, name="feature"))
    return df[[c for c in order if c in df.columns]]


@dataclass(frozen=True)
class DetectionCounts:
    """The token-list detector's held-out tokens counted per unit and per group (a held-out prompt):
    ``own[u, g, flagged, fires]`` and ``random[...]`` (with another unit's label), where ``flagged`` is
    0/1 (the detector's score) and ``fires`` 0/1. Summed over any multiset of groups they give the
    AUROC on those groups' tokens (:func:`auroc_from_counts`), so a bootstrap over prompts needs no
    second pass over the tokens. ``units`` are the unit ids, ``groups`` the group labels."""

    units: np.ndarray
    groups: np.ndarray
    own: np.ndarray  # [units, groups, 2, 2] int64
    random: np.ndarray

    def subset(self, units) -> DetectionCounts:
        """The same counts for the units ``units`` (ids, in that order)."""
        pos = pd.Series(np.arange(len(self.units)), index=self.units).reindex(np.asarray(units))
        if pos.isna().any():
            raise ValueError(
                f"{int(pos.isna().sum())} of the units asked for have no counts; pass ids from .units"
            )
        at = pos.to_numpy().astype(np.int64)
        return DetectionCounts(self.units[at], self.groups, self.own[at], self.random[at])


def auroc_from_counts(counts: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """The AUROC of every unit from its :class:`DetectionCounts` array ``counts`` [units, groups, levels,
    2], its groups weighted by ``weights`` [groups] (how often each is drawn; default once each) or by
    each row of ``weights`` [n_draws, groups] (then [n_draws, units]). NaN where a unit has no firing or
    no silent token in the weighted groups."""
    c = np.asarray(counts, dtype=np.float64)
    if c.ndim != 4 or c.shape[-1] != 2:
        raise ValueError(f"counts must be [units, groups, levels, 2], got shape {c.shape}")
    w = np.ones(c.shape[1]) if weights is None else np.asarray(weights, dtype=np.float64)
    if w.shape[-1] != c.shape[1] or w.ndim > 2:
        raise ValueError(
            f"weights must be [groups] or [draws, groups] with {c.shape[1]} groups, got {w.shape}"
        )
    tot = np.tensordot(w, c, axes=([w.ndim - 1], [1]))  # [(draws,) units, levels, 2]
    neg, pos = tot[..., 0], tot[..., 1]
    below = np.cumsum(neg, axis=-1) - neg  # silent tokens at lower levels
    wins = (pos * (below + 0.5 * neg)).sum(-1)
    n_pos, n_neg = pos.sum(-1), neg.sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = wins / (n_pos * n_neg)
    return np.where((n_pos > 0) & (n_neg > 0), out, np.nan)


def _group_counts(fires: np.ndarray, flagged: np.ndarray, onehot: np.ndarray) -> np.ndarray:
    """[units, groups, 2, 2] counts of (flagged, fires) per group: one matmul per cell."""
    out = np.empty((len(fires), onehot.shape[1], 2, 2), dtype=np.int64)
    f = fires.astype(np.float32)
    h = flagged.astype(np.float32)
    both = (f * h) @ onehot
    n_f = f @ onehot
    n_h = h @ onehot
    n_all = onehot.sum(0)[None, :]
    out[:, :, 1, 1] = np.rint(both)
    out[:, :, 1, 0] = np.rint(n_h - both)
    out[:, :, 0, 1] = np.rint(n_f - both)
    out[:, :, 0, 0] = np.rint(n_all - n_f - n_h + both)
    return out


def detection_counts(
    index: FeatureIndex,
    token_ids: np.ndarray,
    eval_mask: np.ndarray,
    parts: LabelParts,
    groups: np.ndarray,
    seed: int = 0,
) -> DetectionCounts:
    """The token-list detector of :func:`label_detection_scores` (``token_auroc``, same derangement
    for the random labels with the same ``seed``), counted per group of held-out rows: ``groups`` holds
    one label per store row (each row's prompt). ``auroc_from_counts(c.own)`` equals ``token_auroc``."""
    groups = np.asarray(groups)
    if len(groups) != len(token_ids) or len(eval_mask) != len(token_ids):
        raise ValueError(
            "token_ids, eval_mask and groups must have one entry per store row (groups: each row's prompt)"
        )
    eval_rows = np.flatnonzero(eval_mask)
    if not len(eval_rows):
        raise ValueError("eval_mask selects no rows; pass the held-out rows")
    labels, code = np.unique(groups[eval_rows], return_inverse=True)
    onehot = np.zeros((len(eval_rows), len(labels)), dtype=np.float32)
    onehot[np.arange(len(eval_rows)), code] = 1
    fires = fires_matrix(index, parts.features, eval_rows)
    cur = token_ids[eval_rows]
    own = _group_counts(fires, _hits(cur, parts.enriched), onehot)
    rnd = _group_counts(fires, _hits(cur, parts.enriched[_donors(len(parts.features), seed)]), onehot)
    return DetectionCounts(units=parts.features.copy(), groups=labels, own=own, random=rnd)


def top_token_in_label(
    index: FeatureIndex, token_ids: np.ndarray, rows_mask: np.ndarray, parts: LabelParts
) -> pd.Series:
    """For every feature of ``parts``: 1.0 when the token at its largest activation among the rows of
    ``rows_mask`` is one of its label's enriched tokens, 0.0 when not, NaN when it does not fire there.
    Does the label name what a reader sees first on the dashboard?"""
    if len(rows_mask) != len(token_ids):
        raise ValueError("rows_mask must have one entry per store row")
    keep = rows_mask[index.rows]
    lat, rows, val = index.latents[keep], index.rows[keep], index.values[keep]
    order = np.lexsort((val, lat))  # by latent, then value ascending: each latent's last entry is its top
    lat_s = lat[order]
    last = np.r_[lat_s[1:] != lat_s[:-1], True] if len(lat_s) else np.zeros(0, bool)
    top_tok = np.full(index.d_sae, -1, dtype=np.int64)
    top_tok[lat_s[last]] = token_ids[rows[order][last]]
    t = top_tok[parts.features]
    hit = (parts.enriched == t[:, None]).any(1).astype(np.float64)
    return pd.Series(np.where(t >= 0, hit, np.nan), index=pd.Index(parts.features, name="feature"))


def build_labels(
    lifts: pd.DataFrame,
    enr: pd.DataFrame,
    logit_top: np.ndarray,
    tokenizer,
    n_tokens: int = 3,
    theme_lift: float = 1.5,
    n_promoted: int = 2,
) -> pd.DataFrame:
    """One label per feature of ``lifts`` (its theme lifts on the training rows):
    ``enriched tokens | ↑ promoted tokens | theme``, from the same :func:`label_parts` that
    :func:`label_detection_scores` scores."""
    parts = label_parts(lifts, enr, logit_top, n_tokens, n_promoted, theme_lift)

    def show(t):
        return repr(tokenizer.decode([int(t)]).strip() or tokenizer.decode([int(t)]))

    rows = []
    for f, enr_t, up_t, th in zip(parts.features, parts.enriched, parts.promoted, parts.theme, strict=True):
        toks = [show(t) for t in enr_t if t >= 0]
        ups = [show(t) for t in up_t]
        theme = parts.themes[th] if th >= 0 else "any theme"
        label = f"{'/'.join(toks) or '(no enriched token)'} | ↑{'/'.join(ups)} | {theme}"
        rows.append(
            {
                "feature": int(f),
                "label": label,
                "enriched_tokens": " ".join(toks),
                "promoted_tokens": " ".join(ups),
                "theme": theme,
            }
        )
    return pd.DataFrame(rows).set_index("feature")


LABELS_MARKER_SUFFIX = ".json"  # feature_labels.csv's marker: feature_labels.json (its size, SHA-256, count)


def save_labels(path: str | Path, labels: pd.DataFrame) -> Path:
    """Write the labels table (indexed by feature, as :func:`build_labels` returns it) to the CSV ``path``
    atomically, then its marker ``<name>.json`` naming its size, SHA-256 and number of labels, which
    :func:`load_labels` checks (a truncated or edited file is refused rather than read in part)."""
    path = Path(path)
    table = labels.reset_index() if "feature" not in labels.columns else labels
    save_csv(path, table)
    commit(path.with_suffix(LABELS_MARKER_SUFFIX), [path], {"count": len(table)})
    return path


def _labels_problem(path: Path, text: str, n_features: int | None) -> tuple[pd.DataFrame | None, str]:
    """The table in ``text`` (the file at ``path``) and "" when it is sound, else None and why not."""
    if not text.strip():
        return None, "is empty"
    try:
        df = pd.read_csv(io.StringIO(text), keep_default_na=False, dtype={"label": str})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as err:
        return None, f"is not valid CSV ({(str(err).strip().splitlines() or ['?'])[0]})"
    missing = [c for c in ("feature", "label") if c not in df.columns]
    if missing:
        return None, f"lacks column(s) {', '.join(missing)} (it needs the columns feature and label)"
    if df.empty:
        return None, "has a header but no labels"
    marker = path.with_suffix(LABELS_MARKER_SUFFIX)
    if marker.is_file():
        meta = verify(marker)
        if meta is None:
            return (
                None,
                f"does not match its marker {marker.name} (cut short or changed since it was written)",
            )
        if meta.get("count") != len(df):
            return None, f"holds {len(df):,} labels where {marker.name} says {meta.get('count')!r}"
    elif not text.endswith("\n"):  # pandas ends every row with a newline: the last one was cut
        return None, "ends in the middle of a row (cut short)"
    df["feature"] = id_column(df["feature"], "feature", path, n_features)
    return df, ""


def _n_features_beside(path: Path) -> int | None:
    """d_sae of the SAE whose folder holds the labels (its cfg.json), when there is one."""
    try:
        d_sae = load_json(path.parent / "cfg.json").get("d_sae")
    except (OSError, ValueError, AttributeError):
        return None
    return int(d_sae) if is_whole(d_sae) and d_sae > 0 else None


def load_labels(path: str | Path, n_features: int | None = None) -> dict[int, str]:
    """Notebook 04's labels by feature, or ``{}`` (saying so) when the file is missing.

    The file is checked as a whole: UTF-8 CSV text with ``feature`` and ``label`` columns, at least
    one row, feature ids whole, unique and below ``n_features`` (default: d_sae of the SAE in the same
    folder), and complete (the count in its marker ``<name>.json`` when :func:`save_labels` wrote one,
    else a last row ending in a newline, as pandas writes it). Anything else is one ``ValueError``
    line naming the file, never half the labels or a raw pandas error."""
    path = Path(path)
    if not path.is_file():
        print(
            f"{path.name} not found (run notebooks/04_manual_features.ipynb for labels): showing feature ids "
            f"only"
        )
        return {}
    fix = "re-run notebooks/04_manual_features.ipynb (or delete it to show feature ids only)"
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"{path.name} is not a CSV text file (not UTF-8); {fix}") from None
    if "\x00" in text:
        raise ValueError(f"{path.name} is binary, not a CSV text file; {fix}")
    try:
        df, why = _labels_problem(path, text, n_features or _n_features_beside(path))
    except ValueError as err:
        raise ValueError(f"{err}; {fix}") from None
    if df is None:
        raise ValueError(f"{path.name} {why}; {fix}")
    return dict(zip(df["feature"].tolist(), df["label"].astype(str), strict=True))
