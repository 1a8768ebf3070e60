"""Notebook 06's attribution exercise: the reference passes, hidden cases are fresh, each mistake gets
its hint, and no hint gives the answer away."""

import numpy as np
import pytest
import torch

from helpers.analysis import attribution as A
from helpers.analysis.attribution import attribute
from helpers.exercises import attribution as ex
from helpers.exercises.common import CheckFailed, answer_hidden, judge_all, read_cases, write_cases

EX = ex.ATTRIBUTE


def solution(f, grad):  # the notebook's solution cell
    return (f * grad).sum(0)


def hidden(seed: int, n: int = 1) -> list:
    rng = np.random.default_rng(seed)
    return [c for _ in range(n) for c in EX.hidden(rng)]


def judge_fn(fn, case):
    return EX.judge(case, EX.answer((fn,), case))


def test_the_solution_passes(capsys):
    ex.check_attribute(solution)
    ex.check_attribute(lambda f, g: (f * g).sum(0).numpy().tolist())  # any array-like is accepted
    ex.check_attribute(lambda f, g: torch.einsum("td,td->d", f, g))
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 3 and all(line.startswith("PASSED attribute:") for line in out)


def test_reference_is_judged_right_on_public_and_hidden_cases():
    for case in EX.public() + hidden(0, 5) + hidden(1):
        assert EX.judge(case, EX.solve(case)) is None
        assert judge_fn(solution, case) is None


def test_cases_are_exact_float32_with_the_planted_features():
    shapes = set()
    for case in EX.public() + hidden(2, 5):
        f, g = case["f"], case["grad"]
        assert f.dtype == g.dtype == np.float32 and f.shape == g.shape
        t, d = f.shape
        shapes.add(f.shape)
        assert t != d and t >= 3
        assert (f >= 0).all() and (f * 4 == np.round(f * 4)).all() and (g * 4 == np.round(g * 4)).all()
        fg = f.astype(np.float64) * g
        a = fg.sum(0)
        assert (np.abs(fg).sum(0) != np.abs(a)).any()  # a feature pushing both ways
        assert (a < 0).any()  # a negative attribution
        assert (fg[0] != 0).any() and (fg[-1] != 0).any()  # first and last positions count
        assert (f == 0).all(0).any()  # a feature never active
    assert len(shapes) >= 10


def test_the_grader_round_trip(tmp_path):
    cases = hidden(4)
    write_cases(tmp_path / "in.npz", cases)
    answer_hidden(EX, (solution,), str(tmp_path / "in.npz"), str(tmp_path / "out.npz"))
    assert judge_all(EX, cases, read_cases(tmp_path / "out.npz")) is None
    answer_hidden(EX, (lambda f, g: f.sum(0),), str(tmp_path / "in.npz"), str(tmp_path / "out.npz"))
    assert "activation alone" in judge_all(EX, cases, read_cases(tmp_path / "out.npz"))


def test_unanswered():
    def todo(f, grad):
        raise NotImplementedError()

    with pytest.raises(CheckFailed, match="not answered yet"):
        ex.check_attribute(todo)


def test_calling_the_helpers_reference_fails():
    with pytest.raises(CheckFailed, match="asks for your own code"):
        ex.check_attribute(attribute)
    with pytest.raises(CheckFailed, match="asks for your own code"):
        ex.check_attribute(lambda f, g: A.attribute(f, g))
    ex.check_attribute(solution)  # the reference is switched back on afterwards
    assert torch.equal(attribute(torch.ones(2, 3), torch.ones(2, 3)), torch.full((3,), 2.0))


def test_a_lookup_table_of_the_public_answers_fails_hidden_cases():
    table = {c["f"].shape: EX.solve(c)["value"] for c in EX.public()}
    assert len(table) == len(EX.public())

    def lookup(f, grad):
        return table.get(tuple(f.shape), np.zeros(f.shape[1]))

    ex.check_attribute(lookup)
    cases = hidden(12345)
    assert judge_all(EX, cases, [EX.answer((lookup,), c) for c in cases]) is not None


MISTAKES = {
    "gradient alone": (lambda f, g: g.sum(0), "gradient alone"),
    "activation alone": (lambda f, g: f.sum(0), "activation alone"),
    "sign": (lambda f, g: -(f * g).sum(0), "sign is flipped"),
    "abs inside": (lambda f, g: (f * g).abs().sum(0), "no absolute values"),
    "abs outside": (lambda f, g: (f * g).sum(0).abs(), "keep the sign"),
    "mean": (lambda f, g: (f * g).mean(0), "do not average"),
    "last position": (lambda f, g: f[-1] * g[-1], "not only the last one"),
    "first dropped": (lambda f, g: (f * g)[1:].sum(0), "the first row included"),
    "last dropped": (lambda f, g: (f * g)[:-1].sum(0), "including the last"),
    "over features": (lambda f, g: (f * g).sum(1), "sums over features"),
    "outer": (lambda f, g: f.T @ g, "one number per feature"),
    "one number": (lambda f, g: (f * g).sum(), "one number per feature"),
    "off by one": (lambda f, g: (f * g).sum(0) + 1, "attribute is wrong on a case"),
    "a string": (lambda f, g: "nonsense", "return a tensor"),
}


@pytest.mark.parametrize("name", list(MISTAKES))
def test_each_mistake_is_named_on_the_public_and_the_hidden_cases(name):
    wrong, hint = MISTAKES[name]
    with pytest.raises(CheckFailed, match=hint):
        ex.check_attribute(wrong)
    for case in hidden(7, 3):
        assert hint in judge_fn(wrong, case)


def test_malformed_outputs_get_a_hint_not_a_crash():
    case = EX.public()[0]
    for out in ({}, {"value": np.array("x")}, {"value": np.array("1.5")}):
        assert "return a tensor" in EX.judge(case, out)
    assert "one number per feature" in EX.judge(case, {"value": np.array([np.nan])})


def test_no_hint_contains_the_answer():
    for case in EX.public() + hidden(8, 2):
        want = np.asarray(EX.solve(case)["value"], dtype=np.float64)
        for wrong, _ in MISTAKES.values():
            hint = judge_fn(wrong, case) or ""
            assert str(want.tolist()) not in hint and str(np.round(want, 4).tolist()) not in hint
            assert all(f"{v:.4g}" not in hint for v in want if v != round(v))
