"""An intruder test of SAE features (notebook 07): four of a feature's top contexts and one context of
another feature, shuffled; whoever reads them picks the odd one out. A feature that means something
makes its four contexts alike and the intruder stand out; a random direction does not.

Two readers take the test: a student (the widget in :mod:`helpers.viz.intruder_view`) and
:func:`auto_pick`, an explanation-free chooser that compares the contexts' tokens, weighted toward
each context's peak. Both are read against chance (1 in 5, :func:`random_baseline`) and against a
control dictionary (e.g. :func:`helpers.analysis.clustering.random_features`) given the same test.
The unit of resampling is the question (one per feature): :func:`score_interval` is over questions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

from helpers.analysis.features import Example, FeatureIndex, doc_bounds, select_top, window
from helpers.data.store import Store
from helpers.stats import Interval
from helpers.validate import as_count, as_finite

LEFT, RIGHT = 10, 4  # a context: 10 tokens before the peak, 4 after (the dashboards' windows)
PEAK_WEIGHTS = (1.0, 0.5, 0.1)  # auto_pick: the peak token, its neighbours within `near`, the rest
NEAR = 2


@dataclass
class Question:
    """One intruder question: ``contexts`` in the order shown; ``answer`` is the intruder's position.
    The feature's contexts carry its activations; the intruder's carry ``intruder_feature``'s."""

    feature: int
    contexts: list[Example]
    answer: int
    intruder_feature: int

    def __post_init__(self) -> None:
        if not 0 <= self.answer < len(self.contexts):
            raise ValueError(f"answer {self.answer} is not a position of the {len(self.contexts)} contexts")


# --- building questions --------------------------------------------------------------------------


def top_pool(
    index: FeatureIndex, store: Store, i: int, n: int, bounds=None, left: int = LEFT, right: int = RIGHT
) -> list[Example]:
    """Feature ``i``'s ``n`` top examples, the same list as :func:`features.top_examples` (no two
    overlapping, no two with the same text up to the peak), found among its strongest firings first:
    ``top_examples`` scans every firing, which is slow for a feature that fires on half the tokens."""
    i = index.check_live(i)
    n = as_count(n, "n")
    rows, vals = index.of(i)
    order = np.argsort(-vals, kind="stable")
    bounds = bounds or doc_bounds(store)
    radius = max(left, right)
    m = min(len(rows), 32 * n)
    while True:
        sub = order[:m]  # greedy selection from the top down: its first choices do not depend on the rest
        out, seen = [], set()
        for j in select_top(vals[sub], rows[sub], store.doc_ids, m, radius):
            ex = window(index, store, i, int(rows[sub[j]]), bounds, left, right)
            key = tuple(store.token_ids[ex.rows[: ex.center - ex.rows[0] + 1]].tolist())
            if key not in seen:
                seen.add(key)
                out.append(ex)
                if len(out) == n:
                    return out
        if m == len(rows):
            return out
        m = min(len(rows), 8 * m)


def pick_features(
    index: FeatureIndex,
    n: int,
    min_fires: int = 20,
    seed: int = 0,
    store: Store | None = None,
    n_top: int = 4,
) -> np.ndarray:
    """``n`` features drawn at random (sorted ids) among those that fire at least ``min_fires`` times: a
    fair sample of the dictionary, not its strongest or most frequent features only. With ``store``, a
    drawn feature is kept only if it has ``n_top`` distinct top examples (a feature that fires on one
    prompt's text fires on each of its samples: many firings, one context), so each can make a question."""
    n, min_fires, seed = as_count(n, "n"), as_count(min_fires, "min_fires"), as_count(seed, "seed", 0)
    n_top = as_count(n_top, "n_top", 2)
    pool = np.flatnonzero(index.counts >= min_fires)
    if len(pool) < n:
        raise ValueError(
            f"only {len(pool)} features fire at least {min_fires} times; ask for n <= {len(pool)} "
            f"or lower min_fires"
        )
    drawn = np.random.default_rng(seed).permutation(pool)
    if store is None:
        return np.sort(drawn[:n])
    bounds = doc_bounds(store)
    kept: list[int] = []
    for i in drawn:
        if len(top_pool(index, store, int(i), n_top, bounds)) >= n_top:
            kept.append(int(i))
            if len(kept) == n:
                return np.sort(kept)
    if len(kept) < n:
        raise ValueError(
            f"only {len(kept)} features fire at least {min_fires} times in {n_top} distinct contexts; "
            f"ask for n <= {len(kept)} or lower min_fires"
        )
    return np.sort(kept)


