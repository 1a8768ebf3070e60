import re

import numpy as np
import pandas as pd
import pytest

from helpers.exercises import sae_training as ex
from helpers.exercises.common import CheckFailed, judge_all, run_answer
from helpers.sae.bad_runs import DIAGNOSES, LABELS, SECRET_ENV, BadRuns, run_order
from helpers.sae.search import Probe, next_lambda
from helpers.stats import grouped_interval


def _numbers(value: float) -> list[str]:
    return [f"{value:.2f}", f"{value:.3f}", f"{value:.4f}", f"{value:.3g}"]


# ----------------------------------------------------------------------------------------------
# next_lambda: the notebook's solution and typical mistakes


def my_next_lambda(lam_a, l0_a, lam_b, l0_b, target):  # the notebook's solution
    def log_l0(l0):  # an L0 of 0 (λ so high that nothing fires) still gives a finite step
        return np.log(max(l0, 0.01))

    slope = (log_l0(l0_b) - log_l0(l0_a)) / (np.log(lam_b) - np.log(lam_a))
    if not slope < 0:  # L0 did not fall between the runs: assume L0 ∝ 1/λ
        slope = -1.0
    return float(np.exp(np.log(lam_b) + (np.log(target) - log_l0(l0_b)) / slope))


def _slope(lam_a, l0_a, lam_b, l0_b):
    return (np.log(max(l0_b, 0.01)) - np.log(max(l0_a, 0.01))) / (np.log(lam_b) - np.log(lam_a))


def linear(lam_a, l0_a, lam_b, l0_b, t):
    return lam_b + (t - l0_b) * (lam_b - lam_a) / (l0_b - l0_a)


def log_lam_only(lam_a, l0_a, lam_b, l0_b, t):
    return float(np.exp(np.log(lam_b) + (t - l0_b) * (np.log(lam_b) - np.log(lam_a)) / (l0_b - l0_a)))


def log_l0_only(lam_a, l0_a, lam_b, l0_b, t):
    la, lb = np.log(max(l0_a, 0.01)), np.log(max(l0_b, 0.01))
    return float(lam_b + (np.log(t) - lb) * (lam_b - lam_a) / (lb - la))


def inverse_guess(lam_a, l0_a, lam_b, l0_b, t):
    return lam_b * l0_b / t


def wrong_run(lam_a, l0_a, lam_b, l0_b, t):
    s = _slope(lam_a, l0_a, lam_b, l0_b)
    return float(np.exp(np.log(lam_a) + (np.log(t) - np.log(max(l0_b, 0.01))) / s))


def times_slope(lam_a, l0_a, lam_b, l0_b, t):
    s = _slope(lam_a, l0_a, lam_b, l0_b)
    return float(np.exp(np.log(lam_b) + (np.log(t) - np.log(max(l0_b, 0.01))) * s))


def wrong_way(lam_a, l0_a, lam_b, l0_b, t):
    s = _slope(lam_a, l0_a, lam_b, l0_b)
    return float(np.exp(np.log(lam_b) - (np.log(t) - np.log(max(l0_b, 0.01))) / s))


def no_clip(lam_a, l0_a, lam_b, l0_b, t):
    with np.errstate(all="ignore"):
        s = (np.log(l0_b) - np.log(l0_a)) / (np.log(lam_b) - np.log(lam_a))
        return float(np.exp(np.log(lam_b) + (np.log(t) - np.log(l0_b)) / s))


def test_next_lambda_solution_passes(capsys):
    ex.check_next_lambda(my_next_lambda)
    assert capsys.readouterr().out == "PASSED next_lambda: right on every public case (3)\n"


def test_next_lambda_reference_agrees_on_public_and_hidden_cases():
    cases = ex.NEXT_LAMBDA.public() + [
        c for s in range(20) for c in ex.NEXT_LAMBDA.hidden(np.random.default_rng(s))
    ]
    for case in cases:
        assert ex.NEXT_LAMBDA.judge(case, ex.NEXT_LAMBDA.solve(case)) is None
        assert ex.NEXT_LAMBDA.judge(case, run_answer(ex.NEXT_LAMBDA, (my_next_lambda,), case)) is None
        probes = [
            Probe(float(case["lam_a"]), float(case["l0_a"])),
            Probe(float(case["lam_b"]), float(case["l0_b"])),
        ]
        assert float(ex.NEXT_LAMBDA.solve(case)["value"]) == next_lambda(probes, float(case["target"]))


