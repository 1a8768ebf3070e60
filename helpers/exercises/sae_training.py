"""Graded exercises of Notebook 03 (SAE training): the secant step of the λ search, a bootstrap
interval that resamples prompts, and the diagnosis of the bad runs (scored by the grader only)."""

from __future__ import annotations

import os

import numpy as np

from helpers.exercises.common import (
    Case,
    CheckFailed,
    Exercise,
    arrays,
    close,
    first_match,
    make_check,
    passed,
    run_answer,
    scalar,
)
from helpers.sae.bad_runs import DIAGNOSES, LABELS, SECRET_ENV, BadRuns, run_order
from helpers.sae.search import Probe, next_lambda
from helpers.stats import bootstrap, grouped_interval, mean_interval

# ----------------------------------------------------------------------------------------------
# next_lambda(lam_a, l0_a, lam_b, l0_b, target): one secant step on log λ against log L0

_RUNS = ("lam_a", "l0_a", "lam_b", "l0_b", "target")


def _lambda_case(rng: np.random.Generator, kind: int) -> Case:
    """Two runs of an L1 SAE whose L0 falls as a noisy power of λ, and a target L0: between the two
    runs' (kind 0), outside them (kind 1), or one run with λ so high that its L0 is 0 (kind 2)."""
    power, l0_at_5 = rng.uniform(0.5, 2.0), np.exp(rng.uniform(np.log(10), np.log(300)))
    if kind == 2:  # the L0 of 0 is read as 0.01 inside the log (the reference's clip)
        lam = np.array(
            [np.exp(rng.uniform(np.log(10), np.log(30))), np.exp(rng.uniform(np.log(0.3), np.log(5)))]
        )
        l0 = np.array([0.0, l0_at_5 * (lam[1] / 5) ** -power])
        target = np.exp(rng.uniform(np.log(5), np.log(100)))
    else:
        while True:
            lam = np.exp(rng.uniform(np.log(0.1), np.log(30), 2))
            l0 = l0_at_5 * (lam / 5) ** -power * np.exp(rng.normal(0, 0.1, 2))
            slope = np.diff(np.log(l0))[0] / np.diff(np.log(lam))[0]
            if abs(np.diff(np.log(lam))[0]) > 0.4 and slope < -0.2:  # two distinct runs, L0 falling
                break
        lo, hi = np.log(l0.min()), np.log(l0.max())
        if kind == 0:
            target = np.exp(rng.uniform(lo + 0.1 * (hi - lo), hi - 0.1 * (hi - lo)))
        else:
            target = np.exp(rng.choice([lo, hi]) + rng.choice([-1, 1]) * rng.uniform(0.3, 1.5))
            if lo <= np.log(target) <= hi:  # stepped back inside the two runs' range
                target = np.exp(hi + 0.5)
    order = rng.permutation(2)
    lam, l0 = lam[order], l0[order]
    return arrays(lam_a=lam[0], l0_a=l0[0], lam_b=lam[1], l0_b=l0[1], target=target)


def _lambda_solve(case: Case) -> Case:
    a, b = Probe(float(case["lam_a"]), float(case["l0_a"])), Probe(float(case["lam_b"]), float(case["l0_b"]))
    return arrays(value=next_lambda([a, b], float(case["target"])))