def _intruder(
    index: FeatureIndex,
    store: Store,
    i: int,
    four: list[Example],
    rng: np.random.Generator,
    pool: int,
    bounds,
    tries: int,
) -> tuple[int, Example]:
    """A top example of another feature, drawn at random, from a document none of ``four`` come from,
    on which feature ``i`` is silent: on the whole window when such an example turns up within
    ``tries`` features, else at its peak (a feature that fires on most tokens is rarely silent for 15)."""
    docs = {ex.doc_id for ex in four}
    candidates = np.flatnonzero(index.counts > 0)
    candidates = candidates[candidates != i]
    if len(candidates) == 0:
        raise ValueError(f"feature {i} is the only live feature: an intruder needs another one")
    order = rng.permutation(candidates)[:tries]
    fallback: tuple[int, Example] | None = None
    for j in order:
        exs = [e for e in top_pool(index, store, int(j), pool, bounds) if e.doc_id not in docs]
        silent = [e for e in exs if not index.values_at(i, e.rows).any()]
        if silent:
            return int(j), silent[int(rng.integers(len(silent)))]
        if fallback is None:
            peak_silent = [e for e in exs if index.values_at(i, np.array([e.center]))[0] == 0]
            if peak_silent:
                fallback = int(j), peak_silent[int(rng.integers(len(peak_silent)))]
    if fallback is None:
        raise ValueError(
            f"no intruder found for feature {i}: it fires near the top examples of {len(order)} other "
            f"features; leave it out of the question set"
        )
    return fallback


def make_questions(
    index: FeatureIndex,
    store: Store,
    features: Sequence[int],
    n_top: int = 4,
    pool: int = 10,
    seed: int = 0,
    tries: int = 30,
) -> list[Question]:
    """One question per feature: ``n_top`` contexts drawn at random from its ``pool`` top examples, and an
    intruder (:func:`_intruder`: another feature's top example from another document, where this feature
    is silent), shuffled. Deterministic for a seed. A feature with fewer than ``n_top`` distinct top
    examples is refused in one line (pick features that fire more: :func:`pick_features`)."""
    n_top, seed, tries = as_count(n_top, "n_top", 2), as_count(seed, "seed", 0), as_count(tries, "tries")
    pool = as_count(pool, "pool", n_top)
    rng = np.random.default_rng(seed)
    bounds = doc_bounds(store)
    out = []
    for f in features:
        i = index.check_live(f)
        tops = top_pool(index, store, i, pool, bounds)
        if len(tops) < n_top:
            raise ValueError(
                f"feature {i} has only {len(tops)} distinct top examples, {n_top} are needed; "
                f"pick features that fire more often (pick_features(min_fires=...))"
            )
        four = [tops[k] for k in rng.choice(len(tops), n_top, replace=False)]
        j, intruder = _intruder(index, store, i, four, rng, pool, bounds, tries)
        contexts = [*four, intruder]
        order = rng.permutation(len(contexts))
        out.append(
            Question(
                feature=i,
                contexts=[contexts[k] for k in order],
                answer=int(np.flatnonzero(order == n_top)[0]),
                intruder_feature=j,
            )
        )
    return out


# --- an explanation-free reader -----------------------------------------------------------------


def peak_weights(
    length: int, peak: int, weights: Sequence[float] = PEAK_WEIGHTS, near: int = NEAR
) -> np.ndarray:
    """The weight of each token of a context: ``weights[0]`` at the peak, ``weights[1]`` within ``near``
    tokens of it, ``weights[2]`` elsewhere."""
    d = np.abs(np.arange(length) - peak)
    return np.where(d == 0, weights[0], np.where(d <= near, weights[1], weights[2])).astype(np.float64)


