"""The pick_intruder exercise: graded by outcome, the reference passes every set, and the usual mistakes
fail with a hint that names them."""

import numpy as np
import pytest

from helpers.analysis.intruder import odd_one_out
from helpers.exercises import intruder as ex
from helpers.exercises.common import CheckFailed, run_answer
from tests.unit.exercises.support import first_hint
from tests.unit.exercises.support import hidden as _hidden

EX = ex.PICK_INTRUDER


def similarity(contexts, peaks, weights=(1.0, 0.5, 0.1)):
    """Each context's summed cosine to the others, tokens weighted by distance to the peak."""
    vocab = {t: j for j, t in enumerate(np.unique(np.concatenate(contexts)))}
    bags = np.zeros((len(contexts), len(vocab)))
    for k, c in enumerate(contexts):
        d = np.abs(np.arange(len(c)) - int(peaks[k]))
        w = np.where(d == 0, weights[0], np.where(d <= 2, weights[1], weights[2]))
        np.add.at(bags[k], [vocab[t] for t in c], w)
    unit = bags / np.linalg.norm(bags, axis=1, keepdims=True)
    return (unit @ unit.T).sum(1)


def my_pick(contexts, peaks):  # the notebook's solution: bags weighted toward the peak, least alike
    return int(np.argmin(similarity(contexts, peaks)))


def test_the_solution_passes(capsys):
    ex.check_pick_intruder(my_pick)
    assert capsys.readouterr().out.startswith("PASSED pick_intruder:")


def test_the_reference_passes_public_and_hidden_sets_well_above_the_bar():
    for case in EX.public() + _hidden(EX, range(3)):
        assert EX.judge(case, EX.solve(case)) is None
        assert EX.judge(case, run_answer(EX, (my_pick,), case)) is None
        _, answers = ex.question_set(int(case["seed"]))
        assert (EX.solve(case)["picks"] == answers).mean() >= 0.75


def test_cases_hold_no_answers_and_the_set_is_drawn_again_from_its_seed():
    case, answers = ex.question_set(7)
    assert set(case) == {"seed", "tokens", "lengths", "peaks"}
    again, same = ex.question_set(7)
    assert all(np.array_equal(case[k], again[k]) for k in case) and np.array_equal(answers, same)
    assert np.bincount(answers, minlength=5).min() >= 2  # the intruder is shuffled to every position
    # padded with -1 past each context's length; peaks inside it
    lengths, tokens = case["lengths"], case["tokens"]
    assert ((tokens >= 0).sum(-1) == lengths).all() and (case["peaks"] < lengths).all()


@pytest.mark.parametrize(
    ("fn", "hint"),
    [
        (lambda c, p: 2, "same position every time"),
        (lambda c, p: int(np.argmin(similarity(c, p, (1.0, 1.0, 1.0)))), "you compare whole windows"),
        (lambda c, p: int(np.argmax(similarity(c, p))), "least"),
        (lambda c, p: int(np.argmax([len(x) for x in c])), "finds the intruder in"),
        (lambda c, p: 5, "positions run from 0"),
        (lambda c, p: "a", "one int per question"),
    ],
)
def test_the_usual_mistakes_fail_with_their_hint(fn, hint):
    got = first_hint(EX, fn, EX.public())
    assert got is not None and hint in got
    assert "expected" not in got.lower()


def test_calling_the_reference_is_blocked():
    with pytest.raises(CheckFailed, match="calls the reference"):
        ex.check_pick_intruder(lambda c, p: odd_one_out(c, p))
