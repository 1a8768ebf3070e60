import numpy as np
import pytest
import torch

from helpers.analysis.attribution import attribute
from helpers.exercises import attribution as checks
from helpers.exercises.common import CheckFailed


def reference(f, grad):
    return (f * grad).sum(0)


def test_reference_answer_passes(capsys):
    checks.check_attribute(reference)
    checks.check_attribute(lambda f, g: (f * g).sum(0).numpy().tolist())  # any array-like is accepted
    out = capsys.readouterr().out.splitlines()
    assert out == ["PASSED attribute: activation × gradient summed over positions, on 2 cases"] * 2


def test_stored_constants_are_what_the_helpers_compute():
    for (f, g), want in zip(checks.CASES, checks.EXPECTED, strict=True):
        got = attribute(torch.tensor(f), torch.tensor(g))
        np.testing.assert_array_equal(got.numpy(), np.asarray(want, dtype=np.float32))


def test_unanswered_exercise():
    def todo(f, grad):
        raise NotImplementedError()

    with pytest.raises(CheckFailed, match="not answered yet"):
        checks.check_attribute(todo)


def test_calling_the_helpers_reference_fails():
    with pytest.raises(CheckFailed, match="asks for your own code"):
        checks.check_attribute(lambda f, g: attribute(f, g))
    checks.check_attribute(reference)  # the reference is switched back on afterwards
    assert torch.equal(attribute(torch.ones(2, 3), torch.ones(2, 3)), torch.full((3,), 2.0))


@pytest.mark.parametrize(
    ("wrong", "hint"),
    [
        (lambda f, g: g.sum(0), "gradient alone"),
        (lambda f, g: f.sum(0), "activation alone"),
        (lambda f, g: -(f * g).sum(0), "sign is flipped"),
        (lambda f, g: (f * g).abs().sum(0), "no absolute values"),
        (lambda f, g: (f * g).sum(0).abs(), "keep the sign"),
        (lambda f, g: (f * g).mean(0), "do not average"),
        (lambda f, g: f[-1] * g[-1], "not only the last one"),
        (lambda f, g: (f * g)[1:].sum(0), "including the first"),
        (lambda f, g: (f * g)[:-1].sum(0), "including the last"),
        (lambda f, g: (f * g).sum(1), "sums over features"),
        (lambda f, g: f.T @ g, "one number per feature"),
        (lambda f, g: (f * g).sum(), "one number per feature"),
        (lambda f, g: (f * g).sum(0) + 1, "expected"),
        (lambda f, g: "nonsense", "no array"),
    ],
)
def test_each_mistake_is_named(wrong, hint):
    with pytest.raises(CheckFailed, match=hint):
        checks.check_attribute(wrong)
