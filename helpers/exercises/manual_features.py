"""Graded exercises of Notebook 04 (manual features): top examples without overlap, and a feature's label
words ranked by lift."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import numpy as np

from helpers.analysis import features, labels
from helpers.exercises.common import Case, CheckFailed, Exercise, arrays, first_match, make_check

# ----------------------------------------------------------------------------------------------
# select_top(values, rows, doc_ids, n, radius): the n largest activations, no two within 2 x radius
# rows of one document, greedily from the largest down

_TOP_FORMAT = "return a list of indices into `rows` (ints), best first"


def _top_case(rng: np.random.Generator) -> Case:
    """A feature's activations on a few documents (it fires on about half the rows, so indices into
    ``rows`` are not row numbers), with strong activations planted where the rules matter: 1, radius + 1,
    exactly 2 x radius and 2 x radius + 1 rows from a chosen one, and on the last and first rows of two
    neighbouring documents."""
    radius = int(rng.integers(1, 4))
    n_docs = int(rng.integers(4, 7))
    lengths = rng.integers(10 * radius + 8, 10 * radius + 30, size=n_docs)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    doc_ids = np.repeat(np.arange(n_docs), lengths)
    c = int(rng.integers(0, n_docs - 1))  # documents c and c + 1 meet at the planted boundary
    a_doc, b_doc = rng.choice([d for d in range(n_docs) if d not in (c, c + 1)], 2, replace=False)
    a = starts[a_doc] + 4 * radius + 2 + int(rng.integers(0, 3))
    b = starts[b_doc] + 2 * radius + int(rng.integers(0, 3))
    boundary = starts[c + 1]
    # strongest first: a; b (another document); a + 1 (overlaps a); a + radius + 1 (overlaps a, though
    # more than radius away); a - 2 radius (overlaps a, just); b + 2 radius + 1 (clear of b); the last row
    # of document c and the first of c + 1 (different documents)
    planted = [a, b, a + 1, a + radius + 1, a - 2 * radius, b + 2 * radius + 1, boundary - 1, boundary]
    rows = np.flatnonzero(rng.random(len(doc_ids)) < 0.5)
    rows = np.unique(np.concatenate([rows, planted]))
    values = rng.uniform(0.05, 1.0, size=len(rows))
    strong = np.sort(rng.uniform(3.0, 9.0, size=len(planted)))[::-1]
    values[np.searchsorted(rows, planted)] = strong
    n = 5 + int(rng.integers(0, 4))  # the five planted rows that can all be chosen, and a few more
    return arrays(values=values, rows=rows, doc_ids=doc_ids, n=n, radius=radius)


def _greedy(values, rows, doc_ids, n, radius, reach=None, same_doc=True, by_index=False, last_only=False):
    """Greedy selection, with switches for the likely mistakes (the reference is all defaults)."""
    reach = 2 * radius if reach is None else reach
    chosen: list[int] = []
    for j in np.argsort(-values, kind="stable"):
        against = chosen[-1:] if last_only else chosen
        near = False
        for c in against:
            dist = abs(int(j) - c) if by_index else abs(int(rows[j]) - int(rows[c]))
            if dist <= reach and (not same_doc or doc_ids[rows[c]] == doc_ids[rows[j]]):
                near = True
        if not near:
            chosen.append(int(j))
        if len(chosen) == n:
            break
    return chosen


def _top_args(case: Case) -> tuple:
    return case["values"], case["rows"], case["doc_ids"], int(case["n"]), int(case["radius"])


def _top_answer(args: tuple, case: Case) -> Case:
    values, rows, doc_ids, n, radius = _top_args(case)
    got = args[0](values.copy(), rows.copy(), doc_ids.copy(), n, radius)
    try:
        idx = [int(g) for g in got]
    except (TypeError, ValueError) as err:
        raise CheckFailed(_TOP_FORMAT) from err
    return arrays(idx=np.asarray(idx, dtype=np.int64))


def _top_solve(case: Case) -> Case:
    return arrays(idx=np.asarray(features.select_top(*_top_args(case)), dtype=np.int64))


def _top_judge(case: Case, out: Case) -> str | None:
    values, rows, doc_ids, n, radius = _top_args(case)
    want = _top_solve(case)["idx"]
    try:
        raw = np.asarray(out["idx"], dtype=np.float64).reshape(-1)
    except (KeyError, TypeError, ValueError):
        return _TOP_FORMAT
    if not np.all(np.isfinite(raw)) or np.any(raw != np.round(raw)):
        return _TOP_FORMAT
    got = raw.astype(np.int64)
    if np.array_equal(got, want):
        return None
    top_n = np.argsort(-values, kind="stable")[:n]
    hint = first_match(
        got,
        [
            (
                rows[want],
                "return the indices j into `rows` (positions in `values`), not the row numbers rows[j]",
            ),
            (
                top_n,
                "two examples overlap: skip a candidate within 2 x radius rows of an already chosen row of "
                "the same document",
            ),
            (
                _greedy(values, rows, doc_ids, n, radius, reach=2 * radius - 1),
                "a candidate exactly 2 x radius rows from a chosen one still overlaps it: skip it when the "
                "distance is <= 2 * radius, not < 2 * radius",
            ),
            (
                _greedy(values, rows, doc_ids, n, radius, reach=radius),
                "two windows of radius r overlap when their centres are within 2 x radius rows, not radius",
            ),
            (
                _greedy(values, rows, doc_ids, n, radius, same_doc=False),
                "rows of different documents never overlap: skip a candidate only when it is near a chosen "
                "row of the same document",
            ),
            (
                _greedy(values, rows, doc_ids, n, radius, by_index=True),
                "compare row numbers rows[j], not the positions j in the list: the feature does not fire on "
                "every row, so neighbouring entries of `rows` can be far apart",
            ),
            (
                _greedy(values, rows, doc_ids, n, radius, last_only=True),
                "compare each candidate with every example chosen so far, not only the last one",
            ),
            (np.sort(want), "order the examples by activation, largest first"),
            (
                _greedy(-values, rows, doc_ids, n, radius),
                "those are the smallest activations: walk the activations from the largest down",
            ),
        ],
    )
    if hint:
        return hint
    if len(got) != len(want):
        return f"asked for n = {n} examples, got {len(got)}"
    if got.min() < 0 or got.max() >= len(rows):
        return "return indices into `rows` (0 <= j < len(rows))"
    for i in range(len(got)):
        for h in range(i):
            ra, rb = int(rows[got[i]]), int(rows[got[h]])
            if doc_ids[ra] == doc_ids[rb] and abs(ra - rb) <= 2 * radius:
                return (
                    "two chosen examples overlap (rows of one document within 2 x radius): skip a candidate "
                    "near an already chosen row of the same document"
                )
    if np.any(np.diff(values[got]) > 0):
        return "order the examples by activation, largest first"
    return (
        "select_top is wrong on a case: walk the activations from the largest down (np.argsort(-values)), "
        "keep a candidate unless its row is within 2 x radius rows of a kept row of the same document, and "
        "stop after n"
    )


SELECT_TOP = Exercise(
    name="select_top",
    references=("helpers.analysis.features.select_top",),
    public=lambda: [_top_case(np.random.default_rng(s)) for s in (0, 1, 2)],
    hidden=lambda rng: [_top_case(rng) for _ in range(4)],
    answer=_top_answer,
    solve=_top_solve,
    judge=_top_judge,
    done="greedy, non-overlapping, best first on every public case",
)

# ----------------------------------------------------------------------------------------------
# label_words(top_tokens, all_tokens, k): the k words of a feature's top tokens with the largest lift
# (share among the top tokens / share in the corpus), seen at least twice, ties to the higher count then
# alphabetical; tokens compared after .strip().lower(), empty ones skipped

_WORDS_FORMAT = "return a list of words (strings), best first"
_STOP = ("the", ",", ".", "of", "and", "a", "to", "in", "is", "that", "for", "it")
_EMPTY = ("", " ", "\n", "\n\n", "  ")
_LETTERS = np.array(list("abcdefghijklmnopqrstuvwxyz"))


def _norm(t: str) -> str:
    return t.strip().lower()


def _new_words(rng: np.random.Generator, n: int, taken: set[str]) -> list[str]:
    out: list[str] = []
    while len(out) < n:
        w = "".join(rng.choice(_LETTERS, int(rng.integers(3, 9))))
        if w not in taken:
            taken.add(w)
            out.append(w)
    return out


def _surface(rng: np.random.Generator, w: str) -> str:
    """``w`` as a tokenizer may show it: half the time with a leading space, capitalised or shouted."""
    if rng.random() < 0.5:
        return w
    return (f" {w}", w.capitalize(), f" {w.capitalize()}", f"{w.upper()} ", f"{w}\n")[int(rng.integers(5))]


def _label_case(rng: np.random.Generator) -> Case:
    """A corpus over a random vocabulary and a feature's top tokens drawn from it. Stop words are the
    commonest top tokens but no more common there than anywhere (lift about 1); a few topic words are
    rare in the corpus but frequent in the top tokens; two topic words occur only in the top tokens,
    2 and 4 times (equal lifts: the count breaks the tie, against the alphabet), the one seen twice in two
    spellings; a few words occur once, only there (the largest lift, but noise); whitespace tokens are
    common there too. The counts of non-empty tokens are powers of two, so the usual float formulas of
    the lift give equal lifts where the fractions are equal (counts 2 and 4 tie in floats even over
    denominators that count the empty tokens)."""
    n_top = 2 ** int(rng.integers(7, 9))
    n_all = n_top * 2 ** int(rng.integers(3, 5))
    scale = n_top // 128
    taken = set(_STOP)
    top: list[str] = []  # surfaces
    rest: list[str] = []

    def put(w: str, c_top: int, c_rest: int) -> None:
        top.extend(_surface(rng, w) for _ in range(c_top))
        rest.extend(_surface(rng, w) for _ in range(c_rest))

    lo, hi = sorted(_new_words(rng, 2, taken))
    top.extend([lo, f" {lo.capitalize()}"])  # seen twice, in two spellings; only in the top tokens
    put(hi, 4, 0)
    for w in _new_words(rng, int(rng.integers(4, 7)), taken):
        put(w, int(rng.integers(2, 7)), int(rng.integers(1, 6)))
    for w in _new_words(rng, int(rng.integers(2, 4)), taken):
        put(w, 1, 0)
    ratio = n_all // n_top
    for w in rng.choice(_STOP, int(rng.integers(5, 8)), replace=False):
        c = int(rng.integers(4, 10)) * scale
        put(str(w), c, max(0, round(c * ratio * rng.uniform(0.8, 1.6)) - c))
    filler = _new_words(rng, int(rng.integers(40, 80)), taken)
    p = 1.0 / np.arange(1, len(filler) + 1)
    p /= p.sum()
    top.extend(_surface(rng, str(w)) for w in rng.choice(filler, n_top - len(top), p=p))
    rest.extend(_surface(rng, str(w)) for w in rng.choice(filler, n_all - n_top - len(rest), p=p))
    empties_top = [str(e) for e in rng.choice(_EMPTY, int(rng.integers(6, 11)))]
    empties_rest = [str(e) for e in rng.choice(_EMPTY, int(rng.integers(0, 5)))]
    top += empties_top
    everything = top + rest + empties_rest
    top_tokens = [top[i] for i in rng.permutation(len(top))]
    all_tokens = [everything[i] for i in rng.permutation(len(everything))]
    return arrays(
        top_tokens=np.array(top_tokens, dtype=str),
        all_tokens=np.array(all_tokens, dtype=str),
        k=int(rng.integers(3, 7)),
    )


def _hand_case() -> Case:
    """A small readable case: 'solar' and 'panels' lead; 'the' and ',' are frequent everywhere; 'sun' is
    seen once; 16 non-empty top tokens among 64 in all."""
    top = [" solar", "Solar", " solar", " panels", " panels", " the", "the", " The", " the", ",", ",", ","]
    top += [" energy", "Energy", " sun", " of", "\n", "\n"]
    rest = [" the"] * 8 + ["The"] * 4 + [","] * 10 + [" of"] * 8 + [" and"] * 8 + [" Solar"]
    rest += [" energy"] * 3 + [" wind"] * 2 + [" a"] * 4 + ["\n"]
    everything = top + rest
    order = np.random.default_rng(4).permutation(len(everything))
    return arrays(
        top_tokens=np.array(top, dtype=str),
        all_tokens=np.array([everything[i] for i in order], dtype=str),
        k=3,
    )


def _label_args(case: Case) -> tuple[list[str], list[str], int]:
    return [str(t) for t in case["top_tokens"]], [str(t) for t in case["all_tokens"]], int(case["k"])


def _label_answer(args: tuple, case: Case) -> Case:
    top, everything, k = _label_args(case)
    got = args[0](top, everything, k)
    if isinstance(got, str):
        raise CheckFailed(_WORDS_FORMAT)
    try:
        words = list(got)
    except TypeError as err:
        raise CheckFailed(_WORDS_FORMAT) from err
    if not all(isinstance(w, str) for w in words):
        raise CheckFailed(_WORDS_FORMAT + ", not (word, score) pairs or numbers")
    return arrays(words=np.array(words, dtype=str))


def _label_solve(case: Case) -> Case:
    return arrays(words=np.array(labels.label_words(*_label_args(case)), dtype=str))


def _ranking(
    case: Case,
    norm: Callable[[str], str] = _norm,
    score: str = "lift",
    min_count: int = 2,
    keep_empty: bool = False,
    tie: str = "count",
    denominators: str = "words",
) -> list[str]:
    """The ranking with one rule changed (the likely mistakes), lifts as floats: ``score`` "lift",
    "lift*" (count x n_all / (n_top x count_all), one rounding), "count", "inverse", "difference";
    ``tie`` "count" (the rule) or "alpha" (count ignored); ``denominators``
    "words" (non-empty tokens) or "tokens" (every token, empty ones too)."""
    top_raw, all_raw, k = _label_args(case)
    top = Counter(w for w in map(norm, top_raw) if keep_empty or w)
    base = Counter(w for w in map(norm, all_raw) if keep_empty or w)
    n_top = sum(top.values()) if denominators == "words" else len(top_raw)
    n_all = sum(base.values()) if denominators == "words" else len(all_raw)
    value = {}
    for w, c in top.items():
        if c < min_count:
            continue
        b = max(base[w], 1)
        value[w] = {
            "lift": (c / n_top) / (b / n_all),
            "lift*": c * n_all / (n_top * b),
            "count": float(c),
            "inverse": (b / n_all) / (c / n_top),
            "difference": c / n_top - b / n_all,
        }[score]
    second = {"count": lambda w: -top[w], "alpha": lambda w: 0}[tie]
    return sorted(value, key=lambda w: (-value[w], second(w), w))[:k]


def _words(out: Case) -> list[str] | None:
    try:
        w = np.asarray(out["words"])
        if w.ndim != 1 or (w.size and w.dtype.kind != "U"):
            return None
        return [str(x) for x in w]
    except (KeyError, TypeError, ValueError):
        return None


def _label_judge(case: Case, out: Case) -> str | None:
    got = _words(out)
    if got is None:
        return _WORDS_FORMAT
    want = _words(_label_solve(case))
    if got == want:
        return None
    # the rule computed with float lifts (either formula, shares over the non-empty tokens or over every
    # token): right too, even where float rounding orders two equal lifts differently
    if any(
        got == _ranking(case, score=s, denominators=d) for s in ("lift", "lift*") for d in ("words", "tokens")
    ):
        return None
    if got != [_norm(w) for w in got] and [_norm(w) for w in got] == want:
        return "return the words as you compared them, after .strip().lower()"
    for variant, hint in (
        (
            _ranking(case, score="count"),
            "ranked by how often a word appears among the top tokens: stop words ('the', ',') are frequent "
            "everywhere and win; rank by lift over the base rate, the share among top_tokens divided by the "
            "share among all_tokens",
        ),
        (
            _ranking(case, score="inverse"),
            "the lift is upside down: the share among top_tokens divided by the share among all_tokens",
        ),
        (
            _ranking(case, score="difference"),
            "the lift is a ratio, not a difference: divide the share among top_tokens by the share among "
            "all_tokens",
        ),
        (
            _ranking(case, min_count=1),
            "a word seen once among the top tokens has a huge lift but is noise: keep only words seen at "
            "least twice (min_count = 2)",
        ),
        (
            _ranking(case, min_count=3),
            "min_count = 2 keeps words seen at least twice: count >= 2, not count > 2",
        ),
        (
            _ranking(case, norm=lambda t: t),
            "compare tokens after .strip().lower(): ' Solar', 'solar' and 'SOLAR ' are one word (count them "
            "together, in top_tokens and in all_tokens)",
        ),
        (
            _ranking(case, norm=str.lower),
            "strip the tokens too (.strip().lower()): ' solar' and 'solar' are one word",
        ),
        (
            _ranking(case, norm=str.strip),
            "lower-case the tokens too (.strip().lower()): 'Solar' and 'solar' are one word",
        ),
        (
            _ranking(case, keep_empty=True),
            "skip empty tokens: whitespace tokens (' ', '\\n') strip to '', which is not a word",
        ),
        (
            _ranking(case, tie="alpha"),
            "equal lifts go to the word seen more often among top_tokens first, then alphabetically",
        ),
    ):
        if got == variant != want:
            return hint
    k = int(case["k"])
    if len(got) != len(want):
        return f"return k = {k} words, best first (fewer only when fewer words are seen twice)"
    return (
        "label_words is wrong on a case: normalise every token (.strip().lower(), skip empty ones), count "
        "each word among top_tokens and among all_tokens, keep the words seen at least twice among "
        "top_tokens, rank them by lift = (count in top / top total) / (count in all / all total), ties by "
        "the higher count in top_tokens then alphabetically, and return the first k"
    )


LABEL_WORDS = Exercise(
    name="label_words",
    references=("helpers.analysis.labels.label_words",),
    public=lambda: [
        _hand_case(),
        _label_case(np.random.default_rng(1)),
        _label_case(np.random.default_rng(2)),
    ],
    hidden=lambda rng: [_label_case(rng) for _ in range(4)],
    answer=_label_answer,
    solve=_label_solve,
    judge=_label_judge,
    done="words ranked by lift, seen at least twice, on every public case",
)

EXERCISES = (SELECT_TOP, LABEL_WORDS)
check_select_top = make_check(SELECT_TOP)
check_label_words = make_check(LABEL_WORDS)
