"""The best_match exercise (notebook 04, feature splitting): the notebook's solution passes, the reference
judges itself right, every hint fires for its mistake, calling a reference fails, a lookup table of the
public answers fails the hidden cases, and no hint gives the answer away."""

import numpy as np
import pytest

from helpers.analysis import splitting
from helpers.exercises import splitting as ex
from helpers.exercises.common import CheckFailed, judge_all, run_answer
from helpers.sae import superposition

EX = ex.BEST_MATCH


def unit(W):
    return W / np.linalg.norm(W, axis=1, keepdims=True)


def solution(W_small, W_large):  # the notebook's solution
    cos = unit(np.asarray(W_small)) @ unit(np.asarray(W_large)).T
    return cos.argmax(axis=1), cos.max(axis=1)


def hidden_cases(seeds=range(6)):
    return [c for s in seeds for c in EX.hidden(np.random.default_rng(1000 + s))]


def test_the_solution_passes(capsys):
    ex.check_best_match(solution)
    assert (
        capsys.readouterr().out
        == "PASSED best_match: best signed cosine per small row on every public case (3)\n"
    )


def test_a_torch_solution_passes_too():
    import torch

    def with_torch(W_small, W_large):
        a = torch.nn.functional.normalize(torch.as_tensor(W_small, dtype=torch.float32), dim=1)
        b = torch.nn.functional.normalize(torch.as_tensor(W_large, dtype=torch.float32), dim=1)
        cos, idx = (a @ b.T).max(dim=1)
        return idx, cos

    ex.check_best_match(with_torch)
    for case in hidden_cases():
        assert EX.judge(case, run_answer(EX, (with_torch,), case)) is None


def test_reference_and_solution_are_right_on_every_case():
    for case in EX.public() + hidden_cases():
        assert EX.judge(case, EX.solve(case)) is None
        assert EX.judge(case, run_answer(EX, (solution,), case)) is None


def test_cases_have_no_near_ties_and_hold_the_traps():
    for case in EX.public() + hidden_cases():
        A, B = case["W_small"], case["W_large"]
        c = np.sort(unit(A) @ unit(B).T, axis=1)
        assert (c[:, -1] - c[:, -2]).min() > 0.05  # float32 and float64 answers agree on the indices
        assert not np.array_equal((A @ B.T).argmax(1), solution(A, B)[0])  # the dot product is caught
        assert len(A) != len(B)


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


MISTAKES = [
    (_dot, "plain dot product"),
    (_small_only, "normalise the rows of W_large"),
    (_large_only, "normalise the rows of W_small"),
    (_wrong_axis, "argmax over the wrong axis"),
    (_abs, r"took \|cosine\|"),
    (_columns, "normalised the columns"),
    (_argmin, "argmin"),
    (_mean_not_max, "the right rows but not their cosines"),
    (lambda A, B: solution(A, B)[0], "return two arrays"),
    (lambda A, B: (solution(A, B)[0][:-1], solution(A, B)[1][:-1]), "one index and one cosine per row"),
    (lambda A, B: (np.zeros(len(A), int), np.zeros(len(A))), "best_match is wrong on a case"),
]


@pytest.mark.parametrize(("wrong", "hint"), MISTAKES)
def test_each_mistake_gets_its_hint(wrong, hint):
    with pytest.raises(CheckFailed, match=hint) as err:
        ex.check_best_match(wrong)
    for case in EX.public():
        want = EX.solve(case)
        for text in (str(want["idx"].tolist()), str(np.round(want["cos"], 3).tolist())):
            assert text not in str(err.value)


@pytest.mark.parametrize(("wrong", "hint"), MISTAKES[:8])
def test_mistakes_fail_the_hidden_cases(wrong, hint):
    for seed in range(5):
        cases = EX.hidden(np.random.default_rng(seed))
        outputs = [run_answer(EX, (wrong,), c) for c in cases]
        assert judge_all(EX, cases, outputs) is not None


@pytest.mark.parametrize("ref", EX.references)
def test_calling_a_reference_fails(ref):
    def cheat(W_small, W_large):
        if ref.endswith("best_matches"):
            m = splitting.best_matches(W_small, W_large, k=1)
            return m.ids[:, 0], m.cos[:, 0]
        if ref.endswith("unit_rows"):
            c = (splitting.unit_rows(W_small) @ splitting.unit_rows(W_large).T).numpy()
            return c.argmax(1), c.max(1)
        if ref.endswith("match_features"):
            cos, idx = superposition.match_features(np.asarray(W_small).T, np.asarray(W_large))
            return idx, cos
        return splitting.best_match(W_small, W_large)

    with pytest.raises(CheckFailed, match="asks for your own code"):
        ex.check_best_match(cheat)
    assert splitting.best_match(np.eye(2), np.eye(2))[0].tolist() == [0, 1]  # restored after the check
    assert superposition.match_features(np.eye(2), np.eye(2))[1].tolist() == [0, 1]


def test_match_features_computes_the_same_thing():
    """Why it is a reference too: on the columns of W_small.T it gives best_match's cosines and rows."""
    for case in EX.public():
        A, B = case["W_small"], case["W_large"]
        cos, idx = superposition.match_features(A.T, B)
        want = EX.solve(case)
        assert idx.tolist() == want["idx"].tolist()
        np.testing.assert_allclose(cos, want["cos"], rtol=1e-5)


def test_lookup_table_fails_the_hidden_cases():
    table = {(c["W_small"].shape, c["W_large"].shape): EX.solve(c) for c in EX.public()}
    first = next(iter(table.values()))

    def lookup(W_small, W_large):
        out = table.get((np.shape(W_small), np.shape(W_large)), first)
        return out["idx"], out["cos"]

    ex.check_best_match(lookup)
    cases = EX.hidden(np.random.default_rng(12345))
    outputs = [run_answer(EX, (lookup,), c) for c in cases]
    assert judge_all(EX, cases, outputs) is not None


def test_judge_survives_malformed_outputs():
    case = EX.public()[0]
    for out in (
        {},
        {"idx": np.array(["a"]), "cos": np.array([1.0])},
        {"idx": np.zeros(3, int), "cos": np.zeros(2)},
        {"idx": np.zeros(3, int), "cos": np.full(3, np.nan)},
    ):
        assert isinstance(EX.judge(case, out), str)
