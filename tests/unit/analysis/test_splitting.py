"""Feature splitting by decoder-direction cosine: planted splits are recovered and counted."""

import numpy as np
import pytest
import torch

from helpers.analysis import splitting as sp


def planted(d: int = 32, n_small: int = 6, n_noise: int = 10, seed: int = 0):
    """A small dictionary of orthonormal directions and a wider one in which feature 0 splits into
    2 children (cos 0.89 each), feature 1 into 3 (cos 0.82), feature 2 survives unchanged (one child,
    cos 1, stored 3x longer), feature 3 only has a weak relative (cos 0.45), and the rest of the wider
    dictionary is orthogonal to every small feature. Returns (W_small, W_large, where), ``where``
    mapping a small feature to its children's rows in W_large."""
    rng = np.random.default_rng(seed)
    Q, _ = np.linalg.qr(rng.normal(size=(d, d)))
    small, other = Q[:n_small], Q[n_small:]  # other: orthogonal to every small direction

    def mix(u, v, a):  # unit vector with cosine a to u (v orthogonal to u)
        return a * u + np.sqrt(1 - a * a) * v

    rows = [
        mix(small[0], other[0], 0.894),
        mix(small[0], other[1], 0.894),
        mix(small[1], other[2], 0.82),
        mix(small[1], other[3], 0.82),
        mix(small[1], other[4], 0.82),
        3.0 * small[2],
        mix(small[3], other[5], 0.45),
    ]
    noise = rng.normal(size=(n_noise, d - n_small)) @ other[: d - n_small]
    large = np.vstack([rows, noise])
    perm = rng.permutation(len(large))
    large = large[perm]
    inv = np.argsort(perm)
    where = {0: sorted(inv[[0, 1]]), 1: sorted(inv[[2, 3, 4]]), 2: [inv[5]], 3: [inv[6]]}
    return small * rng.uniform(0.5, 2.0, size=(n_small, 1)), large, where


def test_planted_splits_are_recovered():
    W_small, W_large, where = planted()
    s = sp.compare_widths(W_small, {"wide": W_large}, small="narrow", k=3)
    m = s.matches["wide"]
    assert m.ids.shape == (6, 3) and m.cos.shape == (6, 3)
    assert set(m.ids[0, :2]) == set(where[0]) and set(m.ids[1]) == set(where[1])
    assert m.ids[2, 0] == where[2][0] and m.cos[2, 0] == pytest.approx(1.0, abs=1e-5)
    assert m.cos[0, :2] == pytest.approx([0.894, 0.894], abs=1e-4)
    assert np.all(np.diff(m.cos, axis=1) <= 1e-6)  # best first
    np.testing.assert_array_equal(s.counts["wide"], [2, 3, 1, 0, 0, 0])
    for i, kids in where.items():
        got = sp.children(W_small, W_large, i)
        assert sorted(got["feature"]) == (sorted(kids) if i != 3 else [])
        assert (np.diff(got["cosine"]) <= 0).all()
    assert list(sp.children(W_small, W_large, 3, child=0.4)["feature"]) == where[3]


def test_counts_table_and_distribution():
    W_small, W_large, _ = planted()
    s = sp.compare_widths(W_small, {"wide": W_large}, small="narrow")
    t = s.table()
    row = t.loc["wide"]
    assert row["features"] == len(W_large)
    assert row["matched (cos >= 0.7)"] == 3 and row["share matched"] == pytest.approx(0.5)
    assert row["with >= 2 children (cos >= 0.5)"] == 2 and row["mean children"] == pytest.approx(1.0)
    dist = s.child_distribution(most=2)
    assert list(dist.index) == ["0", "1", "2+"] and list(dist["wide"]) == [3, 1, 2]
    assert dist["wide"].sum() == len(W_small)
    # the clearest split first: feature 0's second child (cos 0.89) is closer than feature 1's (0.82)
    np.testing.assert_array_equal(s.candidates("wide"), [0, 1])
    np.testing.assert_array_equal(s.candidates("wide", live=np.array([1, 2])), [1])
    np.testing.assert_array_equal(s.candidates("wide", min_children=1), [2, 0, 1])
    np.testing.assert_array_equal(s.candidates("wide", min_children=3), [1])
    with pytest.raises(ValueError, match="not one of the wider SAEs"):
        s.candidates("x64")
    with pytest.raises(ValueError, match="min_children"):
        s.candidates("wide", min_children=9)


