"""Graded exercises of Notebook 02 (data generation): the most frequent words and the store's validation."""

from __future__ import annotations

import re
from collections import Counter

import numpy as np

from helpers.data import text_stats
from helpers.data.text_stats import STOP_WORDS, words
from helpers.exercises.common import BLOCKED, Case, CheckFailed, Exercise, arrays, make_check

# ----------------------------------------------------------------------------------------------
# top_words(texts, k): the k most frequent non-stop-words, ties broken alphabetically

_FORMAT = "return a list of (word, count) pairs, most frequent first, e.g. [('word', 3), ...]"
_HAND_TEXTS = (
    "The Solar panels on the roof make power; solar power is cheap.",
    "Power to the people: the people vote, and the vote counts.",
    "Cheap solar, cheap wind. Wind and solar are the future of power!",
)
_LETTERS = np.array(list("abcdefghijklmnopqrstuvwxyz"))
_CASED = re.compile(r"[A-Za-z]+(?:['-][A-Za-z]+)*")  # words as written, case kept
_PUNCT = ("", "", "", ",", ".", ";", ":", "!", "?")


def _new_word(rng: np.random.Generator) -> str:
    """A made-up word of a few letters, now and then hyphenated or with an inner apostrophe."""
    while True:
        word = "".join(rng.choice(_LETTERS, int(rng.integers(3, 8))))
        kind = rng.random()
        if kind < 0.15:
            word += "-" + "".join(rng.choice(_LETTERS, int(rng.integers(2, 6))))
        elif kind < 0.22:
            word += "'s"
        if word not in STOP_WORDS:
            return word


def _render(rng: np.random.Generator, word: str) -> str:
    """``word`` as it could stand in a sentence: capitalised or shouted now and then, with punctuation."""
    case = rng.random()
    shown = word.capitalize() if case < 0.25 else word.upper() if case < 0.35 else word
    lead = "(" if rng.random() < 0.05 else ""
    return lead + shown + str(rng.choice(_PUNCT)) + (")" if lead else "")


def _words_case(rng: np.random.Generator, all_words: bool = False) -> Case:
    """Texts over a random vocabulary: counts with ties (the k-th and next word tie, so the alphabetical
    tie-break decides), frequent stop-words, mixed case and punctuation; ``all_words``: k exceeds the
    number of distinct words."""
    vocab: list[str] = []
    size = int(rng.integers(6, 15))
    while len(vocab) < size:
        w = _new_word(rng)
        if w not in vocab:
            vocab.append(w)
    counts = rng.integers(1, 5, size=len(vocab))  # few levels: ties are certain
    ranked = sorted(zip(vocab, counts, strict=True), key=lambda wc: (-wc[1], wc[0]))
    tied = [i for i in range(1, len(ranked)) if ranked[i - 1][1] == ranked[i][1]]
    tied = [i for i in tied if i >= 3] or tied  # k of 3 or more where it can be
    k = len(vocab) + int(rng.integers(1, 4)) if all_words else int(rng.choice(tied))
    stops = rng.choice(sorted(STOP_WORDS), size=int(rng.integers(3, 7)), replace=False)
    tokens = [w for w, c in zip(vocab, counts, strict=True) for _ in range(int(c))]
    tokens += [str(s) for s in stops for _ in range(int(counts.max() + rng.integers(1, 4)))]
    tokens = [_render(rng, tokens[i]) for i in rng.permutation(len(tokens))]
    cuts = np.sort(rng.choice(np.arange(1, len(tokens)), size=int(rng.integers(1, 5)), replace=False))
    texts = [" ".join(part) for part in np.split(np.array(tokens), cuts)]
    return arrays(texts=np.array(texts, dtype=str), k=k)


def _ranked(counts: Counter, k: int) -> list[tuple[str, int]]:
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:k]


def _words_answer(args: tuple, case: Case) -> Case:
    got = args[0]([str(t) for t in case["texts"]], int(case["k"]))
    try:
        pairs = [(str(w), int(c)) for w, c in got]
    except (TypeError, ValueError) as err:
        raise CheckFailed(_FORMAT) from err
    return arrays(
        words=np.array([w for w, _ in pairs], dtype=str),
        counts=np.array([c for _, c in pairs], dtype=np.int64),
    )


