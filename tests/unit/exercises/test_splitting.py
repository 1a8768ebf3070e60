"""The best_match check (notebook 04, feature splitting): the solution passes, every hint fires for its
mistake, calling the reference fails, and the stored expected values are the reference's."""

import numpy as np
import pytest

from helpers.analysis import splitting
from helpers.exercises import splitting as ex
from helpers.exercises.common import CheckFailed


def unit(W):
    return W / np.linalg.norm(W, axis=1, keepdims=True)


def solution(W_small, W_large):  # the notebook's solution
    cos = unit(np.asarray(W_small)) @ unit(np.asarray(W_large)).T
    return cos.argmax(axis=1), cos.max(axis=1)


def test_the_solution_passes(capsys):
    ex.check_best_match(solution)
    assert (
        capsys.readouterr().out
        == "PASSED best_match: best signed cosine per small row on 2 synthetic cases\n"
    )


def test_a_torch_solution_passes_too():
    import torch

    def with_torch(W_small, W_large):
        a = torch.nn.functional.normalize(torch.as_tensor(W_small, dtype=torch.float32), dim=1)
        b = torch.nn.functional.normalize(torch.as_tensor(W_large, dtype=torch.float32), dim=1)
        cos, idx = (a @ b.T).max(dim=1)
        return idx, cos

    ex.check_best_match(with_torch)


def test_unanswered():
    def todo(W_small, W_large):
        raise NotImplementedError()

    with pytest.raises(CheckFailed, match="not answered"):
        ex.check_best_match(todo)


def _dot(A, B):
    d = A @ B.T
    return d.argmax(1), d.max(1)


def _large_only(A, B):
    d = A @ unit(B).T
    return d.argmax(1), d.max(1)


def _small_only(A, B):
    d = unit(A) @ B.T
    return d.argmax(1), d.max(1)


def _wrong_axis(A, B):
    c = unit(A) @ unit(B).T
    return c.argmax(0), c.max(0)


def _abs(A, B):
    c = np.abs(unit(A) @ unit(B).T)
    return c.argmax(1), c.max(1)


def _columns(A, B):
    c = (A / np.linalg.norm(A, axis=0)) @ (B / np.linalg.norm(B, axis=0)).T
    return c.argmax(1), c.max(1)


def _argmin(A, B):
    c = unit(A) @ unit(B).T
    return c.argmin(1), c.min(1)


def _mean_not_max(A, B):
    c = unit(A) @ unit(B).T
    return c.argmax(1), c.mean(1)


@pytest.mark.parametrize(
    ("wrong", "hint"),
    [
        (_dot, "plain dot product"),
        (_small_only, "normalise the rows of W_large"),
        (_large_only, "normalise the rows of W_small"),
        (_wrong_axis, "argmax over the wrong axis"),
        (_abs, r"took \|cosine\|"),
        (_columns, "normalised the columns"),
        (_argmin, "argmin"),
        (_mean_not_max, "the right rows but not their cosines"),
        (lambda A, B: solution(A, B)[0], "return two arrays"),
        (lambda A, B: (np.zeros(len(A), int), np.zeros(len(A))), "expected indices"),
    ],
)
def test_each_mistake_gets_its_hint(wrong, hint):
    with pytest.raises(CheckFailed, match=hint):
        ex.check_best_match(wrong)


@pytest.mark.parametrize("ref", [splitting.best_match, splitting.best_matches, splitting.unit_rows])
def test_calling_the_reference_fails(ref):
    def cheat(W_small, W_large):
        if ref is splitting.best_matches:
            m = ref(W_small, W_large, k=1)
            return m.ids[:, 0], m.cos[:, 0]
        if ref is splitting.unit_rows:
            c = (ref(W_small) @ ref(W_large).T).numpy()
            return c.argmax(1), c.max(1)
        return ref(W_small, W_large)

    with pytest.raises(CheckFailed, match="asks for your own code"):
        ex.check_best_match(cheat)
    assert splitting.best_match(np.eye(2), np.eye(2))[0].tolist() == [0, 1]  # restored after the check


def test_stored_expected_values_equal_the_reference():
    for (A, B), (want_idx, want_cos) in zip(ex._cases(), ex.BEST_MATCH, strict=True):
        idx, cos = splitting.best_match(A, B)
        assert idx.tolist() == list(want_idx)
        np.testing.assert_allclose(cos, want_cos, rtol=1e-5)
        # no near-ties: float32 and float64 answers agree on the indices
        c = np.sort(unit(A) @ unit(B).T, axis=1)
        assert (c[:, -1] - c[:, -2]).min() > 0.05


def test_every_mistake_differs_from_the_answer_on_some_case():
    for wrong in (_dot, _small_only, _large_only, _abs, _columns, _argmin):
        assert any(
            not np.array_equal(wrong(A, B)[0], want_idx) or not np.allclose(wrong(A, B)[1], want_cos)
            for (A, B), (want_idx, want_cos) in zip(ex._cases(), ex.BEST_MATCH, strict=True)
        )