def test_chunks_scale_and_input_types_do_not_change_the_answer():
    rng = np.random.default_rng(1)  # random rows: no tied cosines
    W_small, W_large = rng.normal(size=(6, 16)), rng.normal(size=(20, 16))
    a = sp.best_matches(W_small, W_large, k=4)
    b = sp.best_matches(torch.as_tensor(W_small * 7.0), torch.as_tensor(W_large), k=4, chunk=2)
    np.testing.assert_array_equal(a.ids, b.ids)
    np.testing.assert_allclose(a.cos, b.cos, atol=1e-6)
    np.testing.assert_array_equal(
        sp.child_counts(W_small, W_large, chunk=1), sp.child_counts(W_small, W_large)
    )
    idx, cos = sp.best_match(W_small, W_large)
    np.testing.assert_array_equal(idx, a.ids[:, 0])
    np.testing.assert_allclose(cos, a.best)
    assert sp.best_matches(W_small, W_large[:2], k=5).ids.shape == (6, 2)  # k capped at the wider size


def test_signed_cosine_an_opposite_row_is_not_a_match():
    W_small = np.eye(3)
    W_large = np.array([[-1.0, 0, 0], [0.6, 0.8, 0], [0, 0, 1]])
    idx, cos = sp.best_match(W_small, W_large)
    assert idx[0] == 1 and cos[0] == pytest.approx(0.6)
    assert sp.child_counts(W_small, W_large, child=0.5)[0] == 1


def test_pair_shares_and_random_baseline():
    W_small, W_large, _ = planted()
    t = sp.pair_shares({"wide": W_large, "narrow": W_small, "same": W_large.copy()})
    assert list(zip(t["small"], t["large"], strict=True)) == [
        ("narrow", "wide"),
        ("narrow", "same"),
        ("wide", "same"),
    ]
    assert t["share matched"].tolist() == pytest.approx([0.5, 0.5, 1.0])
    base = sp.random_baseline(np.random.default_rng(0).normal(size=(200, 64)), n=300)
    assert base.shape == (300,) and base.max() < 0.7  # chance matches in 64 dims stay far below 0.7


@pytest.mark.parametrize(
    ("small", "large", "match"),
    [
        (np.ones((2, 4)), np.ones((3, 5)), "compare SAEs of one layer"),
        (np.zeros((2, 4)), np.ones((3, 4)), "all-zero rows"),
        (np.full((2, 4), np.nan), np.ones((3, 4)), "NaN or inf"),
        (np.ones(4), np.ones((3, 4)), "2-D"),
    ],
)
def test_bad_input_is_one_line(small, large, match):
    with pytest.raises(ValueError, match=match):
        sp.best_matches(small, large)


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match=r"k \(matches kept per small feature\) = 0 must be a whole number"):
        sp.best_matches(np.eye(3), np.eye(3), k=0)
    with pytest.raises(ValueError, match="at least one wider SAE"):
        sp.compare_widths(np.eye(3), {})
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        sp.compare_widths(np.eye(3), {"w": np.eye(3)}, child=2.0)
    with pytest.raises(ValueError, match="out of range"):
        sp.children(np.eye(3), np.eye(3), 3)


def test_overlap_tells_a_split_from_a_duplicate():
    from helpers.analysis.features import FeatureIndex

    # wider features 0 and 1 fire on disjoint tokens (a split), 2 and 3 on the same tokens (duplicates)
    rows = np.array([0, 1, 2, 3, 4, 5, 0, 1, 2, 0, 1, 2])
    lats = np.array([0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3])
    index = FeatureIndex.from_entries(rows, lats, np.ones(len(rows)), n_tokens=8, d_sae=5)
    assert sp.firing_overlap(index, 0, 1) == 0.0 and sp.firing_overlap(index, 2, 3) == 1.0
    assert sp.firing_overlap(index, 0, 2) == 1.0 and sp.firing_overlap(index, 4, 4) == 0.0  # 4 never fires
    W_large = np.eye(5)
    W_small = np.array([[1.0, 1.0, 0, 0, 0], [0, 0, 1.0, 0.9, 0]])  # feature 0 -> {0, 1}, feature 1 -> {2, 3}
    s = sp.compare_widths(W_small, {"wide": W_large}, small="narrow", k=2)
    np.testing.assert_allclose(sp.child_overlaps(s, "wide", index, [0, 1]), [0.0, 1.0])
    with pytest.raises(ValueError, match="pass wide's index"):
        sp.child_overlaps(s, "wide", FeatureIndex.from_entries(rows, lats, np.ones(12), 8, 6), [0])
    with pytest.raises(ValueError, match="k >= 2"):
        sp.child_overlaps(sp.compare_widths(W_small, {"wide": W_large}, k=1), "wide", index, [0])


