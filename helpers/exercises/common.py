"""What every graded check shares: the failure type, the success line, calling the student's code."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


class CheckFailed(AssertionError):
    """A graded check found a wrong answer; the message says what is likely wrong."""


def passed(name: str, detail: str) -> None:
    print(f"PASSED {name}: {detail}")


def call(fn: Callable, *args):
    try:
        return fn(*args)
    except NotImplementedError as err:
        raise CheckFailed("not answered yet: replace `raise NotImplementedError()` with your code") from err


def close(a, b, rtol: float = 1e-4) -> bool:
    try:
        return bool(
            np.allclose(
                np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64), rtol=rtol, atol=1e-8
            )
        )
    except (TypeError, ValueError):
        return False