def test_next_lambda_cases_cover_between_outside_and_zero():
    cases = [c for s in range(10) for c in ex.NEXT_LAMBDA.hidden(np.random.default_rng(s))]
    inside = outside = zero = 0
    for c in cases:
        l0 = sorted([float(c["l0_a"]), float(c["l0_b"])])
        zero += l0[0] == 0
        if l0[0] > 0:
            inside += l0[0] < float(c["target"]) < l0[1]
            outside += not l0[0] <= float(c["target"]) <= l0[1]
        # L0 falls as λ grows in every case
        assert (float(c["lam_b"]) - float(c["lam_a"])) * (float(c["l0_b"]) - float(c["l0_a"])) < 0
    assert inside >= 10 and outside >= 20 and zero == 10


@pytest.mark.parametrize(
    ("fn", "hint"),
    [
        (linear, "straight line through the two runs in λ and L0 themselves"),
        (log_lam_only, "only λ is on a log scale"),
        (log_l0_only, "only L0 is on a log scale"),
        (inverse_guess, "first guess L0 ∝ 1/λ"),
        (wrong_run, "starts from the wrong run"),
        (times_slope, "multiply by the slope's inverse"),
        (wrong_way, "λ moved the wrong way"),
        (lambda *a: 2 * my_next_lambda(*a), "fit the line through the two runs on log-log axes"),
    ],
)
def test_next_lambda_hints(fn, hint):
    with pytest.raises(CheckFailed, match=re.escape(hint)):
        ex.check_next_lambda(fn)


def test_next_lambda_zero_l0_hint():
    case = ex.NEXT_LAMBDA.public()[2]
    assert min(float(case["l0_a"]), float(case["l0_b"])) == 0
    hint = ex.NEXT_LAMBDA.judge(case, run_answer(ex.NEXT_LAMBDA, (no_clip,), case))
    assert "read it as 0.01 inside the log" in hint
    # the first two public cases have no L0 of 0: there the unclipped step is right
    for case in ex.NEXT_LAMBDA.public()[:2]:
        assert ex.NEXT_LAMBDA.judge(case, run_answer(ex.NEXT_LAMBDA, (no_clip,), case)) is None


def test_next_lambda_malformed_output():
    case = ex.NEXT_LAMBDA.public()[0]
    assert ex.NEXT_LAMBDA.judge(case, {}) is not None
    assert ex.NEXT_LAMBDA.judge(case, {"value": np.array([1.0, 2.0])}) is not None
    assert ex.NEXT_LAMBDA.judge(case, {"value": np.array("x")}) is not None


def test_next_lambda_reference_is_blocked_and_unanswered_is_reported():
    with pytest.raises(CheckFailed, match="asks for your own code"):
        ex.check_next_lambda(lambda a, b, c, d, t: next_lambda([Probe(a, b), Probe(c, d)], t))

    def todo(*args):
        raise NotImplementedError()

    with pytest.raises(CheckFailed, match="not answered yet"):
        ex.check_next_lambda(todo)


def test_next_lambda_lookup_table_fails_hidden_cases():
    table = {
        tuple(float(c[k]) for k in ex._RUNS): float(ex.NEXT_LAMBDA.solve(c)["value"])
        for c in ex.NEXT_LAMBDA.public()
    }
    fallback = float(np.median(list(table.values())))

    def lookup(*args):
        return table.get(tuple(args), fallback)

    ex.check_next_lambda(lookup)
    cases = ex.NEXT_LAMBDA.hidden(np.random.default_rng(123))
    outputs = [run_answer(ex.NEXT_LAMBDA, (lookup,), c) for c in cases]
    assert judge_all(ex.NEXT_LAMBDA, cases, outputs) is not None


def test_next_lambda_hints_hold_no_expected_value():
    wrong = (linear, log_lam_only, log_l0_only, inverse_guess, wrong_run, times_slope, wrong_way, no_clip)
    for case in ex.NEXT_LAMBDA.public() + ex.NEXT_LAMBDA.hidden(np.random.default_rng(5)):
        want = float(ex.NEXT_LAMBDA.solve(case)["value"])
        for fn in wrong:
            hint = ex.NEXT_LAMBDA.judge(case, run_answer(ex.NEXT_LAMBDA, (fn,), case))
            assert hint is None or not any(s in hint for s in _numbers(want)), hint


