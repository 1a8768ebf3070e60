"""Graded exercise of Notebook 07 §1 (architectures against ground truth): one-to-one recovery (MCC).

The student scores a decoder against known feature directions from their cosine matrix. The judgement it
asks for: a latent may be credited for one feature only. Taking each feature's best latent lets one latent
that sits between two correlated features (or a parent and its child) count twice, and an SAE with one
blurry latent per family scores as well as one that learned every member."""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment

from helpers.exercises.common import Case, Exercise, arrays, close, first_match, make_check, scalar


def _reference(cos: np.ndarray) -> float:
    rows, cols = linear_sum_assignment(cos, maximize=True)
    out = np.zeros(cos.shape[0])
    out[rows] = cos[rows, cols]
    return float(out.mean())


def _greedy(cos: np.ndarray) -> float:
    """Features in order, each taking its best latent still free: a one-to-one match, but not the best one."""
    free = np.ones(cos.shape[1], dtype=bool)
    got = np.zeros(cos.shape[0])
    for i in range(cos.shape[0]):
        if not free.any():
            break
        j = int(np.argmax(np.where(free, cos[i], -np.inf)))
        got[i], free[j] = cos[i, j], False
    return float(got.mean())


def _variants(cos: np.ndarray) -> list[tuple[float, str]]:
    rows, cols = linear_sum_assignment(cos, maximize=True)
    matched = cos[rows, cols]
    return [
        (
            float(cos.max(1).mean()),
            "each feature took its best latent, so one latent can be credited for two features: match them "
            "one to one (scipy.optimize.linear_sum_assignment with maximize=True)",
        ),
        (
            float(cos.max(0).mean()),
            "that is each latent's best feature averaged over latents: the score is over the true features",
        ),
        (
            _greedy(cos),
            "a greedy match (each feature in turn takes its best free latent) is one to one but not the best "
            "match: maximise the summed cosine over all pairs at once",
        ),
        (
            float(np.abs(cos).max(1).mean()),
            "cosines are signed: a latent pointing against a feature does not recover it (no abs)",
        ),
        (
            float(cos[linear_sum_assignment(cos)].mean()),
            "linear_sum_assignment minimises by default: pass maximize=True",
        ),
    ] + (
        [
            (
                float(matched.mean()),
                "with fewer latents than features, an unmatched feature counts as 0: divide by the number "
                "of features",
            )
        ]
        if cos.shape[1] < cos.shape[0]
        else []
    )


def _case(rng: np.random.Generator, fewer_latents: bool = False) -> Case:
    """A cosine matrix [features, latents] where some latents sit between two features (so a best-per-feature
    score double-counts), some cosines are negative, and (``fewer_latents``) fewer latents than features;
    drawn again until every usual mistake differs from the right value."""
    while True:
        n = int(rng.integers(4, 9))
        m = n - int(rng.integers(1, 3)) if fewer_latents else n + int(rng.integers(0, 4))
        cos = rng.uniform(-0.6, 0.4, size=(n, m))
        for j, i in enumerate(rng.permutation(n)[: min(n, m)]):
            cos[i, j] = rng.uniform(0.6, 0.98)
        shared = int(rng.integers(m))  # a latent between two features: best for both
        a, b = rng.choice(n, size=2, replace=False)
        cos[a, shared] = cos[b, shared] = rng.uniform(0.9, 0.99)
        neg = rng.integers(n), rng.integers(m)
        cos[neg] = -0.995
        cos = cos[:, rng.permutation(m)]
        want = _reference(cos)
        if all(abs(v - want) > 1e-3 for v, _ in _variants(cos)):
            return arrays(cos=cos.round(4))


def _solve(case: Case) -> Case:
    return arrays(value=_reference(case["cos"]))


def _judge(case: Case, out: Case) -> str | None:
    got = scalar(out)
    if close(got, scalar(_solve(case))):
        return None
    return first_match(got, _variants(case["cos"])) or (
        "the score is wrong on a case: match features to latents one to one so that the summed cosine is "
        "largest, then average the matched cosines over all true features (0 for a feature left unmatched)"
    )


MATCHED_RECOVERY = Exercise(
    name="matched_recovery",
    references=("helpers.sae.synthetic.recovery",),
    public=lambda: [
        arrays(cos=np.array([[0.95, 0.9, -0.2], [0.92, 0.1, 0.3], [-0.99, 0.2, 0.7]])),
        _case(np.random.default_rng(1)),
        _case(np.random.default_rng(2), fewer_latents=True),
    ],
    hidden=lambda rng: [_case(rng), _case(rng), _case(rng, fewer_latents=True), _case(rng)],
    answer=lambda args, c: arrays(value=float(args[0](c["cos"].copy()))),
    solve=_solve,
    judge=_judge,
)

check_matched_recovery = make_check(MATCHED_RECOVERY)
EXERCISES = (MATCHED_RECOVERY,)
