import re

import numpy as np
import pandas as pd
import pytest

from helpers.analysis import clustering as C
from helpers.exercises import clustering as ex
from helpers.exercises.common import (
    CheckFailed,
    answer_hidden,
    judge_all,
    read_cases,
    run_answer,
    write_cases,
)
from tests.unit.exercises.support import first_hint as _first_hint
from tests.unit.exercises.support import hidden as _hidden

# ----------------------------------------------------------------------------------------------
# purity


def my_purity(labels: np.ndarray, themes: np.ndarray) -> float:  # the notebook's solution
    table = pd.crosstab(labels, themes)
    return float(table.max(axis=1).sum() / len(labels))


def _table(labels, themes):
    return pd.crosstab(labels, themes)


def test_purity_solution_passes(capsys):
    ex.check_purity(my_purity)
    assert capsys.readouterr().out.startswith("PASSED purity:")


def test_purity_reference_judged_right_on_public_and_hidden():
    assert len(ex.PURITY.public()) >= 3
    for case in ex.PURITY.public() + _hidden(ex.PURITY, range(10)):
        assert ex.PURITY.judge(case, ex.PURITY.solve(case)) is None
        assert ex.PURITY.judge(case, run_answer(ex.PURITY, (my_purity,), case)) is None


def test_purity_cases_vary():
    hidden = _hidden(ex.PURITY)
    assert len({len(c["labels"]) for c in hidden}) > len(hidden) // 2
    assert any(
        set(np.unique(c["labels"]).tolist()) != set(range(len(np.unique(c["labels"])))) for c in hidden
    )
    assert all(c["themes"].dtype.kind == "U" for c in hidden)
    assert ex.PURITY.public()[0]["labels"].tolist() == [0, 0, 0, 1, 1, 1, 1, 2, 2, 2]


def test_purity_unanswered():
    def todo(labels, themes):
        raise NotImplementedError()

    with pytest.raises(CheckFailed, match="not answered yet"):
        ex.check_purity(todo)


def test_purity_reference_is_blocked():
    with pytest.raises(CheckFailed, match="asks for your own code"):
        ex.check_purity(lambda labels, themes: C.purity(labels, themes))
    ex.check_purity(my_purity)
    assert C.purity(np.array([0, 0, 1]), np.array(["a", "b", "b"])) == pytest.approx(2 / 3)


PURITY_MISTAKES = [
    (lambda lab, th: 1.0, "count documents, not clusters"),
    (
        lambda lab, th: float((_table(lab, th).max(axis=1) / _table(lab, th).sum(axis=1)).mean()),
        "mean of the clusters' purities",
    ),
    (lambda lab, th: float(_table(th, lab).max(axis=1).sum() / len(lab)), "rows and columns swapped"),
    (
        lambda lab, th: float(_table(lab, th).max(axis=1).sum() / len(np.unique(lab))),
        "not the number of clusters",
    ),
    (lambda lab, th: float(_table(lab, th).max(axis=1).sum()), "purity is a share"),
    (lambda lab, th: 1.0 - my_purity(lab, th), "impurity"),
    (lambda lab, th: 0.5, "purity is wrong on a case: cross-tabulate"),
]


@pytest.mark.parametrize(("wrong", "hint"), PURITY_MISTAKES)
def test_purity_mistakes_are_named(wrong, hint):
    with pytest.raises(CheckFailed, match=hint):
        ex.check_purity(wrong)
    assert hint in (_first_hint(ex.PURITY, wrong, _hidden(ex.PURITY)) or "")


def test_purity_hints_hold_no_expected_value():
    for case in ex.PURITY.public() + _hidden(ex.PURITY):
        want = float(ex.PURITY.solve(case)["value"])
        for wrong, _ in PURITY_MISTAKES:
            hint = ex.PURITY.judge(case, run_answer(ex.PURITY, (wrong,), case)) or ""
            assert not re.search(r"\d\.\d", hint), hint
            assert f"{want:.2f}" not in hint and f"{want:.3f}" not in hint


def test_purity_lookup_table_fails_hidden():
    table = {len(c["labels"]): float(ex.PURITY.solve(c)["value"]) for c in ex.PURITY.public()}

    def lookup(labels, themes):
        return table.get(len(labels), 0.5)

    ex.check_purity(lookup)
    cases = ex.PURITY.hidden(np.random.default_rng(2024))
    outputs = [run_answer(ex.PURITY, (lookup,), c) for c in cases]
    assert judge_all(ex.PURITY, cases, outputs) is not None