def _lambda_judge(case: Case, out: Case) -> str | None:
    got = scalar(out)
    if close(got, scalar(_lambda_solve(case)), rtol=1e-3):
        return None
    lam_a, l0_a, lam_b, l0_b, target = (float(case[k]) for k in _RUNS)
    la, lb, lt = np.log(max(l0_a, 0.01)), np.log(max(l0_b, 0.01)), np.log(target)
    dx = np.log(lam_b) - np.log(lam_a)
    slope = (lb - la) / dx
    with np.errstate(all="ignore"):
        hint = first_match(
            got,
            [
                (
                    lam_b + (target - l0_b) * (lam_b - lam_a) / (l0_b - l0_a),
                    "that is a straight line through the two runs in λ and L0 themselves; L0 falls as a "
                    "power of λ, a straight line on log-log axes: take the secant on log λ and log L0",
                ),
                (
                    np.exp(np.log(lam_b) + (target - l0_b) * dx / (l0_b - l0_a)),
                    "only λ is on a log scale there; take log L0 (and log target) too",
                ),
                (
                    lam_b + (lt - lb) * (lam_b - lam_a) / (lb - la),
                    "only L0 is on a log scale there; take log λ too and return exp of the new log λ",
                ),
                (
                    lam_b * max(l0_b, 0.01) / target,
                    "that is the first guess L0 ∝ 1/λ (slope -1); with two runs, use the slope they "
                    "measure: (log L0_b - log L0_a) / (log λ_b - log λ_a)",
                ),
                (
                    lam_a * max(l0_a, 0.01) / target,
                    "that is the first guess L0 ∝ 1/λ (slope -1); with two runs, use the slope they "
                    "measure: (log L0_b - log L0_a) / (log λ_b - log λ_a)",
                ),
                (
                    np.exp(np.log(lam_a) + (lt - lb) / slope),
                    "the step starts from the wrong run: log λ and log L0 must come from the same run "
                    "(log λ_new = log λ_b + (log target - log L0_b) / slope)",
                ),
                (
                    np.exp(np.log(lam_b) + (lt - la) / slope),
                    "the step starts from the wrong run: log λ and log L0 must come from the same run "
                    "(log λ_new = log λ_b + (log target - log L0_b) / slope)",
                ),
                (
                    np.exp(np.log(lam_b) + (lt - lb) * slope),
                    "multiply by the slope's inverse: the slope is d log L0 / d log λ, and the step is in "
                    "log λ, so divide the gap in log L0 by it",
                ),
                (
                    np.exp(np.log(lam_b) - (lt - lb) / slope),
                    "λ moved the wrong way: L0 falls as λ grows, so a lower target needs a larger λ",
                ),
            ],
            rtol=1e-3,
        )
    if hint:
        return hint
    if min(l0_a, l0_b) == 0:
        return (
            "one run has an L0 of 0 (λ so high that no latent fires): read it as 0.01 inside the log, "
            "log(max(L0, 0.01)), so the step stays finite"
        )
    return (
        "next_lambda is wrong on a case: fit the line through the two runs on log-log axes, slope = "
        "(log L0_b - log L0_a) / (log λ_b - log λ_a), then solve it for log target: "
        "λ = exp(log λ_b + (log target - log L0_b) / slope)"
    )


NEXT_LAMBDA = Exercise(
    name="next_lambda",
    references=("helpers.sae.search.next_lambda",),
    public=lambda: [_lambda_case(np.random.default_rng(s), k) for s, k in ((0, 0), (1, 1), (2, 2))],
    hidden=lambda rng: [_lambda_case(rng, k) for k in (0, 1, 1, 2, int(rng.integers(0, 2)))],
    answer=lambda args, c: arrays(value=float(args[0](*(float(c[k]) for k in _RUNS)))),
    solve=_lambda_solve,
    judge=_lambda_judge,
)

# ----------------------------------------------------------------------------------------------
# prompt_interval(values, prompts, n_boot, seed): 95% bootstrap interval of the mean, resampling prompts


def _prompt_case(rng: np.random.Generator) -> Case:
    """CE loss recovered per text: 10-40 prompts of 2-6 texts each, texts of one prompt alike (a strong
    prompt effect), in shuffled order, prompt ids not 0..n-1."""
    n = int(rng.integers(10, 41))
    sizes = rng.integers(2, 7, n)
    prompts = np.repeat(rng.choice(np.arange(100, 1000), n, replace=False), sizes)
    effect = np.repeat(rng.normal(0, rng.uniform(0.03, 0.08), n), sizes)
    values = rng.uniform(0.85, 0.95) + effect + rng.normal(0, rng.uniform(0.005, 0.02), len(prompts))
    order = rng.permutation(len(prompts))
    return arrays(
        values=values[order],
        prompts=prompts[order],
        n_boot=int(rng.choice([2000, 2500, 3000])),
        seed=int(rng.integers(0, 2**31)),
    )


