"""Notebook 06's doubling-strength exercise: the reference passes, hidden cases are fresh, each mistake
gets its hint, and no hint gives the answer away."""

import numpy as np
import pytest

from helpers.analysis import steering
from helpers.analysis.steering import doubling_strength
from helpers.exercises import steering as ex
from helpers.exercises.common import CheckFailed, answer_hidden, judge_all, read_cases, write_cases

EX = ex.DOUBLING


def solution(strengths, perplexity):  # the notebook's solution cell
    target = 2 * perplexity[0]
    for k in range(1, len(strengths)):
        if perplexity[k] >= target:
            frac = (target - perplexity[k - 1]) / (perplexity[k] - perplexity[k - 1])
            return float(strengths[k - 1] + frac * (strengths[k] - strengths[k - 1]))
    return float("inf")


def hidden(seed: int, n: int = 1) -> list:
    rng = np.random.default_rng(seed)
    return [c for _ in range(n) for c in EX.hidden(rng)]


def want(case) -> float:
    return float(EX.solve(case)["value"])


def judge_fn(fn, case):
    return EX.judge(case, EX.answer((fn,), case))


# ----------------------------------------------------------------------------------------------
# the reference


def test_reference_on_hand_made_sweeps():
    assert doubling_strength(np.array([0.0, 1, 2, 4]), np.array([5.0, 6, 9, 11])) == pytest.approx(3.0)
    # dips below the baseline, crosses, falls back, crosses again: the first crossing counts
    assert doubling_strength(np.array([0.0, 1, 2, 3, 4]), np.array([10.0, 8, 24, 15, 40])) == pytest.approx(
        1.75
    )
    assert doubling_strength([0, 1, 2], [4.0, 8.0, 3.0]) == 1.0  # exactly 2x at a point: reached
    assert doubling_strength([0, 1, 2], [4.0, 7.9, 3.0]) == float("inf")


@pytest.mark.parametrize(
    ("s", "p", "msg"),
    [
        ([0.0, 1.0], [1.0, 2.0, 3.0], "one length"),
        ([0.0], [1.0], "one length >= 2"),
        ([[0.0, 1.0]], [[1.0, 2.0]], "1-D"),
        ([1.0, 2.0], [1.0, 2.0], "start at 0"),
        ([0.0, 2.0, 1.0], [1.0, 2.0, 3.0], "increase"),
        ([0.0, 1.0, 1.0], [1.0, 2.0, 3.0], "increase"),
        ([0.0, 1.0], [0.0, 2.0], "positive"),
        ([0.0, 1.0], [1.0, np.nan], "finite"),
    ],
)
def test_reference_rejects_bad_input_in_one_line(s, p, msg):
    with pytest.raises(ValueError, match=msg) as err:
        doubling_strength(np.array(s), np.array(p))
    assert "\n" not in str(err.value)


# ----------------------------------------------------------------------------------------------
# the exercise


def test_the_solution_passes(capsys):
    ex.check_doubling_strength(solution)
    assert capsys.readouterr().out.startswith("PASSED doubling_strength:")


def test_reference_is_judged_right_on_public_and_hidden_cases():
    for case in EX.public() + hidden(0, 5) + hidden(1):
        assert EX.judge(case, EX.solve(case)) is None
        assert judge_fn(solution, case) is None


def test_cases_are_arrays_of_numbers_and_travel_as_npz(tmp_path):
    cases = hidden(3)
    path = tmp_path / "cases.npz"
    write_cases(path, cases)
    back = read_cases(path)
    for a, b in zip(cases, back, strict=True):
        assert set(a) == set(b) == {"strengths", "perplexity"}
        for k in a:
            assert a[k].dtype.kind == "f"
            np.testing.assert_array_equal(a[k], b[k])


def test_the_grader_round_trip(tmp_path):
    """Hidden cases in, the student's outputs out (in the 'kernel'), judged in the grader's process."""
    cases = hidden(4)
    write_cases(tmp_path / "in.npz", cases)
    answer_hidden(EX, (solution,), str(tmp_path / "in.npz"), str(tmp_path / "out.npz"))
    assert judge_all(EX, cases, read_cases(tmp_path / "out.npz")) is None
    answer_hidden(EX, (lambda s, p: 1 / 0,), str(tmp_path / "in.npz"), str(tmp_path / "out.npz"))
    assert judge_all(EX, cases, read_cases(tmp_path / "out.npz")) == "ZeroDivisionError: division by zero"


def test_hidden_cases_cover_the_tricky_situations():
    n_sizes = set()
    for seed in range(20):
        dip_twice, never, exact, *_ = hidden(seed)
        for case in (dip_twice, never, exact):
            s, p = case["strengths"], case["perplexity"]
            n_sizes.add(len(s))
            assert s[0] == 0 and (np.diff(s) > 0).all()
            assert p.min() < p[0]  # dips below the baseline: the minimum is not the baseline
        p = dip_twice["perplexity"]
        up = (p[1:] >= 2 * p[0]) & (p[:-1] < 2 * p[0])
        assert up.sum() >= 2  # crosses, falls back, crosses again
        assert want(never) == np.inf
        assert (exact["perplexity"] == 2 * exact["perplexity"][0]).any()
        assert want(exact) in exact["strengths"]
    assert len(n_sizes) >= 5


def test_unanswered():
    def todo(strengths, perplexity):
        raise NotImplementedError()

    with pytest.raises(CheckFailed, match="not answered"):
        ex.check_doubling_strength(todo)


