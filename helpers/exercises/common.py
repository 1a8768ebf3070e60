"""What every graded check shares: the failure type, the success line, calling the student's code.

A check compares the student's answer with values stored for its fixed inputs (never with a helpers
function called at check time, which the student could rebind), and runs the student's code with the
matching reference functions of ``helpers`` switched off: a submission that just calls them fails with
one line saying so, even through a name bound before the check ran.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import numpy as np

BLOCKED = "this exercise asks for your own code"


class CheckFailed(AssertionError):
    """A graded check found a wrong answer; the message says what is likely wrong."""


def passed(name: str, detail: str) -> None:
    print(f"PASSED {name}: {detail}")


def _stub(where: str):
    """A code object that raises, for a function without closure variables."""
    msg = f"{BLOCKED}: it calls the reference {where}; write the computation yourself"
    space: dict = {}
    exec(f"def blocked(*args, **kwargs):\n    raise AssertionError({msg!r})", space)  # noqa: S102
    return space["blocked"].__code__


@contextmanager
def blocked(functions: Sequence[Callable]) -> Iterator[None]:
    """Switch ``functions`` (the reference answers in ``helpers``) off while the student's code runs.

    The function objects themselves are changed (their code swapped, then restored), so a reference bound
    to another name before the check (``from helpers... import f as mine``) is switched off too."""
    saved = []
    try:
        for f in functions:
            target = inspect.unwrap(f)
            if target.__code__.co_freevars:
                raise TypeError(f"cannot block {target.__qualname__}: it is a closure")
            saved.append((target, target.__code__))
            target.__code__ = _stub(f"helpers function {target.__module__}.{target.__qualname__}")
        yield
    finally:
        for target, code in saved:
            target.__code__ = code


def call(fn: Callable, *args, forbidden: Sequence[Callable] = ()):
    """``fn(*args)`` with the ``forbidden`` reference functions switched off; a missing answer or a call
    to a forbidden function fails the check with one line."""
    try:
        with blocked(forbidden):
            return fn(*args)
    except NotImplementedError as err:
        raise CheckFailed("not answered yet: replace `raise NotImplementedError()` with your code") from err
    except AssertionError as err:
        if str(err).startswith(BLOCKED):
            raise CheckFailed(str(err)) from None
        raise


def close(a, b, rtol: float = 1e-4) -> bool:
    try:
        return bool(
            np.allclose(
                np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64), rtol=rtol, atol=1e-8
            )
        )
    except (TypeError, ValueError):
        return False
