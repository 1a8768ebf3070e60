"""The graded check of notebook 04's AUROC exercise: the reference passes, each mistake gets its hint."""

import numpy as np
import pytest
from scipy.stats import rankdata

from helpers.analysis import labels as autolabel
from helpers.exercises.common import CheckFailed
from helpers.exercises.neurons import CASES, EXPECTED, check_auroc


def reference(fires, score):
    ranks = rankdata(score)
    n_pos = fires.sum()
    n_neg = len(fires) - n_pos
    return (ranks[fires].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def test_constants_equal_the_reference_function():
    for (f, s), want in zip(CASES, EXPECTED, strict=True):
        assert autolabel._auroc(np.array(f, bool), np.array(s, float)) == pytest.approx(want, rel=1e-12)


def test_reference_passes(capsys):
    check_auroc(reference)
    assert capsys.readouterr().out.startswith("PASSED auroc:")


def test_unanswered():
    def todo(fires, score):
        raise NotImplementedError()

    with pytest.raises(CheckFailed, match="not answered"):
        check_auroc(todo)


def test_calling_the_helpers_reference_fails():
    with pytest.raises(CheckFailed, match="your own code"):
        check_auroc(lambda fires, score: autolabel._auroc(fires, score))
    with pytest.raises(CheckFailed, match="your own code"):
        check_auroc(lambda fires, score: autolabel.auroc_rows(fires[None], score[None].astype(int))[0])


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
}


@pytest.mark.parametrize("name", list(MISTAKES))
def test_each_mistake_gets_its_hint(name):
    wrong, hint = MISTAKES[name]
    with pytest.raises(CheckFailed, match=hint):
        check_auroc(wrong)


def test_a_non_number_is_refused():
    with pytest.raises(CheckFailed, match="one number"):
        check_auroc(lambda f, s: "high")
