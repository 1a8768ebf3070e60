"""Every graded exercise, whatever its notebook: >= 3 fixed public cases, fresh hidden cases per seed,
the reference's own outputs judged right, another case's outputs judged wrong (a lookup table cannot
pass), and hints that carry no expected value."""

from __future__ import annotations

import importlib
import pkgutil

import numpy as np
import pytest

import helpers.exercises
from helpers.exercises.common import ERROR, Exercise, judge_all


def _all() -> list[Exercise]:
    found = []
    for info in pkgutil.iter_modules(helpers.exercises.__path__, "helpers.exercises."):
        found += list(getattr(importlib.import_module(info.name), "EXERCISES", ()))
    return found


EXERCISES = [ex for ex in _all() if ex.name != "diagnosis"]  # judged against a secret: its own tests


def test_the_exercises_are_found():
    assert len(EXERCISES) >= 13


@pytest.mark.parametrize("ex", EXERCISES, ids=lambda e: e.name)
def test_public_and_hidden_cases(ex):
    public = ex.public()
    assert len(public) >= 3
    a, b = ex.hidden(np.random.default_rng(1)), ex.hidden(np.random.default_rng(2))
    assert len(a) >= 3 and len(b) >= 3
    assert any(
        set(x) != set(y) or any(not np.array_equal(x[k], y[k]) for k in x) for x, y in zip(a, b, strict=False)
    )
    for case in public + a:
        assert all(v.dtype != object for v in case.values())
        assert ex.judge(case, ex.solve(case)) is None


@pytest.mark.parametrize("ex", EXERCISES, ids=lambda e: e.name)
def test_outputs_of_other_cases_fail_and_hints_hold_no_answer(ex):
    cases = ex.hidden(np.random.default_rng(3))
    # a lookup table of the public answers: each hidden case answered with some public case's outputs
    public = [ex.solve(c) for c in ex.public()]
    assert judge_all(ex, cases, [public[i % len(public)] for i in range(len(cases))]) is not None
    assert judge_all(ex, cases, [{ERROR: np.asarray("ValueError: boom")}] * len(cases)) == "ValueError: boom"
    for case in cases:
        hint = ex.judge(case, {"nothing": np.asarray(0)})
        assert hint and "expected" not in hint.lower()
