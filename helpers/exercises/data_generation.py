"""Graded checks of Notebook 02 (data generation)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from helpers.exercises.common import CheckFailed, call, passed

TOP_WORDS = [
    ("power", 4),
    ("solar", 4),
    ("cheap", 3),
    ("people", 2),
]  # the expected answer on the texts below


def check_top_words(fn: Callable[[list[str], int], list[tuple[str, int]]]) -> None:
    """Exercise: the k most frequent words, lower-cased, stop-words removed."""
    from helpers.data import text_stats
    from helpers.data.text_stats import STOP_WORDS

    texts = [
        "The Solar panels on the roof make power; solar power is cheap.",
        "Power to the people: the people vote, and the vote counts.",
        "Cheap solar, cheap wind. Wind and solar are the future of power!",
    ]
    want = TOP_WORDS
    got = call(fn, texts, 4, forbidden=[text_stats.top_words])
    try:
        got_list = [(str(w), int(c)) for w, c in got]
    except (TypeError, ValueError) as err:
        raise CheckFailed(
            "return a list of (word, count) pairs, most frequent first, e.g. [('solar', 4), ...]"
        ) from err
    if got_list == want:
        passed("top_words", f"top 4 = {want}")
        return
    words_got = [w for w, _ in got_list]
    if any(w in STOP_WORDS for w in words_got):
        raise CheckFailed(
            f"{[w for w in words_got if w in STOP_WORDS]} are stop-words; drop every word in STOP_WORDS"
        )
    if any(w != w.lower() for w in words_got) or any(not w.isalpha() for w in words_got):
        raise CheckFailed(
            "lower-case the text and keep letters only, so 'Solar' and 'solar;' both count as 'solar' (use "
            "helpers.data.text_stats.words)"
        )
    if sorted(got_list, key=lambda kv: -kv[1]) != got_list:
        raise CheckFailed("sort by count, most frequent first")
    if len(got_list) != 4:
        raise CheckFailed(f"asked for k=4 words, got {len(got_list)}")
    raise CheckFailed(f"expected {want}, got {got_list}; ties are broken alphabetically")


def _store_case(kind: str) -> dict:
    rng = np.random.default_rng(0)
    lengths = [5, 7, 4]
    doc = np.repeat(np.arange(3), lengths).astype(np.int32)
    pos = np.concatenate([np.arange(1, n + 1) for n in lengths]).astype(np.int32)
    tok = rng.integers(3, 100, size=len(doc)).astype(np.int32)
    acts = rng.normal(size=(len(doc), 8)).astype(np.float32)
    if kind == "pad":
        tok[6] = 2
    elif kind == "shape":
        acts = acts[:-1]
    elif kind == "width":
        acts = rng.normal(size=(len(doc), 6)).astype(np.float32)
    elif kind == "nan":
        acts[3, 2] = np.nan
    elif kind == "gap":
        pos[8] += 3
    return {"acts": acts, "token_ids": tok, "doc_ids": doc, "positions": pos}


def check_validate_store(fn: Callable[[dict, int, int], None]) -> None:
    """Exercise: ``validate_store(arrays, d_model, pad_id)`` raises ``ValueError`` on a broken
    store and returns quietly on a good one."""
    mistakes = {
        "shape": "acts and token_ids must have the same number of rows",
        "width": "acts must be [n_tokens, d_model]; check acts.shape[1] == d_model",
        "pad": "a padding token (pad_id) leaked into token_ids; check (token_ids == pad_id).any()",
        "nan": "acts holds a NaN; check np.isfinite(acts).all()",
        "gap": "positions must count up by 1 inside each document; a gap means tokens went missing",
    }
    try:
        fn(_store_case("good"), 8, 2)
    except NotImplementedError as err:
        raise CheckFailed("not answered yet: replace `raise NotImplementedError()` with your code") from err
    except ValueError as err:
        raise CheckFailed(
            f"a valid store was rejected ({err}); positions start at 1 because the first token is dropped"
        ) from err
    for kind, hint in mistakes.items():
        try:
            fn(_store_case(kind), 8, 2)
        except ValueError:
            continue
        except Exception as err:  # noqa: BLE001 - the hint is the point
            raise CheckFailed(
                f"raise ValueError (not {type(err).__name__}) when {hint.split(';')[0]}"
            ) from err
        raise CheckFailed(f"a broken store passed: {hint}")
    passed("validate_store", f"accepts a valid store and rejects {len(mistakes)} broken ones")