def test_child_overlaps_refuses_feature_minus_one():
    """-1 silently meant the last small feature."""
    from helpers.analysis.features import FeatureIndex

    rows = np.array([0, 1, 2, 3, 4, 5, 0, 1, 2, 0, 1, 2])
    lats = np.array([0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3])
    index = FeatureIndex.from_entries(rows, lats, np.ones(len(rows)), n_tokens=8, d_sae=5)
    W_small = np.array([[1.0, 1.0, 0, 0, 0], [0, 0, 1.0, 0.9, 0]])
    s = sp.compare_widths(W_small, {"wide": np.eye(5)}, small="narrow", k=2)
    with pytest.raises(
        ValueError, match="feature -1 is out of range: the small SAE 'narrow' has features 0..1"
    ):
        sp.child_overlaps(s, "wide", index, [0, -1])
    with pytest.raises(ValueError, match="feature 0.5 is not a whole number"):
        sp.child_overlaps(s, "wide", index, [0.5])
    np.testing.assert_allclose(sp.child_overlaps(s, "wide", index, [1.0, 0]), [1.0, 0.0])
    with pytest.raises(ValueError, match="min_children .* = '2' must be a whole number in 1..2"):
        s.candidates("wide", min_children="2")  # was a raw TypeError


def test_random_like_stays_in_the_rows_subspace():
    rng = np.random.default_rng(4)
    basis = np.linalg.qr(rng.normal(size=(64, 64)))[0][:4]  # rows live in 4 of 64 dimensions
    W = rng.normal(size=(300, 4)) @ basis
    R = sp.random_like(W, n=500, seed=1)
    assert R.shape == (500, 64)
    outside = R.double().numpy() - (R.double().numpy() @ basis.T) @ basis
    assert np.abs(outside).max() < 1e-6 * float(R.abs().max())
    assert 2 < sp.participation_ratio(W) <= 4 + 1e-9 and sp.participation_ratio(np.eye(64)) == pytest.approx(
        64
    )
    torch.testing.assert_close(R, sp.random_like(W, n=500, seed=1))
    assert len(sp.random_like(W, seed=0)) == 300  # as many as W by default
    # chance in the subspace is far above chance on the sphere
    iso = sp.random_baseline(W, n=200, seed=0)
    sub = sp.random_baseline(W, n=200, seed=0, like=W)
    assert np.median(sub) > np.median(iso) + 0.3


def test_refind_pairs_and_summary():
    W_small, W_large, _ = planted()
    rng = np.random.default_rng(1)
    other = W_small + 0.01 * rng.normal(size=W_small.shape)  # a second small SAE: the same features
    decs = {"s1": W_small, "s2": other, "L": W_large}
    widths = {"s1": "x1", "s2": "x1", "L": "x4", "null": "random like x4"}
    null = sp.random_like(W_large, seed=0)
    pairs = sp.refind_pairs(decs, widths, nulls={"null": null})
    got = set(zip(pairs["small"], pairs["large"], strict=True))
    assert got == {("s1", "s2"), ("s1", "L"), ("s2", "L"), ("s1", "null"), ("s2", "null"), ("L", "null")}
    same = pairs[(pairs["small"] == "s1") & (pairs["large"] == "s2")].iloc[0]
    assert same["share matched"] == 1.0 and same["mean children"] == pytest.approx(1.0)
    to_large = pairs[(pairs["small"] == "s1") & (pairs["large"] == "L")].iloc[0]
    assert to_large["share with >= 2 children"] == pytest.approx(2 / 6)  # features 0 and 1 split
    summ = sp.refind_summary(pairs)
    assert summ.loc[("x1", "x4"), "pairs"] == 2 and summ.loc[("x1", "x1"), "pairs"] == 1
    assert summ.loc[("x1", "x4"), "share matched: min"] <= summ.loc[("x1", "x4"), "share matched: max"]
    with pytest.raises(ValueError, match="widths has no entry"):
        sp.refind_pairs(decs, {"s1": "x1"})
    with pytest.raises(ValueError, match="refind_pairs"):
        sp.refind_summary(pairs[["small"]])
