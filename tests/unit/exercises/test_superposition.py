import numpy as np
import pytest

from helpers.exercises import superposition as checks
from helpers.exercises.common import CheckFailed
from helpers.sae import superposition


def right(x, x_hat, imp):
    return ((x - x_hat) ** 2 * imp).sum(-1).mean()


def test_reference_answer_passes(capsys):
    checks.check_toy_loss(right)
    assert capsys.readouterr().out == "PASSED toy_loss: matches the expected values on 2 synthetic cases\n"


def test_a_numpy_answer_passes():
    checks.check_toy_loss(
        lambda x, x_hat, imp: np.mean(np.sum(imp.numpy() * (x.numpy() - x_hat.numpy()) ** 2, axis=1))
    )


def test_unanswered_exercise():
    def todo(x, x_hat, imp):
        raise NotImplementedError()

    with pytest.raises(CheckFailed, match="not answered yet"):
        checks.check_toy_loss(todo)


def test_calling_the_reference_fails():
    with pytest.raises(CheckFailed, match="asks for your own code"):
        checks.check_toy_loss(superposition.toy_loss)
    from helpers.sae.superposition import toy_loss as mine  # bound before the check: still refused

    with pytest.raises(CheckFailed, match="asks for your own code"):
        checks.check_toy_loss(lambda x, x_hat, imp: mine(x, x_hat, imp))
    checks.check_toy_loss(right)  # and switched back on afterwards
    assert float(superposition.toy_loss(np.ones((2, 2)), np.zeros((2, 2)), np.ones(2))) == 2.0


@pytest.mark.parametrize(
    ("wrong", "hint"),
    [
        (lambda x, xh, imp: ((x - xh) ** 2).sum(-1).mean(), "forgot the importance weights"),
        (
            lambda x, xh, imp: ((x - xh) ** 2 * imp).mean(),
            "sum the weighted squared errors over the features",
        ),
        (lambda x, xh, imp: ((x - xh) ** 2 * imp).sum(), "do not sum them"),
        (lambda x, xh, imp: ((x - xh) ** 2 * imp).mean(-1).sum(), "sum and mean swapped"),
        (lambda x, xh, imp: ((x - xh) ** 2 * imp**2).sum(-1).mean(), "importance is squared"),
        (lambda x, xh, imp: ((imp * (x - xh)) ** 2).sum(-1).mean(), "importance is squared"),
        (lambda x, xh, imp: ((x - xh) ** 2 * imp / imp.sum()).sum(-1).mean(), "do not normalise"),
        (lambda x, xh, imp: ((x - xh).abs() * imp).sum(-1).mean(), "square the error"),
        (lambda x, xh, imp: ((x - xh) ** 2 * imp).sum(-1), "one loss per row"),
        (lambda x, xh, imp: ((x - xh) ** 2 * imp).mean(0), "one value per feature"),
        (lambda x, xh, imp: "a string", "return one number"),
        (lambda x, xh, imp: 1.0, "expected"),
    ],
)
def test_each_mistake_is_named(wrong, hint):
    with pytest.raises(CheckFailed, match=hint):
        checks.check_toy_loss(wrong)


def test_stored_constants_are_the_reference_values():
    for seed, want in zip((0, 1), checks.TOY_LOSSES, strict=True):
        x, x_hat, imp = checks._toy_case(seed)
        assert float(superposition.toy_loss(x, x_hat, imp)) == pytest.approx(want, rel=1e-12)
