"""Automatic feature labels without an API, and a score saying whether each label is true.

A label is built from evidence the SAE and the data give: the tokens most *enriched* where the
feature fires (P(token | feature active) / P(token), on training rows), the tokens its decoder
direction *promotes* through the unembedding, and its most over-represented theme. It reads
``'solar'/'panel'/'energy' | ↑'s'/'cells' | Science & Nature``.

Its **label detection AUROC** (:func:`label_detection_scores`) asks whether exactly what the label
says predicts where the feature fires on held-out documents: the label, used as a detector, flags a
held-out token when the token is one of the label's enriched tokens, and again when the *next*
token is one of its promoted tokens. A random label (another feature's) gives the baseline.
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
    :func:`enrichment` ranks by the same ratio for every feature at once (token ids, no case folding,
    ``min_count`` 3)."""
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


def label_detection_scores(
    index: FeatureIndex,
    token_ids: np.ndarray,
    next_ids: np.ndarray,
    eval_mask: np.ndarray,
    parts: LabelParts,
    seed: int = 0,
    theme_codes: np.ndarray | None = None,
) -> pd.DataFrame:
    """The **label detection AUROC** of every feature of ``parts`` on the rows of ``eval_mask``.

    The label is used as a detector of where its feature fires, and scores each held-out token by
    what the label says, nothing more:

    * ``enriched_auroc``: score 1 if the token is one of the label's enriched tokens (the
      ``n_tokens`` it shows; the label claims the feature fires *on* them);
    * ``promoted_auroc``: score 1 if the *next* token of the document is one of its promoted tokens
      (the decoder direction pushes them up through the unembedding: a claim about what comes
      next, so the token after, never the current one; 0 at a document's last stored token);
    * ``label_auroc``, the headline: the sum of the two (0, 1 or 2). It ranks a token both parts
      flag above a token one part flags above the rest, with no weights to fit: weights fitted on
      the held-out rows would leak the answer, and fitted on training rows they would score a model
      built on top of the label rather than the label.

    The enrichment *ratios* are not used: the label shows which tokens, not how enriched they are.
    The AUROC of a 0/1 detector is (hit rate + correct-rejection rate) / 2, so 0.5 is chance and
    1 means it flags every firing and nothing else. Each score sits beside ``*_random``: the same
    detector with another feature's label (a seeded derangement, never its own). With
    ``theme_codes`` (each row's theme, coded as ``parts.themes``), ``theme_auroc`` scores the label's
    theme (1 on tokens of documents of that theme; "any theme" flags nothing: 0.5). ``eval_fires``
    counts the held-out firings; NaN where a feature never (or always) fires on the held-out rows.

    Vectorised: [features x held-out tokens] 0/1 matrices and :func:`auroc_rows`."""
    features = parts.features
    if len(next_ids) != len(token_ids) or len(eval_mask) != len(token_ids):
        raise ValueError("token_ids, next_ids and eval_mask must have one entry per store row")
    eval_rows = np.flatnonzero(eval_mask)
    fires = fires_matrix(index, features, eval_rows)
    perm = np.random.default_rng(seed).permutation(len(features))
    donor = np.empty(len(features), dtype=np.int64)
    donor[perm] = np.roll(perm, 1)  # never itself (if more than one feature)
    cur, nxt = token_ids[eval_rows], next_ids[eval_rows]
    out = {"eval_fires": fires.sum(1)}
    for suffix, take in (("", slice(None)), ("_random", donor)):
        e = _hits(cur, parts.enriched[take])
        p = _hits(nxt, parts.promoted[take])
        out["label_auroc" + suffix] = auroc_rows(fires, e + p)
        out["enriched_auroc" + suffix] = auroc_rows(fires, e)
        out["promoted_auroc" + suffix] = auroc_rows(fires, p)
        if theme_codes is not None:
            th = parts.theme[take]
            t = ((theme_codes[eval_rows][None, :] == th[:, None]) & (th[:, None] >= 0)).astype(np.int8)
            out["theme_auroc" + suffix] = auroc_rows(fires, t)
    order = ["eval_fires"] + [
        n + s
        for n in ("label_auroc", "enriched_auroc", "promoted_auroc", "theme_auroc")
        for s in ("", "_random")
    ]
    df = pd.DataFrame(out, index=pd.Index(features, name="feature"))
    return df[[c for c in order if c in df.columns]]


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
