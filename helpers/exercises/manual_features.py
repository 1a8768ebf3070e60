"""Graded checks of Notebook 04 (manual features)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from helpers.exercises.common import CheckFailed, call, close, passed

# expected answers on the fixed cases below (select_top's; a unit test keeps them equal)
SELECT_TOP = {(5, 2): [5, 9, 16, 12, 22], (8, 1): [5, 9, 16, 12, 10, 14, 22, 0]}


def _top_case():
    rng = np.random.default_rng(0)
    doc_ids = np.repeat(np.arange(4), 12)
    values = rng.uniform(0.1, 1.0, size=24)
    rows = np.sort(rng.choice(len(doc_ids), 24, replace=False))
    # two strong activations next to each other in one document: only one may be picked
    values[[5, 6]] = [5.0, 4.9]
    return values, rows, doc_ids


def check_select_top(fn: Callable) -> None:
    """Exercise: the n largest activations, no two within 2 x radius rows of one document."""
    from helpers.analysis import features

    values, rows, doc_ids = _top_case()
    for n, radius in ((5, 2), (8, 1)):
        want = SELECT_TOP[(n, radius)]
        got = call(fn, values, rows, doc_ids, n, radius, forbidden=[features.select_top])
        try:
            got = [int(g) for g in got]
        except TypeError as err:
            raise CheckFailed("return a list of indices into `rows` (ints), best first") from err
        if got == want:
            continue
        if len(got) != len(want):
            raise CheckFailed(f"asked for n={n} examples, got {len(got)}")
        for a in range(len(got)):
            for b in range(a):
                ra, rb = rows[got[a]], rows[got[b]]
                if doc_ids[ra] == doc_ids[rb] and abs(int(ra) - int(rb)) <= 2 * radius:
                    raise CheckFailed(
                        f"examples {got[b]} and {got[a]} overlap (rows {rb} and {ra} of one document): skip "
                        f"a candidate within 2 x radius of a chosen one in the same document"
                    )
        if sorted(got, key=lambda j: -values[j]) != got:
            raise CheckFailed("order the examples by activation, largest first")
        raise CheckFailed(
            f"expected indices {want}, got {got}: walk the activations from the largest down, greedily"
        )
    passed("select_top", "greedy, non-overlapping, best first on 2 cases")


def check_logit_weights(fn: Callable) -> None:
    """Exercise: a feature's logit weights = its decoder row times the unembedding, W_dec,i · W_Uᵀ."""
    import torch

    from helpers.analysis import features

    g = torch.Generator().manual_seed(0)
    W_enc, W_dec, W_U = (
        torch.randn(6, 10, generator=g),
        torch.randn(10, 6, generator=g),
        torch.randn(15, 6, generator=g),
    )
    for i in (0, 7):
        want = (W_dec[i] @ W_U.T).numpy()
        got = np.asarray(call(fn, W_enc, W_dec, W_U, i, forbidden=[features.logit_weights]), dtype=np.float64)
        if got.shape == want.shape and close(got, want):
            continue
        if got.shape == (6,):
            raise CheckFailed(
                "forgot the unembedding: that is the decoder direction itself; multiply it by W_U.T to get "
                "one weight per token"
            )
        if got.shape == want.shape and close(got, (W_enc[:, i] @ W_U.T).numpy()):
            raise CheckFailed(
                "used the encoder instead of the decoder: the direction a feature writes into the residual "
                "stream is its decoder row W_dec[i]"
            )
        raise CheckFailed(f"expected a vector of {want.shape[0]} token weights equal to W_dec[i] @ W_U.T")
    passed("logit_weights", "decoder row through the unembedding, 2 features")
