import math

import pytest

from helpers.sae.search import Probe, closest, next_lambda, search_lambda


def test_secant_finds_a_power_law_target():
    l0_at = lambda lam: 300.0 * lam**-1.4  # noqa: E731
    calls = []

    def run(lam):
        calls.append(lam)
        return l0_at(lam)

    probes = search_lambda(run, Probe(5.0, l0_at(5.0)), target=32, tries=3, rel_tol=0.01)
    assert len(calls) <= 3
    best = closest(probes, 32)
    assert abs(best.l0 / 32 - 1) <= 0.01
    assert probes[0] == Probe(5.0, l0_at(5.0))


def test_first_guess_is_inverse_proportional_and_a_close_start_trains_nothing():
    assert next_lambda([Probe(2.0, 64.0)], 32.0) == pytest.approx(4.0)
    ran = []
    probes = search_lambda(lambda lam: ran.append(lam) or 1.0, Probe(5.0, 33.0), target=32, rel_tol=0.1)
    assert ran == [] and probes == [Probe(5.0, 33.0)]


def test_a_rising_slope_falls_back_to_the_inverse_guess():
    lam = next_lambda([Probe(2.0, 40.0), Probe(4.0, 50.0)], 25.0)
    assert lam == pytest.approx(4.0 * 50.0 / 25.0)
    assert math.isfinite(lam)


def test_bad_input():
    with pytest.raises(ValueError, match="at least one"):
        next_lambda([], 32)
    with pytest.raises(ValueError, match="target"):
        next_lambda([Probe(1.0, 10.0)], 0)
    with pytest.raises(ValueError, match="tries"):
        search_lambda(lambda lam: 1.0, Probe(1.0, 10.0), 5, tries=0)


def test_an_l0_of_zero_still_steps():
    lam = next_lambda([Probe(5.0, 0.0)], 32.0)
    assert math.isfinite(lam) and lam < 5.0
    assert closest([Probe(5.0, 0.0), Probe(1.0, 20.0)], 32).lam == 1.0


def test_a_text_target_or_a_nan_run_is_one_line():
    with pytest.raises(ValueError, match="the target L0 = '32' must be a number"):  # was a raw TypeError
        next_lambda([Probe(1.0, 10.0)], "32")
    with pytest.raises(ValueError, match="the L0 of the run at λ = .* = nan must be a finite number"):
        search_lambda(lambda lam: float("nan"), Probe(1.0, 10.0), 32)  # a diverged probe was kept silently
