import re

import numpy as np
import pytest

from helpers.exercises import sparse_probing as ex
from helpers.exercises.common import CheckFailed, run_answer
from tests.unit.exercises.support import first_hint, hidden

EX = ex.CHOOSE_COLUMNS


def my_choose_columns(X_train, y_train, k):  # the notebook's solution
    y = np.asarray(y_train, bool)
    a, b = X_train[y], X_train[~y]
    pooled = np.sqrt((a.var(0) * len(a) + b.var(0) * len(b)) / (len(y) - 2))
    score = np.where(pooled > 0, np.abs(a.mean(0) - b.mean(0)) / np.where(pooled > 0, pooled, 1), 0.0)
    return np.argsort(-score, kind="stable")[:k]


def welch_t(X_train, y_train, k):  # another sensible criterion
    y = np.asarray(y_train, bool)
    a, b = X_train[y], X_train[~y]
    se = np.sqrt(a.var(0, ddof=1) / len(a) + b.var(0, ddof=1) / len(b))
    t = np.abs(a.mean(0) - b.mean(0)) / np.where(se > 0, se, np.inf)
    return np.argsort(-t)[:k]


def univariate_auroc(X_train, y_train, k):  # rank-based: how far each column's AUROC is from 0.5
    from sklearn.metrics import roc_auc_score

    y = np.asarray(y_train, bool)
    score = np.array([abs(roc_auc_score(y, col) - 0.5) for col in X_train.T])
    return np.argsort(-score)[:k]


def overall_sd(X_train, y_train, k):  # divides by the sd over all rows, not within classes: fine too
    y = np.asarray(y_train, bool)
    sd = X_train.std(0)
    diff = np.abs(X_train[y].mean(0) - X_train[~y].mean(0))
    return np.argsort(-np.where(sd > 0, diff / np.where(sd > 0, sd, 1), 0.0))[:k]


def raw_difference(X_train, y_train, k):
    y = np.asarray(y_train, bool)
    return np.argsort(-np.abs(X_train[y].mean(0) - X_train[~y].mean(0)))[:k]


def signed(X_train, y_train, k):
    y = np.asarray(y_train, bool)
    sd = np.sqrt((X_train[y].var(0) + X_train[~y].var(0)) / 2)
    z = np.where(sd > 0, (X_train[y].mean(0) - X_train[~y].mean(0)) / np.where(sd > 0, sd, 1), -np.inf)
    return np.argsort(-z)[:k]


def nan_first(X_train, y_train, k):
    y = np.asarray(y_train, bool)
    a, b = X_train[y], X_train[~y]
    pooled = np.sqrt((a.var(0) * len(a) + b.var(0) * len(b)) / (len(y) - 2))
    with np.errstate(divide="ignore", invalid="ignore"):
        score = np.abs(a.mean(0) - b.mean(0)) / pooled
    return np.argsort(score)[::-1][:k]


def smallest(X_train, y_train, k):
    return my_choose_columns(X_train, y_train, X_train.shape[1])[::-1][:k]


def threshold(X_train, y_train, k):
    cols = my_choose_columns(X_train, y_train, k)
    return cols[: max(1, min(k, 2))]  # the two clearly informative ones only


def repeated(X_train, y_train, k):
    best = my_choose_columns(X_train, y_train, 1)
    return np.repeat(best, k)


CASES = EX.public() + hidden(EX, range(8))


def test_solution_passes(capsys):
    ex.check_choose_columns(my_choose_columns)
    assert capsys.readouterr().out.startswith("PASSED choose_columns:")


@pytest.mark.parametrize(
    "fn", [my_choose_columns, welch_t, univariate_auroc, overall_sd], ids=lambda f: f.__name__
)
def test_sensible_criteria_pass_every_case(fn):
    for case in CASES:
        assert EX.judge(case, EX.solve(case)) is None
        assert EX.judge(case, run_answer(EX, (fn,), case)) is None, fn.__name__


@pytest.mark.parametrize(
    "fn,trap,hint,public_hint",
    [
        (raw_difference, "variance", "raw mean difference favours high-variance columns", "high-variance"),
        (signed, "sign", "kept the sign", "kept the sign"),
        (nan_first, "constant", "NaN first", "NaN first"),
        (smallest, "extra", "k smallest", "keep the k largest"),
        (threshold, "extra", "exactly k columns, even when fewer", "exactly k columns"),
        (repeated, "variance", "repeat an index", "repeat an index"),
    ],
    ids=lambda v: getattr(v, "__name__", str(v))[:12],
)
def test_each_mistake_fails_its_case_with_its_hint(fn, trap, hint, public_hint):
    """Every case of the trap it was built for (public and hidden over 8 seeds) catches the mistake."""
    trapped = [ex._case(np.random.default_rng(s), trap) for s in range(12)]
    for case in trapped:
        got = EX.judge(case, run_answer(EX, (fn,), case))
        assert got and hint in got, (fn.__name__, got)
    assert public_hint in (first_hint(EX, fn, EX.public()) or "")  # the self-check names it too


def test_bad_outputs_one_line_hints():
    case = EX.public()[0]
    k, d = int(case["k"]), case["X_train"].shape[1]
    for cols, hint in [
        (np.arange(k) + 0.5, "whole numbers"),
        (np.arange(k + 1), "no more than k"),
        (np.arange(k - 1), "exactly k columns"),
        (np.arange(k) + d, "run from 0"),
        (np.arange(k) - 1, "run from 0"),
        (np.array(["a"] * k), "whole numbers"),
    ]:
        got = EX.judge(case, {"columns": cols})
        assert got and hint in got and "\n" not in got


def test_hints_hold_no_numbers_and_the_reference_is_blocked():
    for fn in (raw_difference, signed, nan_first, smallest):
        for case in CASES:
            got = EX.judge(case, run_answer(EX, (fn,), case))
            assert got is None or not re.search(r"\d\.\d", got)

    def lazy(X_train, y_train, k):
        from helpers.analysis.probing import choose_columns

        return choose_columns(X_train, y_train, k)

    with pytest.raises(CheckFailed, match="write the computation yourself"):
        ex.check_choose_columns(lazy)


def test_cases_vary_and_traps_hold():
    a, b = EX.hidden(np.random.default_rng(1)), EX.hidden(np.random.default_rng(2))
    assert any(x["X_train"].shape != y["X_train"].shape for x, y in zip(a, b, strict=True))
    for case in CASES:
        X = case["X_train"]
        assert (X.std(0) == 0).any()  # every case holds constant columns
        assert case["y_train"].any() and (~case["y_train"]).any()
        assert set(case) == {"X_train", "y_train", "X_test", "y_test", "k"}