# ----------------------------------------------------------------------------------------------
# prompt_interval: the notebook's solution and typical mistakes


def my_prompt_interval(values, prompts, n_boot, seed):  # the notebook's solution
    _, inv = np.unique(prompts, return_inverse=True)  # each text's prompt as 0..n_prompts-1
    sums, counts = np.bincount(inv, weights=values), np.bincount(inv)  # per prompt
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(sums), size=(n_boot, len(sums)))  # n_boot resamples of the prompts
    means = sums[draws].sum(1) / counts[draws].sum(1)  # mean over every text of the drawn prompts
    low, high = np.percentile(means, [2.5, 97.5])
    return float(low), float(high)


def other_rng(values, prompts, n_boot, seed):  # right, with another draw of the resamples
    groups = {}
    for v, p in zip(values, prompts, strict=True):
        groups.setdefault(p, []).append(v)
    sums = np.array([sum(g) for g in groups.values()])
    counts = np.array([len(g) for g in groups.values()])
    rng = np.random.default_rng(seed + 999)
    means = [
        (sums[i].sum() / counts[i].sum()) for i in (rng.choice(len(sums), len(sums)) for _ in range(n_boot))
    ]
    return tuple(np.quantile(means, [0.025, 0.975]))


def by_text(values, prompts, n_boot, seed):
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), (n_boot, len(values)))].mean(1)
    return tuple(np.percentile(means, [2.5, 97.5]))


def prompt_means(values, prompts, n_boot, seed):
    _, inv = np.unique(prompts, return_inverse=True)
    pm = np.bincount(inv, weights=values) / np.bincount(inv)
    rng = np.random.default_rng(seed)
    return tuple(np.percentile(pm[rng.integers(0, len(pm), (n_boot, len(pm)))].mean(1), [2.5, 97.5]))


def test_prompt_interval_solution_passes(capsys):
    ex.check_prompt_interval(my_prompt_interval)
    assert capsys.readouterr().out.startswith("PASSED prompt_interval: contains the mean")


def test_prompt_interval_correct_answers_pass_public_and_hidden_cases():
    cases = ex.PROMPT_INTERVAL.public() + [
        c for s in range(4) for c in ex.PROMPT_INTERVAL.hidden(np.random.default_rng(s))
    ]
    for case in cases:
        assert ex.PROMPT_INTERVAL.judge(case, ex.PROMPT_INTERVAL.solve(case)) is None
        for fn in (my_prompt_interval, other_rng):
            assert ex.PROMPT_INTERVAL.judge(case, run_answer(ex.PROMPT_INTERVAL, (fn,), case)) is None


def test_prompt_interval_cases():
    for case in ex.PROMPT_INTERVAL.public() + ex.PROMPT_INTERVAL.hidden(np.random.default_rng(9)):
        _, sizes = np.unique(case["prompts"], return_counts=True)
        assert 10 <= len(sizes) <= 40 and sizes.min() >= 2 and sizes.max() <= 6
        assert int(case["n_boot"]) >= 2000
        iv = grouped_interval(
            case["values"], case["prompts"], n_boot=int(case["n_boot"]), seed=int(case["seed"])
        )
        assert iv.low < iv.value < iv.high


@pytest.mark.parametrize(
    ("fn", "hint"),
    [
        (by_text, "as narrow as resampling texts"),
        (lambda v, p, n, s: tuple(np.quantile(v, [0.025, 0.975])), "the spread of the values themselves"),
        (
            lambda v, p, n, s: tuple(np.array(my_prompt_interval(v, p, n, s)) + 0.2),
            "does not contain the mean",
        ),
        (lambda v, p, n, s: my_prompt_interval(v, p, n, s)[::-1], "low <= high"),
        (lambda v, p, n, s: (np.nan, 1.0), "two finite numbers"),
        (
            lambda v, p, n, s: tuple(np.percentile(_boot_means(v, p, n, s), [25, 75])),
            "the 2.5th and 97.5th percentiles of those means",
        ),
    ],
)
def test_prompt_interval_hints(fn, hint):
    with pytest.raises(CheckFailed, match=re.escape(hint)):
        ex.check_prompt_interval(fn)