def _prompt_reference(case: Case):
    return grouped_interval(
        case["values"], case["prompts"], n_boot=int(case["n_boot"]), seed=int(case["seed"])
    )


def _prompt_solve(case: Case) -> Case:
    iv = _prompt_reference(case)
    return arrays(value=iv.value, low=iv.low, high=iv.high)


def _prompt_means_width(case: Case, n_boot: int, seed: int) -> float:
    """Width of the interval a bootstrap of the mean of the prompt means gives (a wrong statistic)."""
    _, inv = np.unique(case["prompts"], return_inverse=True)
    means = np.bincount(inv, weights=case["values"]) / np.bincount(inv)
    iv = bootstrap(lambda i: float(means[i].mean()), len(means), n_boot=n_boot, seed=seed)
    return iv.high - iv.low


def _prompt_judge(case: Case, out: Case) -> str | None:
    low, high = scalar(out, "low"), scalar(out, "high")
    if not (np.isfinite(low) and np.isfinite(high)):
        return "return the interval as two finite numbers (low, high)"
    if low > high:
        return "return (low, high) with low <= high"
    ref = _prompt_reference(case)
    if not low <= ref.value <= high:
        return (
            "the interval does not contain the mean of the values: bootstrap the mean over all texts "
            "(each resample: the mean over every text of the drawn prompts) and take the percentiles "
            "of those means"
        )
    ratio = (high - low) / (ref.high - ref.low)
    if 0.75 <= ratio <= 1.25:
        return None
    n_boot, seed = int(case["n_boot"]), int(case["seed"])
    texts = mean_interval(case["values"], n_boot=n_boot, seed=seed)
    spread = np.quantile(case["values"], [0.025, 0.975])
    if ratio < 0.75 and 0.75 <= (high - low) / (texts.high - texts.low) <= 1.25:
        return (
            "as narrow as resampling texts: the texts of one prompt are alike, not independent; "
            "resample whole prompts (draw prompt ids with replacement, keep all texts of each drawn one)"
        )
    if 0.9 <= (high - low) / _prompt_means_width(case, n_boot, seed) <= 1.1:
        return (
            "each resample's mean is over all texts of the drawn prompts (a prompt with more texts weighs "
            "more), not the mean of the prompt means"
        )
    if ratio > 1.25 and 0.75 <= (high - low) / (spread[1] - spread[0]) <= 1.25:
        return "that is the spread of the values themselves; the interval is for their mean: bootstrap it"
    return (
        "the interval's width is far off: draw n_boot resamples of the prompts (as many prompts as there "
        "are, with replacement), take the mean over the texts of each resample, and return the 2.5th and "
        "97.5th percentiles of those means"
    )


def _prompt_answer(args: tuple, case: Case) -> Case:
    low, high = args[0](case["values"].copy(), case["prompts"].copy(), int(case["n_boot"]), int(case["seed"]))
    return arrays(low=float(low), high=float(high))


PROMPT_INTERVAL = Exercise(
    name="prompt_interval",
    references=("helpers.stats.grouped_interval",),
    public=lambda: [_prompt_case(np.random.default_rng(s)) for s in (0, 1, 2)],
    hidden=lambda rng: [_prompt_case(rng) for _ in range(4)],
    answer=_prompt_answer,
    solve=_prompt_solve,
    judge=_prompt_judge,
    done="contains the mean, about as wide as the reference's, on every public case",
)

# ----------------------------------------------------------------------------------------------
# diagnosis: which mistake is behind each bad run; only the grader, which holds the secret, scores it

