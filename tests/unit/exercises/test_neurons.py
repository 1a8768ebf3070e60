"""Notebook 04's AUROC exercise: the notebook's solution passes, the reference judges itself right, each
mistake gets its hint, calling the reference fails, a lookup table of the public answers fails the hidden
cases, and no hint gives the answer away."""

import numpy as np
import pytest
from scipy.stats import rankdata

from helpers.analysis import labels as autolabel
from helpers.exercises import neurons as ex
from helpers.exercises.common import CheckFailed, judge_all, run_answer
from helpers.exercises.neurons import check_auroc

EX = ex.AUROC


def reference(fires, score):  # the notebook's solution
    ranks = rankdata(score)
    n_pos = int(fires.sum())
    n_neg = len(fires) - n_pos
    return (ranks[fires].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def hidden_cases(seeds=range(6)):
    return [c for s in seeds for c in EX.hidden(np.random.default_rng(1000 + s))]


def test_reference_passes(capsys):
    check_auroc(reference)
    assert capsys.readouterr().out.startswith("PASSED auroc:")


def test_reference_and_solution_are_right_on_every_case():
    for case in EX.public() + hidden_cases():
        assert EX.judge(case, EX.solve(case)) is None
        assert EX.judge(case, run_answer(EX, (reference,), case)) is None


def test_public_cases_keep_the_old_values():
    """The public cases are the fixed ones the notebook always used (distinct, tied, 0/1 scores)."""
    want = (0.8571428571428571, 0.8, 0.6888888888888889)
    for case, value in zip(EX.public(), want, strict=True):
        assert float(EX.solve(case)["value"]) == pytest.approx(value, rel=1e-12)


def test_hidden_cases_hold_ties_and_both_classes():
    cases = EX.hidden(np.random.default_rng(3))
    assert any(len(np.unique(c["score"])) == 2 for c in cases)  # a 0/1 detector
    assert any(len(np.unique(c["score"])) < len(c["score"]) for c in cases)
    for c in cases:
        assert 3 <= c["fires"].sum() <= len(c["fires"]) - 3


def test_unanswered():
    def todo(fires, score):
        raise NotImplementedError()

    with pytest.raises(CheckFailed, match="not answered"):
        check_auroc(todo)


def test_calling_the_helpers_reference_fails():
    with pytest.raises(CheckFailed, match="asks for your own code"):
        check_auroc(lambda fires, score: autolabel._auroc(fires, score))
    with pytest.raises(CheckFailed, match="asks for your own code"):
        check_auroc(lambda fires, score: autolabel.auroc_rows(fires[None], score[None].astype(int))[0])
    assert autolabel._auroc(np.array([True, False]), np.array([1.0, 0.0])) == 1.0  # restored


def _ordinal(score):
    r = np.empty(len(score))
    r[np.argsort(score, kind="stable")] = np.arange(1, len(score) + 1)
    return r


MISTAKES = {
    "swapped": (lambda f, s: reference(~f, s), "swapped"),
    "no subtraction": (lambda f, s: rankdata(s)[f].sum() / (f.sum() * (~f).sum()), "subtract n_pos"),
    "zero-based ranks": (
        lambda f, s: ((rankdata(s) - 1)[f].sum() - f.sum() * (f.sum() + 1) / 2) / (f.sum() * (~f).sum()),
        "ranks start at 1",
    ),
    "not normalised": (lambda f, s: rankdata(s)[f].sum() - f.sum() * (f.sum() + 1) / 2, "n_pos \\* n_neg"),
    "divided by n": (
        lambda f, s: (rankdata(s)[f].sum() - f.sum() * (f.sum() + 1) / 2) / (f.sum() * len(f)),
        "not by n_pos \\* n",
    ),
    "no tie handling": (
        lambda f, s: (_ordinal(s)[f].sum() - f.sum() * (f.sum() + 1) / 2) / (f.sum() * (~f).sum()),
        "tie",
    ),
    "ties as losses": (lambda f, s: float((s[f][:, None] > s[~f][None, :]).mean()), "ties counted as losses"),
    "ties as wins": (lambda f, s: float((s[f][:, None] >= s[~f][None, :]).mean()), "ties counted as wins"),
    "min ranks": (
        lambda f, s: (rankdata(s, "min")[f].sum() - f.sum() * (f.sum() + 1) / 2) / (f.sum() * (~f).sum()),
        "tie",
    ),
    "constant": (lambda f, s: 0.123, "rank every score"),
}


@pytest.mark.parametrize("name", list(MISTAKES))
def test_each_mistake_gets_its_hint(name):
    wrong, hint = MISTAKES[name]
    with pytest.raises(CheckFailed, match=hint) as err:
        check_auroc(wrong)
    for case in EX.public():
        want = float(EX.solve(case)["value"])
        assert f"{want:.4f}" not in str(err.value) and f"{want:.3f}" not in str(err.value)


@pytest.mark.parametrize("name", ["swapped", "no tie handling", "ties as losses", "min ranks"])
def test_mistakes_fail_the_hidden_cases(name):
    wrong, _ = MISTAKES[name]
    for seed in range(5):
        cases = EX.hidden(np.random.default_rng(seed))
        outputs = [run_answer(EX, (wrong,), c) for c in cases]
        assert judge_all(EX, cases, outputs) is not None


def test_a_wrong_answer_on_tied_scores_only_gets_the_tie_hint():
    def tie_blind(f, s):  # right without ties, a made-up value with them
        return reference(f, s) if len(np.unique(s)) == len(s) else 0.51

    with pytest.raises(CheckFailed, match="tied scores"):
        check_auroc(tie_blind)


def test_a_non_number_is_refused():
    with pytest.raises(CheckFailed, match="one number"):
        check_auroc(lambda f, s: "high")
    with pytest.raises(CheckFailed, match="one number"):
        check_auroc(lambda f, s: np.array([0.5, 0.5]))


def test_judge_survives_malformed_outputs():
    case = EX.public()[0]
    for out in ({}, {"value": np.array("x")}, {"value": np.array([np.nan])}, {"value": np.zeros(3)}):
        assert isinstance(EX.judge(case, out), str)


def test_lookup_table_fails_the_hidden_cases():
    def key(fires, score):
        return len(fires), int(fires.sum()), len(np.unique(score))

    table = {key(c["fires"], c["score"]): float(EX.solve(c)["value"]) for c in EX.public()}

    def lookup(fires, score):
        return table.get(key(fires, score), 0.5)

    check_auroc(lookup)
    cases = EX.hidden(np.random.default_rng(12345))
    outputs = [run_answer(EX, (lookup,), c) for c in cases]
    assert judge_all(EX, cases, outputs) is not None


def test_module_exports():
    assert ex.EXERCISES == (EX,)
    assert not hasattr(ex, "EXPECTED") and not hasattr(ex, "CASES")