def _boot_means(values, prompts, n_boot, seed):
    _, inv = np.unique(prompts, return_inverse=True)
    sums, counts = np.bincount(inv, weights=values), np.bincount(inv)
    d = np.random.default_rng(seed).integers(0, len(sums), (n_boot, len(sums)))
    return sums[d].sum(1) / counts[d].sum(1)


def test_prompt_interval_prompt_means_hint():
    # sizes 2 and 6 with the prompt effect tied to size: the mean of prompt means differs in width
    rng = np.random.default_rng(0)
    sizes = np.array([2, 6] * 10)
    prompts = np.repeat(np.arange(20) + 500, sizes)
    values = np.repeat(np.where(sizes == 6, rng.normal(0, 0.01, 20), rng.normal(0, 0.2, 20)), sizes)
    values = values + 0.9 + rng.normal(0, 0.002, len(values))
    case = {"values": values, "prompts": prompts, "n_boot": np.asarray(2000), "seed": np.asarray(3)}
    hint = ex.PROMPT_INTERVAL.judge(case, run_answer(ex.PROMPT_INTERVAL, (prompt_means,), case))
    assert hint is not None and "not the mean of the prompt means" in hint


def test_text_level_bootstrap_fails_every_hidden_draw():
    for s in range(5):
        cases = ex.PROMPT_INTERVAL.hidden(np.random.default_rng(100 + s))
        outputs = [run_answer(ex.PROMPT_INTERVAL, (by_text,), c) for c in cases]
        assert "resampling texts" in judge_all(ex.PROMPT_INTERVAL, cases, outputs)


def test_prompt_interval_reference_is_blocked():
    def reference(values, prompts, n_boot, seed):
        iv = grouped_interval(values, prompts, n_boot=n_boot, seed=seed)
        return iv.low, iv.high

    with pytest.raises(CheckFailed, match="asks for your own code"):
        ex.check_prompt_interval(reference)


def test_prompt_interval_lookup_table_fails_hidden_cases():
    table = {}
    for c in ex.PROMPT_INTERVAL.public():
        out = ex.PROMPT_INTERVAL.solve(c)
        table[len(c["values"])] = (float(out["low"]), float(out["high"]))

    def lookup(values, prompts, n_boot, seed):
        return table.get(len(values), (0.0, 1.0))

    ex.check_prompt_interval(lookup)
    cases = ex.PROMPT_INTERVAL.hidden(np.random.default_rng(77))
    outputs = [run_answer(ex.PROMPT_INTERVAL, (lookup,), c) for c in cases]
    assert judge_all(ex.PROMPT_INTERVAL, cases, outputs) is not None


def test_prompt_interval_hints_hold_no_expected_value():
    wrong = (by_text, prompt_means, lambda v, p, n, s: tuple(np.quantile(v, [0.025, 0.975])))
    for case in ex.PROMPT_INTERVAL.public():
        want = ex.PROMPT_INTERVAL.solve(case)
        for fn in wrong:
            hint = ex.PROMPT_INTERVAL.judge(case, run_answer(ex.PROMPT_INTERVAL, (fn,), case)) or ""
            for key in ("value", "low", "high"):
                assert not any(s in hint for s in _numbers(float(want[key]))), hint


def test_prompt_interval_malformed_output():
    case = ex.PROMPT_INTERVAL.public()[0]
    assert ex.PROMPT_INTERVAL.judge(case, {}) is not None
    assert ex.PROMPT_INTERVAL.judge(case, {"low": np.array([0.1, 0.2]), "high": np.array(0.3)}) is not None


# ----------------------------------------------------------------------------------------------
# diagnosis: the form is checked in the notebook; only the grader (with the secret) scores it

# held-out metrics of the three bad runs as trained in each profile (L0, FVU, dead, dense)
MEASURED = {
    "full": {
        "lambda too low": (3709.3, 0.448, 0.000, 0.999),
        "learning rate too high": (0.0, 1.030, 0.998, 0.000),
        "width 1x": (24.9, 0.676, 0.057, 0.094),
    },
    "ci": {
        "lambda too low": (3737.2, 0.466, 0.000, 1.000),
        "learning rate too high": (0.0, 1.078, 1.000, 0.000),
        "width 1x": (23.7, 0.699, 0.224, 0.118),
    },
}