TIPS = {
    "lambda too low": "λ too low shows as a huge L0 and most latents dense: hardly anything pushes "
    "activations to zero",
    "learning rate too high": "a learning rate too high kills latents: nearly all dead, L0 near 0, FVU "
    "about 1 (no better than predicting the mean)",
    "width 1x": "width 1x has only d_in latents but trains normally: an L0 between the other two runs', "
    "an FVU clearly below 1 yet above the λ-too-low run's",
}


def _diagnosis_form(diagnosis) -> dict[str, str]:
    if not isinstance(diagnosis, dict) or set(diagnosis) != set(LABELS):
        raise CheckFailed(f"answer with a dict over the runs {list(LABELS)}, e.g. {{'A': 'width 1x', ...}}")
    bad = [v for v in diagnosis.values() if not (isinstance(v, str) and v in DIAGNOSES)]
    if bad:
        raise CheckFailed(f"{bad} are not diagnoses; use one of {list(DIAGNOSES)}")
    return diagnosis


def _diagnosis_answer(args: tuple, case: Case) -> Case:
    diagnosis = _diagnosis_form(args[0])
    runs = [str(r) for r in case["runs"]]
    return arrays(runs=np.asarray(runs), diagnoses=np.asarray([diagnosis[r] for r in runs]))


def _diagnosis_solve(case: Case) -> Case:
    secret = os.environ.get(SECRET_ENV)
    if not secret:
        raise RuntimeError(
            f"{SECRET_ENV} is not set: only the grader, which sets it, can score the diagnosis"
        )
    order = run_order(secret)
    runs = [str(r) for r in case["runs"]]
    return arrays(runs=np.asarray(runs), diagnoses=np.asarray([order[r] for r in runs]))


def _diagnosis_judge(case: Case, out: Case) -> str | None:
    want = dict(zip(*(_diagnosis_solve(case)[k].tolist() for k in ("runs", "diagnoses")), strict=True))
    try:
        got = dict(zip(np.asarray(out["runs"]).tolist(), np.asarray(out["diagnoses"]).tolist(), strict=True))
    except (KeyError, TypeError, ValueError):
        got = {}
    if set(got) != set(want) or not all(isinstance(v, str) for v in got.values()):
        return f"answer with a dict over the runs {list(LABELS)}, each one of {list(DIAGNOSES)}"
    wrong = [got[r] for r in sorted(want) if got[r] != want[r]]
    if not wrong:
        return None
    tip = TIPS.get(wrong[0], f"use one of {list(DIAGNOSES)}")
    return (
        f"{len(wrong)} of the {len(want)} runs misread; the run you called {wrong[0]!r} does not show "
        f"that mistake's signature: {tip}"
    )


DIAGNOSIS = Exercise(
    name="diagnosis",
    references=(),
    public=lambda: [],
    hidden=lambda rng: [arrays(runs=np.asarray(LABELS))],
    answer=_diagnosis_answer,
    solve=_diagnosis_solve,
    judge=_diagnosis_judge,
    done="an answer is recorded for runs " + ", ".join(LABELS) + "; the grader scores it",
)


def check_diagnosis(diagnosis: dict[str, str], bad: BadRuns) -> None:
    """Self-check of the 'diagnosis' exercise: only the answer's form (a dict over the runs, each value
    one of ``DIAGNOSES``); the runs' labels are shuffled by a secret that only the grader holds, so only
    the grader can score it."""
    run_answer(DIAGNOSIS, (diagnosis, bad), DIAGNOSIS.hidden(np.random.default_rng(0))[0])
    passed(DIAGNOSIS.name, DIAGNOSIS.done)


EXERCISES = (NEXT_LAMBDA, PROMPT_INTERVAL, DIAGNOSIS)
check_next_lambda = make_check(NEXT_LAMBDA)
check_prompt_interval = make_check(PROMPT_INTERVAL)
