"""Input guards shared by every layer: one line that says what is wrong and what to use instead.

One guard per kind of input, used by every public entry point:

- :func:`is_whole` — the one rule for whole numbers (16 and 16.0 yes; True, 16.5, "16" no), which
  every whole-number guard here and in the package applies;
- :func:`as_index` — an id into something of known size (a feature, a layer, a row): whole, 0..n-1,
  never negative (-1 would silently mean the last one);
- :func:`as_count` — a whole number with a lower bound (steps, batch sizes, k, n ...);
- :func:`as_finite` — a real number, finite, optionally within bounds (λ, learning rates, strengths);
- :func:`finite_array` — an array with no NaN or inf (activations, weights, metrics);
- :func:`field` — one entry of a JSON or CSV file, checked by one of the guards above, the file named;
- :func:`token_limit` — a text's length in tokens against a limit (the model's context, the memory).

Each raises ``ValueError`` with one line naming the input (and the file where there is one).
(Graded exercise checks are ``helpers.exercises.*.check_*``; guards here are ``as_*`` / ``validate_*``.)"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np


def is_whole(value: object) -> bool:
    """The one rule for whole numbers: ints and numpy integers, and integral finite floats such as 16.0;
    never bools (True is not layer 1), strings, None, NaN or fractions. Every guard below applies it."""
    if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Real):
        return False
    try:
        return math.isfinite(float(value)) and float(value).is_integer()
    except (OverflowError, ValueError):
        return False


def as_index(value: object, what: str, n: int, owner: str = "it") -> int:
    """``value`` as a plain int in ``0..n-1`` (numpy integers and integral floats such as 16.0
    accepted), else one ``ValueError`` line naming ``what``, its owner and the valid range.
    Negative indices are refused: -1 would silently mean the last one."""
    valid = f"{owner} has {what}s 0..{n - 1}"
    if not is_whole(value):
        raise ValueError(f"{what} {value!r} is not a whole number: {valid}")
    i = int(value)
    if not 0 <= i < n:
        raise ValueError(f"{what} {value!r} is out of range: {valid}")
    return i


def as_count(value: object, what: str, lo: int = 1, hi: int | None = None) -> int:
    """``value`` as a plain int ``>= lo`` (and ``<= hi``); integral floats such as 8.0 accepted, bools,
    strings, NaN and fractions refused in one line."""
    span = f">= {lo}" if hi is None else f"in {lo}..{hi}"
    if not is_whole(value) or int(value) < lo or (hi is not None and int(value) > hi):
        raise ValueError(f"{what} = {value!r} must be a whole number {span}")
    return int(value)


def as_finite(
    value: object, what: str, lo: float | None = None, hi: float | None = None, *, open_lo: bool = False
) -> float:
    """``value`` as a finite float (within ``[lo, hi]``; ``(lo, hi]`` with ``open_lo``); strings, None,
    bools, NaN and inf refused in one line."""
    if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Real):
        raise ValueError(f"{what} = {value!r} must be a number")
    x = float(value)
    low_bad = lo is not None and (x <= lo if open_lo else x < lo)
    if not math.isfinite(x) or low_bad or (hi is not None and x > hi):
        if lo is not None and hi is not None:
            bounds = f" in {'(' if open_lo else '['}{lo:g}, {hi:g}]"
        elif lo is not None:
            bounds = f" {'>' if open_lo else '>='} {lo:g}"
        else:
            bounds = "" if hi is None else f" <= {hi:g}"
        raise ValueError(f"{what} = {value!r} must be a finite number{bounds}")
    return x


def finite_array(a: Any, what: str, hint: str = "") -> None:
    """Refuse an array (numpy or torch) holding NaN or inf, in one line (``hint``: what to do)."""
    arr = a.detach().cpu().numpy() if hasattr(a, "detach") else np.asarray(a)
    if arr.dtype.kind in "fc" and not np.isfinite(arr).all():
        bad = int((~np.isfinite(arr)).sum())
        raise ValueError(f"{what} holds {bad:,} NaN or inf value(s){'; ' + hint if hint else ''}")


def field(data: dict, key: str, path: Path | str, guard: Callable[[object, str], Any]) -> Any:
    """``data[key]`` of the file ``path`` through ``guard(value, name)``; a missing key or a bad value
    is one line naming the file, the key and what to do."""
    name = f"{Path(path).name}: {key!r}"
    if not isinstance(data, dict) or key not in data:
        raise ValueError(f"{name} is missing; re-create the file (the notebook that writes it)")
    try:
        return guard(data[key], name)
    except ValueError as err:
        raise ValueError(f"{err}; fix or re-create {Path(path).name}") from None


def token_limit(n_tokens: int, limit: int, what: str = "the text") -> None:
    """Refuse a text longer than ``limit`` tokens (the model's context, or what fits in memory)."""
    if n_tokens > limit:
        raise ValueError(f"{what} is {n_tokens:,} tokens long; the limit is {limit:,}: shorten it")


def context_length(model: object) -> int | None:
    """The most tokens ``model`` takes in one sequence, read from its config (``max_position_embeddings``
    for llama and GPT-NeoX, ``n_positions`` / ``n_ctx`` for GPT-2 ...), or None when it names none."""
    cfg = getattr(model, "config", None)
    for key in ("max_position_embeddings", "n_positions", "n_ctx", "max_sequence_length", "seq_length"):
        n = getattr(cfg, key, None)
        if is_whole(n) and n > 0:
            return int(n)
    return None


def as_indices(values: object, what: str, n: int, owner: str = "it") -> np.ndarray:
    """:func:`as_index` for a whole array at once (vectorised: no Python loop over the ids): the ids as
    an int64 array in ``0..n-1``, else the first bad one refused in :func:`as_index`'s one line."""
    arr = np.asarray(values)
    if arr.dtype.kind in "iu":
        ok = (arr >= 0) & (arr < n)
    elif arr.dtype.kind == "f":
        with np.errstate(invalid="ignore"):
            ok = np.isfinite(arr) & (arr == np.round(arr)) & (arr >= 0) & (arr < n)
    else:  # strings, objects, bools: refuse the first one that is not a whole number in range
        for v in arr.ravel():
            as_index(v.item() if isinstance(v, np.generic) else v, what, n, owner)
        ok = np.ones(arr.shape, bool)
    if not ok.all():
        bad = arr.ravel()[int(np.flatnonzero(~ok.ravel())[0])]
        as_index(bad.item(), what, n, owner)
    return arr.astype(np.int64, copy=False)


def id_column(values: object, what: str, path: Path | str, n: int | None = None) -> np.ndarray:
    """A file's column of ids, one per row (the header on line 1, so value i is on row i + 2): each a
    whole number in ``0..n-1`` (``0..2**31-1`` without ``n``) and none repeated, as an int64 array; else
    one ``ValueError`` line naming the file, the row and the value (777.5 would silently become 777,
    "three" raise a raw error, a repeated id let its last row win)."""
    hi = (n if n is not None else 2**31) - 1
    arr = np.asarray(values)
    nums = np.full(arr.shape, np.nan)
    if arr.dtype.kind in "iuf":
        nums = arr.astype(float)
    elif arr.dtype.kind != "b":  # numbers as text (a column pandas left as strings) or objects
        for i, v in enumerate(arr.ravel()):
            if isinstance(v, str):
                try:
                    nums[i] = float(v)
                except ValueError:
                    pass
            elif isinstance(v, numbers.Real) and not isinstance(v, bool | np.bool_):
                nums[i] = float(v)
    with np.errstate(invalid="ignore"):
        bad = ~(np.isfinite(nums) & (nums == np.round(nums)) & (nums >= 0) & (nums <= hi))
    name = Path(path).name
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        v = arr[i].item() if isinstance(arr[i], np.generic) else arr[i]
        as_count(v, f"{name} row {i + 2}: {what}", 0, hi)
        raise ValueError(f"{name} row {i + 2}: {what} = {v!r} must be a whole number in 0..{hi}")
    ids = nums.astype(np.int64)
    _, first, counts = np.unique(ids, return_index=True, return_counts=True)
    if (counts > 1).any():
        dup = np.sort(ids[first[counts > 1]])
        row = int(np.flatnonzero(ids == dup[0])[1]) + 2
        shown = ", ".join(map(str, dup[:5])) + (", ..." if len(dup) > 5 else "")
        raise ValueError(
            f"{name} repeats {what}(s) [{shown}] (row {row} is a second {dup[0]}); each must be unique"
        )
    return ids