def _words_solve(case: Case) -> Case:
    pairs = text_stats.top_words([str(t) for t in case["texts"]], int(case["k"]))
    return arrays(
        words=np.array([w for w, _ in pairs], dtype=str),
        counts=np.array([c for _, c in pairs], dtype=np.int64),
    )


def _pairs(out: Case) -> list[tuple[str, int]] | None:
    """The (word, count) pairs of an output, or None when they cannot be read."""
    try:
        w, c = np.asarray(out["words"]), np.asarray(out["counts"])
        if w.ndim != 1 or c.shape != w.shape or (w.size and w.dtype.kind != "U"):
            return None
        return [(str(a), int(b)) for a, b in zip(w, c, strict=True)]
    except (KeyError, TypeError, ValueError, OverflowError):
        return None


def _words_judge(case: Case, out: Case) -> str | None:
    got = _pairs(out)
    if got is None:
        return _FORMAT
    want = _pairs(_words_solve(case))
    if got == want:
        return None
    texts, k = [str(t) for t in case["texts"]], int(case["k"])
    got_words = [w for w, _ in got]
    stop = [w for w in got_words if w in STOP_WORDS]
    if stop:
        return f"{stop[:5]} are stop-words; drop every word in STOP_WORDS"
    if any(not text_stats._WORD.fullmatch(w) for w in got_words):
        return (
            "lower-case the text and keep letters only, so 'Word' and 'word;' both count as 'word' (use "
            "helpers.data.text_stats.words)"
        )
    true = Counter(w for t in texts for w in words(t) if w not in STOP_WORDS)
    letters_only = Counter(w for t in texts for w in re.findall(r"[a-z]+", t.lower()) if w not in STOP_WORDS)
    per_text = Counter(w for t in texts for w in set(words(t)) if w not in STOP_WORDS)
    for variant, hint in (
        (
            sorted(true.items(), key=lambda kv: (kv[1], kv[0]))[:k],
            "sort by count, most frequent first (descending)",
        ),
        (
            _ranked(letters_only, k),
            "split the text with helpers.data.text_stats.words: it keeps inner hyphens and apostrophes, "
            "so 'well-known' is one word",
        ),
        (
            _ranked(per_text, k),
            "count every occurrence of a word, not the number of texts it appears in",
        ),
    ):
        if got == variant != want:
            return hint
    if len(got) != len(want):
        return f"asked for the k = {k} most frequent words (all of them when there are fewer), got {len(got)}"
    if any(a[1] < b[1] for a, b in zip(got, got[1:], strict=False)):
        return "sort by count, most frequent first"
    if [c for _, c in got] == [c for _, c in want] and all(true.get(w) == c for w, c in got):
        return (
            "ties are broken alphabetically: sort the pairs by (-count, word); Counter.most_common keeps "
            "tied words in the order it first saw them"
        )
    as_written = Counter(w for t in texts for w in _CASED.findall(t))  # 'Solar' and 'solar' apart
    if all(as_written.get(w) == c for w, c in got):
        return (
            "lower-case the text before counting, so 'Word' and 'word' count as one word "
            "(helpers.data.text_stats.words does it)"
        )
    if any(true.get(w) != c for w, c in got):
        return "a count is off: count every occurrence over all texts, after lower-casing with words(text)"
    return (
        "top_words is wrong on a case: split each text with words(text), drop STOP_WORDS, count over all "
        "texts, sort by (-count, word) and keep the first k"
    )


TOP_WORDS = Exercise(
    name="top_words",
    references=("helpers.data.text_stats.top_words",),
    public=lambda: [
        arrays(texts=np.array(_HAND_TEXTS), k=4),
        _words_case(np.random.default_rng(1)),
        _words_case(np.random.default_rng(2)),
    ],
    hidden=lambda rng: [_words_case(rng) for _ in range(3)] + [_words_case(rng, all_words=True)],
    answer=_words_answer,
    solve=_words_solve,
    judge=_words_judge,
    done="the right words and counts, ties alphabetical, on every public case",
)

# ----------------------------------------------------------------------------------------------
# validate_store(arrays, d_model, pad_id): ValueError on a broken store, None on a good one