def test_calling_the_helpers_reference_fails():
    with pytest.raises(CheckFailed, match="asks for your own code"):
        ex.check_doubling_strength(doubling_strength)
    with pytest.raises(CheckFailed, match="asks for your own code"):
        ex.check_doubling_strength(lambda s, p: steering.doubling_strength(s, p))
    ex.check_doubling_strength(solution)  # switched back on afterwards
    assert doubling_strength([0.0, 1.0], [1.0, 3.0]) == pytest.approx(0.5)


def test_a_lookup_table_of_the_public_answers_fails_hidden_cases():
    table = {c["strengths"].shape: want(c) for c in EX.public()}
    assert len(table) == len(EX.public())  # one shape per public case

    def lookup(strengths, perplexity):
        return table.get(strengths.shape, 1.0)

    ex.check_doubling_strength(lookup)
    cases = hidden(12345)
    outputs = [EX.answer((lookup,), c) for c in cases]
    assert judge_all(EX, cases, outputs) is not None


# ----------------------------------------------------------------------------------------------
# the mistakes


def _first_cross(s, p, target, last=False, interpolate=True, flip=False, strict=False):
    ks = [
        k
        for k in range(1, len(p))
        if ((p[k] > target and p[k - 1] <= target) if strict else (p[k] >= target and p[k - 1] < target))
    ]
    if not ks:
        return float("inf")
    k = ks[-1] if last else ks[0]
    if not interpolate:
        return float(s[k])
    frac = (target - p[k - 1]) / (p[k] - p[k - 1])
    return float(s[k] - frac * (s[k] - s[k - 1]) if flip else s[k - 1] + frac * (s[k] - s[k - 1]))


def _prev_point(s, p):
    k = np.flatnonzero(p >= 2 * p[0])
    return float(s[k[0] - 1]) if k.size else float("inf")


def _vs_previous(s, p):
    k = [k for k in range(1, len(p)) if p[k] >= 2 * p[k - 1]]
    return float(s[k[0]]) if k else float("inf")


def _nan_if_never(s, p):
    v = solution(s, p)
    return float("nan") if np.isinf(v) else v


def _none_if_never(s, p):
    v = solution(s, p)
    return None if np.isinf(v) else v


def _last_if_never(s, p):
    v = solution(s, p)
    return float(s[-1]) if np.isinf(v) else v


MISTAKES = {
    "baseline = min": (lambda s, p: _first_cross(s, p, 2 * p.min()), "not the smallest perplexity"),
    "last crossing": (lambda s, p: _first_cross(s, p, 2 * p[0], last=True), "that is the last crossing"),
    "last crossing, sweep point": (
        lambda s, p: _first_cross(s, p, 2 * p[0], last=True, interpolate=False),
        "sweep point of the last crossing",
    ),
    "no interpolation": (
        lambda s, p: _first_cross(s, p, 2 * p[0], interpolate=False),
        "that is a sweep point",
    ),
    "point below": (_prev_point, "last sweep point below"),
    "strict >": (lambda s, p: _first_cross(s, p, 2 * p[0], strict=True), "not >"),
    "interpolated from the wrong end": (
        lambda s, p: _first_cross(s, p, 2 * p[0], flip=True),
        "from the wrong end",
    ),
    "np.interp": (lambda s, p: float(np.interp(2 * p[0], p, s)), "np.interp"),
    "log doubled": (lambda s, p: _first_cross(s, p, p[0] ** 2), "not its log"),
    "relative to the first clamped point": (
        lambda s, p: _first_cross(s, p, 2 * p[1]),
        "not at the first clamped strength",
    ),
    "relative to the previous point": (_vs_previous, "not with the point before it"),
    "relative to the mean": (lambda s, p: _first_cross(s, p, 2 * p.mean()), "not twice the mean"),
    "nan when never": (_nan_if_never, "not nan or None"),
    "None when never": (_none_if_never, "not nan or None"),
    "last strength when never": (_last_if_never, "not the last strength"),
    "three times": (lambda s, p: _first_cross(s, p, 3 * p[0]), "doubling_strength is wrong on a case"),
    "two numbers": (lambda s, p: [1.0, 2.0], "return one number"),
    "a string": (lambda s, p: "2.5", "return one number"),
}


def _hints(fn, cases):
    return [h for h in (judge_fn(fn, c) for c in cases) if h]


@pytest.mark.parametrize("name", list(MISTAKES))
def test_each_mistake_gets_its_hint(name):
    """Each mistake fails on some case with its own hint (first on the public cases, else hidden ones),
    and is never judged right where it gives a different answer."""
    wrong, hint = MISTAKES[name]
    cases = EX.public() + hidden(7, 8)
    hints = _hints(wrong, cases)
    assert hints, f"{name} is never caught"
    assert any(hint in h for h in hints), hints


def test_the_public_cases_catch_the_main_mistakes():
    for name in (
        "baseline = min",
        "last crossing",
        "no interpolation",
        "nan when never",
        "None when never",
        "strict >",
        "relative to the first clamped point",
    ):
        wrong, hint = MISTAKES[name]
        with pytest.raises(CheckFailed, match=hint):
            ex.check_doubling_strength(wrong)


def test_malformed_outputs_get_a_hint_not_a_crash():
    case = EX.public()[0]
    for out in ({}, {"value": np.array([1.0, 2.0])}, {"value": np.array("x")}, {"value": np.array([])}):
        assert "return one number" in EX.judge(case, out)


def test_no_hint_contains_the_answer():
    cases = EX.public() + hidden(8, 4)
    for name, (wrong, _) in MISTAKES.items():
        for case in cases:
            hint = judge_fn(wrong, case) or ""
            w = want(case)
            if np.isfinite(w):
                for fmt in (".1f", ".2f", ".3f", ".4f"):
                    assert format(w, fmt) not in hint, (name, hint)