def similarity_to_rest(
    contexts: Sequence[np.ndarray],
    peaks: Sequence[int],
    weights: Sequence[float] = PEAK_WEIGHTS,
    near: int = NEAR,
) -> np.ndarray:
    """Each context's summed cosine similarity to the others, each context a bag of its token ids with
    each token weighted by :func:`peak_weights`."""
    if len(contexts) < 3 or len(peaks) != len(contexts):
        raise ValueError(
            f"need >= 3 contexts and one peak each, got {len(contexts)} contexts and {len(peaks)} peaks"
        )
    w = [as_finite(x, "a peak weight", 0.0) for x in weights]
    toks = [np.asarray(c, dtype=np.int64).ravel() for c in contexts]
    vocab, inverse = np.unique(np.concatenate(toks), return_inverse=True)
    bags = np.zeros((len(toks), len(vocab)))
    start = 0
    for k, t in enumerate(toks):
        np.add.at(bags[k], inverse[start : start + len(t)], peak_weights(len(t), int(peaks[k]), w, near))
        start += len(t)
    norm = np.linalg.norm(bags, axis=1, keepdims=True)
    unit = bags / np.where(norm > 0, norm, 1.0)
    sim = unit @ unit.T
    np.fill_diagonal(sim, 0.0)
    return sim.sum(1)


def odd_one_out(
    contexts: Sequence[np.ndarray],
    peaks: Sequence[int],
    weights: Sequence[float] = PEAK_WEIGHTS,
    near: int = NEAR,
) -> int:
    """The position of the context least like the others (:func:`similarity_to_rest`'s lowest; the
    first on a tie). Plain arrays in, so the exercise's reference is this same function."""
    return int(np.argmin(similarity_to_rest(contexts, peaks, weights, near)))


def auto_pick(
    question: Question, store: Store, weights: Sequence[float] = PEAK_WEIGHTS, near: int = NEAR
) -> int:
    """:func:`odd_one_out` on a question's contexts (token ids from ``store``, peaks at their centres)."""
    return odd_one_out(
        [store.token_ids[ex.rows] for ex in question.contexts],
        [ex.center - int(ex.rows[0]) for ex in question.contexts],
        weights,
        near,
    )


def auto_score(
    questions: Sequence[Question], store: Store, weights: Sequence[float] = PEAK_WEIGHTS, near: int = NEAR
) -> tuple[float, np.ndarray]:
    """The share of ``questions`` :func:`auto_pick` answers right, and whether it did, per question."""
    if not len(questions):
        raise ValueError("no questions to score: build some with make_questions")
    right = np.array([auto_pick(q, store, weights, near) == q.answer for q in questions], dtype=bool)
    return float(right.mean()), right


# --- reading a score against chance --------------------------------------------------------------


def _level(level: object) -> float:
    x = as_finite(level, "level", 0.0, 1.0, open_lo=True)
    if x >= 1.0:
        raise ValueError(f"level = {level!r} must lie in (0, 1), e.g. 0.95")
    return x


def random_baseline(
    n_questions: int, n_choices: int = 5, level: float = 0.95
) -> tuple[float, tuple[float, float]]:
    """Chance's score, 1 / ``n_choices``, and the range a guesser's share lands in with probability
    ``level`` over ``n_questions`` questions (binomial quantiles): a score above the range's top beats
    chance (one-sided at (1 - level) / 2)."""
    n = as_count(n_questions, "n_questions")
    c = as_count(n_choices, "n_choices", 2)
    level = _level(level)
    p = 1.0 / c
    a = (1 - level) / 2
    lo, hi = sps.binom.ppf([a, 1 - a], n, p)
    return p, (float(lo) / n, float(hi) / n)


def score_interval(right: np.ndarray, level: float = 0.95) -> Interval:
    """The share right with its Wilson interval over questions (one per feature: the unit resampled)."""
    r = np.asarray(right)
    if r.ndim != 1 or not len(r) or r.dtype != bool:
        raise ValueError(
            f"right must be a non-empty 1-D bool array (one per question), got {r.dtype} {r.shape}"
        )
    level = _level(level)
    n, k = len(r), int(r.sum())
    z = float(sps.norm.ppf(1 - (1 - level) / 2))
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return Interval(value=p, low=max(0.0, centre - half), high=min(1.0, centre + half), n=n, level=level)