STORE_KEYS = ("acts", "token_ids", "doc_ids", "positions")
PROBLEMS = {  # what store_problem finds -> the hint when a student's check misses it
    "rows": "acts and token_ids must have the same number of rows (one per token); compare their lengths",
    "doc_rows": "doc_ids must have one entry per token too; compare len(doc_ids) with len(token_ids)",
    "pos_rows": "positions must have one entry per token too; compare len(positions) with len(token_ids)",
    "width": "acts must be [n_tokens, d_model]; check acts.shape[1] == d_model",
    "pad": "a padding token (pad_id) leaked into token_ids; check (token_ids == pad_id).any()",
    "nan": "acts holds a NaN; check np.isfinite(acts).all()",
    "inf": "acts holds an inf; np.isnan misses it, np.isfinite(acts).all() catches NaN and inf",
    "gap": "positions must count up by 1 inside each document; a gap means tokens went missing",
    "repeat": "positions must count up by exactly 1 inside each document; a repeated position (a duplicated "
    "token) breaks that too, so test diff != 1, not diff > 1",
}
# how a case is broken (several ways can end in the same problem: short token_ids -> "rows")
CORRUPTIONS = ("rows", "tokens", "doc_rows", "pos_rows", "width", "pad", "nan", "inf", "gap", "repeat")


def store_problem(arrays: dict, d_model: int, pad_id: int) -> str | None:
    """The first thing wrong with a store (a key of ``PROBLEMS``), or None for a good one."""
    acts, tok, doc, pos = (np.asarray(arrays[k]) for k in STORE_KEYS)
    n = len(tok)
    if acts.ndim != 2 or len(acts) != n:
        return "rows"
    if len(doc) != n:
        return "doc_rows"
    if len(pos) != n:
        return "pos_rows"
    if acts.shape[1] != d_model:
        return "width"
    if (tok == pad_id).any():
        return "pad"
    if np.isnan(acts).any():
        return "nan"
    if not np.isfinite(acts).all():
        return "inf"
    steps = np.diff(pos)[doc[1:] == doc[:-1]]
    if (steps > 1).any():
        return "gap"
    if (steps < 1).any():
        return "repeat"
    return None


def reference_validate_store(arrays: dict, d_model: int, pad_id: int) -> None:
    """The reference answer: ``ValueError`` naming the first problem of a broken store."""
    problem = store_problem(arrays, d_model, pad_id)
    if problem is not None:
        raise ValueError(PROBLEMS[problem].split(";")[0])


def _store_case(rng: np.random.Generator, kind: str) -> Case:
    """A store as notebook 02 writes it (first tokens dropped, so positions start at 1), broken by
    ``kind`` (one of ``CORRUPTIONS``) or left good (``"good"``)."""
    lengths = rng.integers(1, 9, size=int(rng.integers(2, 7)))
    lengths[int(rng.integers(len(lengths)))] = int(rng.integers(3, 9))  # room for a gap inside a document
    doc = np.repeat(np.sort(rng.choice(1000, size=len(lengths), replace=False)), lengths).astype(np.int32)
    pos = np.concatenate([np.arange(1, n + 1) for n in lengths]).astype(np.int32)
    pad_id = int(rng.choice([0, 1, 2, int(rng.integers(3, 50_000))]))
    tok = rng.integers(0, pad_id + 1000, size=len(doc))
    tok[tok == pad_id] = pad_id + 1  # ids next to pad_id are fine
    tok = tok.astype(np.int32)
    d_model = int(rng.integers(4, 17))
    acts = (rng.normal(size=(len(doc), d_model)) * rng.uniform(0.5, 20.0)).astype(np.float32)
    cut = int(rng.integers(1, 4))
    row = int(rng.integers(len(doc)))
    if kind == "rows":
        acts = acts[:-cut] if rng.random() < 0.5 else np.concatenate([acts, acts[:cut]])
    elif kind == "tokens":
        tok = tok[:-cut]
    elif kind == "doc_rows":
        doc = doc[:-cut]
    elif kind == "pos_rows":
        pos = pos[:-cut]
    elif kind == "width":
        acts = acts[:, : d_model - cut] if rng.random() < 0.5 else np.concatenate([acts, acts[:, :cut]], 1)
    elif kind == "pad":
        tok[row] = pad_id
    elif kind in ("nan", "inf"):
        acts[row, int(rng.integers(d_model))] = np.nan if kind == "nan" else rng.choice([np.inf, -np.inf])
    elif kind in ("gap", "repeat"):  # a token of a document dropped or written twice
        inner = np.flatnonzero((pos > 1) & (np.append(doc[1:], -1) == doc))  # neither first nor last
        i = int(rng.choice(inner))
        keep = np.delete(np.arange(len(doc)), i) if kind == "gap" else np.insert(np.arange(len(doc)), i, i)
        acts, tok, doc, pos = acts[keep], tok[keep], doc[keep], pos[keep]
    elif kind != "good":
        raise ValueError(f"unknown corruption {kind!r}")
    return arrays(acts=acts, token_ids=tok, doc_ids=doc, positions=pos, d_model=d_model, pad_id=pad_id)


