import numpy as np
import pytest

from helpers.stats import bootstrap, mean_interval


def test_mean_interval_covers_the_truth_and_narrows_with_n():
    rng = np.random.default_rng(0)
    small = mean_interval(rng.normal(1.0, 1.0, 30), seed=1)
    big = mean_interval(rng.normal(1.0, 1.0, 3000), seed=1)
    assert small.low < 1.0 < small.high and big.low < 1.0 < big.high
    assert (big.high - big.low) < (small.high - small.low) / 5
    assert small.n == 30 and small.excludes(0.0)


def test_constant_data_gives_a_point_interval_and_bad_input_is_refused():
    iv = mean_interval(np.full(10, 2.5))
    assert iv.low == iv.high == iv.value == 2.5
    with pytest.raises(ValueError, match="at least 2 units"):
        bootstrap(lambda i: 0.0, 1)


def test_ce_recovered_interval_resamples_whole_texts():
    from helpers.sae.evals import CEScores, ce_recovered_interval

    n = 60
    rng = np.random.default_rng(0)
    toks = rng.integers(20, 80, n)
    clean = 2.0 * toks
    sae = clean + 0.2 * toks * rng.uniform(0.5, 1.5, n)
    zero = 10.0 * toks
    s = CEScores(
        names=["clean", "sae", "zero"],
        nll=np.stack([clean, sae, zero], 1),
        kl=np.zeros((n, 3)),
        n_tokens=toks,
    )
    iv = ce_recovered_interval(s, "sae", "zero", n_boot=500)
    assert iv.value == pytest.approx((10 - sae.sum() / toks.sum()) / 8)
    assert iv.low < iv.value < iv.high < 1.0 and iv.n == n
    # by prompt: 15 prompts of 4 texts; same point value, n = prompts
    prompts = np.repeat(np.arange(15), 4)
    by_prompt = ce_recovered_interval(s, "sae", "zero", n_boot=500, groups=prompts)
    assert by_prompt.value == pytest.approx(iv.value) and by_prompt.n == 15
    with pytest.raises(ValueError, match="one per text"):
        ce_recovered_interval(s, "sae", "zero", groups=prompts[:-1])
    from helpers.sae.evals import ce_delta_interval

    delta = ce_delta_interval(s, "sae", n_boot=500, groups=prompts)
    assert delta.value == pytest.approx((sae.sum() - clean.sum()) / toks.sum()) and delta.n == 15
    assert delta.low < delta.value < delta.high


def test_grouped_interval_resamples_whole_groups():
    from helpers.stats import grouped_interval

    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(20), 3)
    # each group's 3 samples share one group effect: the interval must reflect 20 units, not 60
    values = np.repeat(rng.normal(size=20), 3) + 0.01 * rng.normal(size=60)
    iv = grouped_interval(values, groups, seed=0)
    naive = mean_interval(values, seed=0)
    assert iv.n == 20 and naive.n == 60
    assert iv.value == pytest.approx(values.mean())
    assert (iv.high - iv.low) > 1.4 * (naive.high - naive.low)
    with_nan = values.copy()
    with_nan[0] = np.nan
    assert np.isfinite(grouped_interval(with_nan, groups).value)
    ppl = grouped_interval(np.full(60, np.log(5.0)), groups, transform=np.exp)
    assert ppl.value == pytest.approx(5.0) and ppl.low == pytest.approx(5.0)
    with pytest.raises(ValueError, match="one length"):
        grouped_interval(values, groups[:-1])


def test_group_bootstrap_resamples_whole_groups():
    from helpers.stats import group_bootstrap

    # two prompts of 10 samples each: every sample of a prompt shares its value, so the texts look like
    # 20 independent draws but hold 2; the group interval must be far wider than the text one
    v = np.repeat([0.0, 1.0], 10)
    groups = np.repeat([7, 3], 10)
    seen = []

    def stat(idx):
        seen.append(len(idx))
        return float(v[idx].mean())

    iv = group_bootstrap(stat, groups, n_boot=400, seed=0)
    assert iv.n == 2 and iv.value == 0.5
    assert set(seen) == {20}  # whole groups of 10 drawn twice
    assert iv.low == 0.0 and iv.high == 1.0
    with pytest.raises(ValueError, match="one label per unit"):
        group_bootstrap(stat, np.zeros((2, 2)))
