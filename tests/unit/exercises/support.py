"""What the exercise tests share: hidden cases over a few seeds, and the first hint an answer gets."""

from __future__ import annotations

import numpy as np

from helpers.exercises.common import CheckFailed, Exercise, run_answer

SEEDS = (11, 12, 13)


def hidden(exercise: Exercise, seeds=SEEDS) -> list:
    return [c for s in seeds for c in exercise.hidden(np.random.default_rng(s))]


def first_hint(exercise: Exercise, fn, cases) -> str | None:
    """The hint of the first case ``fn`` gets wrong (the self-check's CheckFailed included)."""
    for case in cases:
        try:
            hint = exercise.judge(case, run_answer(exercise, (fn,), case))
        except CheckFailed as err:
            return str(err)
        if hint:
            return hint
    return None