def _store_arrays(case: Case) -> dict:
    return {k: case[k].copy() for k in STORE_KEYS}


def _store_answer(args: tuple, case: Case) -> Case:
    try:
        args[0](_store_arrays(case), int(case["d_model"]), int(case["pad_id"]))
    except NotImplementedError:
        raise
    except Exception as err:
        if isinstance(err, AssertionError) and str(err).startswith(BLOCKED):
            raise
        lines = str(err).strip().splitlines()
        kind = "ValueError" if isinstance(err, ValueError) else type(err).__name__
        return arrays(raised=True, error=kind, message=lines[0][:200] if lines else "")
    return arrays(raised=False, error="", message="")


def _store_solve(case: Case) -> Case:
    try:
        reference_validate_store(_store_arrays(case), int(case["d_model"]), int(case["pad_id"]))
    except ValueError as err:
        return arrays(raised=True, error="ValueError", message=str(err))
    return arrays(raised=False, error="", message="")


def _text(out: Case, key: str) -> str:
    try:
        return str(np.asarray(out[key]).reshape(-1)[0])[:120] if np.asarray(out[key]).size else ""
    except (KeyError, TypeError, ValueError):
        return ""


def _store_judge(case: Case, out: Case) -> str | None:
    try:
        raised = np.asarray(out["raised"])
        if raised.size != 1 or raised.dtype != bool:
            raise ValueError
        raised = bool(raised)
    except (KeyError, TypeError, ValueError):
        return "validate_store's outcome could not be read: raise ValueError or return None"
    error = _text(out, "error")
    want = bool(_store_solve(case)["raised"])
    if not want:
        if not raised:
            return None
        return (
            f"a valid store was rejected ({error}: {_text(out, 'message')}); positions start at 1 (the first "
            "token is dropped) and restart at each new document, so compare neighbours inside a document only"
        )
    hint = PROBLEMS[store_problem(_store_arrays(case), int(case["d_model"]), int(case["pad_id"])) or "rows"]
    if not raised:
        return f"a broken store passed: {hint}"
    if error != "ValueError":
        return f"raise ValueError (not {error}) when {hint.split(';')[0]}"
    return None


def _store_hidden(rng: np.random.Generator) -> list[Case]:
    kinds = ["good", "good", *CORRUPTIONS, *rng.choice(("good", *CORRUPTIONS), size=2)]
    return [_store_case(rng, str(kinds[i])) for i in rng.permutation(len(kinds))]


VALIDATE_STORE = Exercise(
    name="validate_store",
    references=(
        "helpers.exercises.data_generation.reference_validate_store",
        "helpers.exercises.data_generation.store_problem",
    ),
    public=lambda: [
        _store_case(np.random.default_rng(i), kind) for i, kind in enumerate(("good", *CORRUPTIONS))
    ],
    hidden=_store_hidden,
    answer=_store_answer,
    solve=_store_solve,
    judge=_store_judge,
    done="accepts a valid store and rejects every broken one",
)

EXERCISES = (TOP_WORDS, VALIDATE_STORE)
check_top_words = make_check(TOP_WORDS)
check_validate_store = make_check(VALIDATE_STORE)