def test_purity_judge_survives_malformed_outputs():
    case = ex.PURITY.public()[0]
    for out in ({}, {"value": np.array([0.1, 0.2])}, {"value": np.array("x")}, {"value": np.array(np.nan)}):
        assert isinstance(ex.PURITY.judge(case, out), str)


def test_purity_hidden_round_trip(tmp_path):
    cases = ex.PURITY.hidden(np.random.default_rng(7))
    write_cases(tmp_path / "in.npz", cases)
    answer_hidden(ex.PURITY, (my_purity,), str(tmp_path / "in.npz"), str(tmp_path / "out.npz"))
    assert judge_all(ex.PURITY, cases, read_cases(tmp_path / "out.npz")) is None


# ----------------------------------------------------------------------------------------------
# lift_ranking


def my_lift_ranking(X: np.ndarray, labels: np.ndarray, c: int, n: int) -> np.ndarray:  # the notebook's
    inside = labels == c
    sd = X.std(0)
    lift = np.where(sd > 0, (X[inside].mean(0) - X[~inside].mean(0)) / np.where(sd > 0, sd, 1), 0.0)
    return np.argsort(-lift, kind="stable")[:n]


def _diff(X, labels, c):
    return X[labels == c].mean(0) - X[labels != c].mean(0)


def _nan_lift(X, labels, c, n):
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.argsort(-(_diff(X, labels, c) / X.std(0)), kind="stable")[:n]


def _inside_std(X, labels, c, n):
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.argsort(-(_diff(X, labels, c) / X[labels == c].std(0)), kind="stable")[:n]


def test_lift_ranking_solution_passes(capsys):
    ex.check_lift_ranking(my_lift_ranking)
    ex.check_lift_ranking(lambda X, lab, c, n: my_lift_ranking(X, lab, c, n).tolist())  # a list will do
    assert capsys.readouterr().out.splitlines()[0].startswith("PASSED lift_ranking:")


def test_lift_ranking_reference_judged_right_on_public_and_hidden():
    assert len(ex.LIFT_RANKING.public()) >= 3
    for case in ex.LIFT_RANKING.public() + _hidden(ex.LIFT_RANKING, range(10)):
        assert ex.LIFT_RANKING.judge(case, ex.LIFT_RANKING.solve(case)) is None
        assert ex.LIFT_RANKING.judge(case, run_answer(ex.LIFT_RANKING, (my_lift_ranking,), case)) is None


def test_lift_ranking_cases_hold_ties_and_constant_columns():
    for case in ex.LIFT_RANKING.public()[2:] + _hidden(ex.LIFT_RANKING):
        X, labels, c, n = case["X"], case["labels"], int(case["c"]), int(case["n"])
        assert (X.std(0) == 0).sum() >= 2
        lift = C.lift_scores(X, labels, c)
        top = lift[C.lift_ranking(X, labels, c, n)]
        assert len(np.unique(top[top != 0])) < len(top[top != 0])  # a tie among the chosen features
    assert ex.LIFT_RANKING.public()[0]["X"].shape == (60, 8)


def test_lift_ranking_unanswered():
    def todo(X, labels, c, n):
        raise NotImplementedError()

    with pytest.raises(CheckFailed, match="not answered yet"):
        ex.check_lift_ranking(todo)


def test_lift_ranking_reference_is_blocked():
    with pytest.raises(CheckFailed, match="asks for your own code"):
        ex.check_lift_ranking(lambda X, lab, c, n: C.lift_ranking(X, lab, c, n))
    with pytest.raises(CheckFailed, match="asks for your own code"):
        ex.check_lift_ranking(lambda X, lab, c, n: np.argsort(-C.lift_scores(X, lab, c), kind="stable")[:n])
    ex.check_lift_ranking(my_lift_ranking)
    X = np.array([[1.0, 0.0], [0.0, 1.0]])
    assert C.lift_ranking(X, np.array([0, 1]), 0, 1).tolist() == [0]


def _lift(X, labels, c):
    sd = X.std(0)
    return np.where(sd > 0, _diff(X, labels, c) / np.where(sd > 0, sd, 1), 0.0)


