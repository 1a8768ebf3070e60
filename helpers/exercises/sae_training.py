"""Graded checks of Notebook 03 (SAE training)."""

from __future__ import annotations

from collections.abc import Callable

from helpers.exercises.common import CheckFailed, call, close, passed
from helpers.sae.bad_runs import DIAGNOSES, BadRuns, answer_hash


def _l1_case(seed: int):
    import torch

    g = torch.Generator().manual_seed(seed)
    x = torch.randn(6, 5, generator=g)
    x_hat = x + 0.3 * torch.randn(6, 5, generator=g)
    f = torch.relu(torch.randn(6, 8, generator=g))
    W_dec = torch.randn(8, 5, generator=g) * torch.linspace(0.2, 3.0, 8).unsqueeze(1)
    return x, x_hat, f, W_dec


def check_l1_loss(fn: Callable) -> None:
    """Exercise: mean_b ||x - x̂||² + λ · mean_b Σ_i f_i ||W_dec,i||."""
    lam = 0.7
    for seed in (0, 1):
        x, x_hat, f, W_dec = _l1_case(seed)
        norms = W_dec.norm(dim=1)
        mse = (x - x_hat).pow(2).sum(-1).mean()
        want = float(mse + lam * (f * norms).sum(-1).mean())
        got = call(fn, x, x_hat, f, W_dec, lam)
        got = float(got)
        if close(got, want):
            continue
        hints = [
            (
                float(mse + lam * f.sum(-1).mean()),
                "forgot the decoder norm: weight each f_i by ||W_dec,i|| (W_dec.norm(dim=1)), or the SAE can "
                "shrink f and grow W_dec to dodge the penalty",
            ),
            (
                float((x - x_hat).pow(2).mean() + lam * (f * norms).sum(-1).mean()),
                "sum vs mean: sum the squared error over dimensions, then average over tokens "
                "(.sum(-1).mean())",
            ),
            (
                float((x - x_hat).pow(2).sum() + lam * (f * norms).sum()),
                "sum vs mean: average over the tokens of the batch, do not sum them",
            ),
            (
                float(mse + lam * (f * norms.pow(2)).sum(-1).mean()),
                "use the norm ||W_dec,i||, not its square",
            ),
            (
                float((x - x_hat).norm(dim=-1).mean() + lam * (f * norms).sum(-1).mean()),
                "the reconstruction term is the squared norm ||x - x̂||², not the norm",
            ),
        ]
        for value, hint in hints:
            if close(got, value):
                raise CheckFailed(hint)
        raise CheckFailed(
            f"loss gave {got:.4f}, expected {want:.4f}; mean over tokens of ||x - x̂||² plus λ times the "
            f"mean over tokens of Σ_i f_i ||W_dec,i||"
        )
    passed("l1_loss", "matches the reference on 2 cases")


def check_diagnosis(answer: dict[str, str], runs: BadRuns) -> None:
    """Exercise: name the mistake behind each mis-set run (labels -> one of ``DIAGNOSES``). The
    answer is compared with salted hashes: the notebook never holds it in a readable variable."""
    labels = sorted(runs.key)
    if not isinstance(answer, dict) or set(answer) != set(labels):
        raise CheckFailed(f"answer with a dict over the runs {labels}, e.g. {{'A': 'width 1x', ...}}")
    bad = [v for v in answer.values() if v not in DIAGNOSES]
    if bad:
        raise CheckFailed(f"{bad} are not diagnoses; use one of {list(DIAGNOSES)}")
    wrong = [k for k in labels if answer_hash(runs.salt, k, answer[k]) != runs.key[k]]
    if wrong:
        tips = {
            "lambda too low": "λ too low shows as a huge L0 and many dense latents: nothing pushes "
            "activations to zero",
            "learning rate too high": "a learning rate too high kills latents: nearly all dead, L0 near 0, "
            "FVU about 1",
            "width 1x": "width 1x has only d_in latents: an L0 between the other two runs', many dead "
            "latents and a poor reconstruction",
        }
        k = wrong[0]
        raise CheckFailed(
            f"run(s) {', '.join(wrong)} misread; run {k} is not {answer[k]!r}: " + tips[answer[k]]
        )
    passed("diagnosis", f"all {len(labels)} runs diagnosed")
