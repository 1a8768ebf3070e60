"""Graded exercise of Notebook 06's attribution: activation × gradient, summed over positions."""

from __future__ import annotations

import numpy as np
import torch

from helpers.analysis import attribution
from helpers.exercises.common import Case, Exercise, arrays, close, first_match, make_check

# ----------------------------------------------------------------------------------------------
# attribute(f, grad): per feature, Σ_t f[t, i] · grad[t, i], for f, grad [T, d_sae]


def _attribute_case(rng: np.random.Generator) -> Case:
    """Sparse non-negative activations and signed gradients, [T, d_sae] with T != d_sae, in multiples of
    0.25 (exact in float32). Planted: a feature active at two positions with gradients of opposite sign
    (abs before and after the sum differ), a feature active only where its gradient is negative (a
    negative attribution), a feature active at the first and at the last position, one never active."""
    t = int(rng.integers(3, 9))
    d = int(rng.integers(5, 15))
    if d == t:
        d += 1
    f = np.where(rng.random((t, d)) < 0.4, rng.integers(1, 13, (t, d)) / 4, 0.0)
    g = rng.integers(-8, 9, (t, d)) / 4
    mixed, negative, ends, never = rng.permutation(d)[:4]
    f[:, mixed] = 0.0
    f[[0, 1], mixed] = [1.5, 2.5]
    g[[0, 1], mixed] = [1.0, -0.5]
    f[:, negative] = 0.0
    f[t - 1, negative] = 2.0
    g[t - 1, negative] = -1.25
    f[[0, t - 1], ends] = [1.0, 0.75]
    g[[0, t - 1], ends] = [0.5, 1.5]
    f[:, never] = 0.0
    return arrays(f=f.astype(np.float32), grad=g.astype(np.float32))


def _attribute_solve(case: Case) -> Case:
    return arrays(value=attribution.attribute(torch.from_numpy(case["f"]), torch.from_numpy(case["grad"])))


def _attribute_answer(args: tuple, case: Case) -> Case:
    f, g = torch.from_numpy(case["f"].copy()), torch.from_numpy(case["grad"].copy())
    return arrays(value=args[0](f, g))


def _attribute_judge(case: Case, out: Case) -> str | None:
    f, g = case["f"].astype(np.float64), case["grad"].astype(np.float64)
    want = np.asarray(_attribute_solve(case)["value"], dtype=np.float64)
    got = out.get("value")
    if close(got, want):
        return None
    try:
        shape = np.asarray(got, dtype=np.float64).shape
        if got is None or np.asarray(got).dtype.kind not in "biuf":
            raise TypeError("not numbers")
    except (TypeError, ValueError):
        return "return a tensor (or array) of numbers, one attribution per feature: shape [d_sae]"
    fg = f * g
    hint = first_match(
        got,
        [
            (g.sum(0), "that is the gradient alone; multiply it by the activation f (activation × gradient)"),
            (f.sum(0), "that is the activation alone; multiply it by the gradient ∂m/∂f"),
            (
                -fg.sum(0),
                "the sign is flipped: the attribution is +Σ f·grad, the estimated drop of the metric when "
                "the feature is removed",
            ),
            (
                np.abs(fg).sum(0),
                "no absolute values: a feature active at two positions can push the metric up at one and "
                "down at the other, and those cancel",
            ),
            (np.abs(fg.sum(0)), "keep the sign: a feature that lowers the metric has a negative attribution"),
            (
                fg.mean(0),
                "sum over positions, do not average: removing the feature removes it at every position",
            ),
            (
                fg[-1],
                "sum over every position, not only the last one: earlier positions feed the prediction too",
            ),
            (
                fg[1:].sum(0),
                "a row is missing: sum over every row of f (dim 0), the first row included; f holds only "
                "the spliced positions (the attention sink is already left out), so every row counts",
            ),
            (fg[:-1].sum(0), "a position is missing: sum over all positions (dim 0), including the last"),
            (fg.sum(1), "that sums over features (one number per position); sum over positions: dim 0"),
        ],
    )
    if hint:
        return hint
    if shape != want.shape:
        return (
            f"return one number per feature, shape [d_sae] (here d_sae = {f.shape[1]}), got shape "
            f"{shape}: multiply f and grad elementwise, then sum over positions (.sum(0))"
        )
    return (
        "attribute is wrong on a case: a_i = Σ_t f[t, i] · grad[t, i], the elementwise product of f "
        "and grad summed over positions: (f * grad).sum(0)"
    )


ATTRIBUTE = Exercise(
    name="attribute",
    references=("helpers.analysis.attribution.attribute",),
    public=lambda: [_attribute_case(np.random.default_rng(s)) for s in (0, 1, 2)],
    hidden=lambda rng: [_attribute_case(rng) for _ in range(4)],
    answer=_attribute_answer,
    solve=_attribute_solve,
    judge=_attribute_judge,
    done="activation × gradient summed over positions",
)

EXERCISES = (ATTRIBUTE,)
check_attribute = make_check(ATTRIBUTE)