def _bad_runs(order: dict[str, str], profile: str = "full") -> BadRuns:
    rows = [
        dict(zip(("L0", "FVU", "dead", "dense"), MEASURED[profile][order[k]], strict=True), run=k)
        for k in LABELS
    ]
    return BadRuns(table=pd.DataFrame(rows).set_index("run"), latents={})


def notebook_diagnosis(bad: BadRuns) -> dict[str, str]:  # the notebook's solution
    by_l0 = bad.table.sort_values("L0").index
    return {by_l0[0]: "learning rate too high", by_l0[2]: "lambda too low", by_l0[1]: "width 1x"}


def _secret_for(order: tuple[str, ...]) -> str:
    return next(f"s{i}" for i in range(1000) if tuple(run_order(f"s{i}").values()) == order)


def test_check_diagnosis_checks_only_the_form(capsys):
    bad = _bad_runs(run_order("anything"))
    for answer in ({"A": "width 1x", "B": "width 1x", "C": "width 1x"}, notebook_diagnosis(bad)):
        ex.check_diagnosis(answer, bad)
        assert capsys.readouterr().out == (
            "PASSED diagnosis: an answer is recorded for runs A, B, C; the grader scores it\n"
        )
    for answer in ({"A": "width 1x"}, ["width 1x"] * 3, {"A": "bad", "B": "width 1x", "C": "width 1x"}):
        with pytest.raises(CheckFailed, match="answer with a dict|not diagnoses"):
            ex.check_diagnosis(answer, bad)


def test_notebook_reasoning_is_right_for_every_order(monkeypatch):
    orders = {tuple(run_order(f"s{i}").values()) for i in range(200)}
    assert len(orders) == 6
    case = ex.DIAGNOSIS.hidden(np.random.default_rng(0))[0]
    for order in orders:
        secret = _secret_for(order)
        monkeypatch.setenv(SECRET_ENV, secret)
        for profile in MEASURED:
            bad = _bad_runs(run_order(secret), profile)
            got = run_answer(ex.DIAGNOSIS, (notebook_diagnosis(bad), bad), case)
            assert ex.DIAGNOSIS.judge(case, got) is None
            assert ex.DIAGNOSIS.judge(case, ex.DIAGNOSIS.solve(case)) is None


def test_diagnosis_wrong_answers_get_the_signature_they_lack(monkeypatch):
    monkeypatch.setenv(SECRET_ENV, "grading-run-1")
    truth = run_order("grading-run-1")
    case = ex.DIAGNOSIS.hidden(np.random.default_rng(1))[0]
    for given in DIAGNOSES:
        # every run called `given`: the runs that are not `given` are misread
        got = run_answer(ex.DIAGNOSIS, ({k: given for k in LABELS},), case)
        hint = ex.DIAGNOSIS.judge(case, got)
        assert hint.startswith("2 of the 3 runs misread") and ex.TIPS[given] in hint
        assert not any(f"run {k}" in hint for k in LABELS)  # the grader's labels mean nothing to the student
    swapped = dict(truth)
    a, b = LABELS[:2]
    swapped[a], swapped[b] = truth[b], truth[a]
    hint = ex.DIAGNOSIS.judge(case, run_answer(ex.DIAGNOSIS, (swapped,), case))
    assert hint.startswith("2 of the 3 runs misread")
    assert ex.DIAGNOSIS.judge(case, {"runs": np.asarray(LABELS)}).startswith("answer with a dict")


def test_diagnosis_needs_the_grader_secret(monkeypatch):
    monkeypatch.delenv(SECRET_ENV, raising=False)
    case = ex.DIAGNOSIS.hidden(np.random.default_rng(0))[0]
    with pytest.raises(RuntimeError, match=SECRET_ENV):
        ex.DIAGNOSIS.solve(case)
    got = run_answer(ex.DIAGNOSIS, ({k: "width 1x" for k in LABELS},), case)
    assert "could not be read" in judge_all(ex.DIAGNOSIS, [case], [got])


def test_diagnosis_exercise_spec():
    assert ex.DIAGNOSIS.references == () and ex.DIAGNOSIS.public() == []
    assert [c["runs"].tolist() for c in ex.DIAGNOSIS.hidden(np.random.default_rng(0))] == [list(LABELS)]
    assert {e.name for e in ex.EXERCISES} == {"next_lambda", "prompt_interval", "diagnosis"}
