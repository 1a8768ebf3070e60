"""Input guards shared by every layer: one line that says what is wrong and what to use instead.

One guard per kind of input, used by every public entry point:

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


def _is_whole(value: object) -> bool:
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
    if not _is_whole(value):
        raise ValueError(f"{what} {value!r} is not a whole number: {valid}")
    i = int(value)
    if not 0 <= i < n:
        raise ValueError(f"{what} {value!r} is out of range: {valid}")
    return i


def as_count(value: object, what: str, lo: int = 1, hi: int | None = None) -> int:
    """``value`` as a plain int ``>= lo`` (and ``<= hi``); integral floats such as 8.0 accepted, bools,
    strings, NaN and fractions refused in one line."""
    span = f">= {lo}" if hi is None else f"in {lo}..{hi}"
    if not _is_whole(value) or int(value) < lo or (hi is not None and int(value) > hi):
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