def _ascending(X, labels, c, n):
    return np.argsort(_lift(X, labels, c), kind="stable")[:n]


def _reversed_ties(X, labels, c, n):
    return np.argsort(_lift(X, labels, c), kind="stable")[::-1][:n]


LIFT_MISTAKES = [
    (lambda X, lab, c, n: np.argsort(-X[lab == c].mean(0), kind="stable")[:n], "raw in-cluster mean"),
    (lambda X, lab, c, n: np.argsort(-_diff(X, lab, c), kind="stable")[:n], "standard deviation, so small"),
    (lambda X, lab, c, n: my_lift_ranking(X, lab, c, n + 1), "int array"),
    (lambda X, lab, c, n: my_lift_ranking(X, lab, c, n).astype(str), "int array"),
    (lambda X, lab, c, n: my_lift_ranking(X, lab, c, n) + X.shape[1], "run from 0"),
    (_nan_lift, "lift 0, not NaN"),
    (_inside_std, "over all documents, not inside the cluster"),
    (_ascending, "largest lift first"),
    (_reversed_ties, "equal lift must keep their order"),
    (lambda X, lab, c, n: np.arange(n), "lift_ranking is wrong on a case"),
]


@pytest.mark.parametrize(("wrong", "hint"), LIFT_MISTAKES)
def test_lift_ranking_mistakes_are_named(wrong, hint):
    with pytest.raises(CheckFailed, match=hint):
        ex.check_lift_ranking(wrong)
    cases = _hidden(ex.LIFT_RANKING)
    hints = [ex.LIFT_RANKING.judge(c, run_answer(ex.LIFT_RANKING, (wrong,), c)) for c in cases]
    assert any(h and hint in h for h in hints)  # where two mistakes agree on a case, the first hint names it


def test_lift_ranking_hints_hold_no_expected_value():
    for case in ex.LIFT_RANKING.public() + _hidden(ex.LIFT_RANKING):
        want = ex.LIFT_RANKING.solve(case)["features"]
        for wrong, _ in LIFT_MISTAKES:
            hint = ex.LIFT_RANKING.judge(case, run_answer(ex.LIFT_RANKING, (wrong,), case)) or ""
            assert str(want.tolist()) not in hint and str(want) not in hint
            assert not re.search(r"\d+, \d+", hint), hint


def test_lift_ranking_lookup_table_fails_hidden():
    table = {
        (c["X"].shape, int(c["c"])): ex.LIFT_RANKING.solve(c)["features"] for c in ex.LIFT_RANKING.public()
    }

    def lookup(X, labels, c, n):
        return table.get((X.shape, c), np.arange(n))

    ex.check_lift_ranking(lookup)
    cases = ex.LIFT_RANKING.hidden(np.random.default_rng(2024))
    outputs = [run_answer(ex.LIFT_RANKING, (lookup,), c) for c in cases]
    assert judge_all(ex.LIFT_RANKING, cases, outputs) is not None


def test_lift_ranking_judge_survives_malformed_outputs():
    case = ex.LIFT_RANKING.public()[0]
    for out in (
        {},
        {"features": np.array(["a", "b", "c"])},
        {"features": np.array([0.5, 1.0, 2.0])},
        {"features": np.array([np.nan, 1.0, 2.0])},
        {"features": np.array([[3, 6, 1]])},
        {"features": np.array(3)},
    ):
        assert isinstance(ex.LIFT_RANKING.judge(case, out), str)


def test_lift_ranking_hidden_round_trip(tmp_path):
    cases = ex.LIFT_RANKING.hidden(np.random.default_rng(7))
    write_cases(tmp_path / "in.npz", cases)
    answer_hidden(ex.LIFT_RANKING, (my_lift_ranking,), str(tmp_path / "in.npz"), str(tmp_path / "out.npz"))
    assert judge_all(ex.LIFT_RANKING, cases, read_cases(tmp_path / "out.npz")) is None
    answer_hidden(ex.LIFT_RANKING, (_nan_lift,), str(tmp_path / "in.npz"), str(tmp_path / "out.npz"))
    assert "not NaN" in judge_all(ex.LIFT_RANKING, cases, read_cases(tmp_path / "out.npz"))
