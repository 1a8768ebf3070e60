"""Input guards shared by every layer: one line that says what is wrong and what to use instead.

(Graded exercise checks are ``helpers.exercises.*.check_*``; guards here are ``as_*`` / ``validate_*``.)"""

from __future__ import annotations

import numbers


def as_index(value: object, what: str, n: int, owner: str = "it") -> int:
    """``value`` as a plain int in ``0..n-1`` (numpy integers and integral floats such as 16.0
    accepted), else one ``ValueError`` line naming ``what``, its owner and the valid range.
    Negative indices are refused: -1 would silently mean the last one."""
    valid = f"{owner} has {what}s 0..{n - 1}"
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not float(value).is_integer():
        raise ValueError(f"{what} {value!r} is not a whole number: {valid}")
    i = int(value)
    if not 0 <= i < n:
        raise ValueError(f"{what} {value!r} is out of range: {valid}")
    return i
