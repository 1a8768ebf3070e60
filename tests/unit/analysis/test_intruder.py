"""The intruder test: questions per seed, intruders from silent rows of other documents, the automatic
chooser on planted features, and chance's range."""

import numpy as np
import pytest

from helpers.analysis import features as F
from helpers.analysis import intruder as I
from helpers.data.store import Store
from tests.unit.analysis.test_features import index_from_dense

MARKS = (7, 8, 9, 10)  # feature k fires on token MARKS[k]


def planted(n_docs: int = 24, length: int = 30, seed: int = 0) -> tuple[Store, F.FeatureIndex]:
    """Documents of random filler tokens (ids 20..399) with each feature's mark token planted a few times
    per document in its own documents (feature k in documents k, k + 4, ...); feature k fires on its mark
    with a random strength, and a dense feature 4 fires on a random third of all tokens."""
    rng = np.random.default_rng(seed)
    tokens = rng.integers(20, 400, size=(n_docs, length))
    for d in range(n_docs):
        at = rng.choice(np.arange(2, length - 2), 3, replace=False)
        tokens[d, at] = MARKS[d % len(MARKS)]
    tok = tokens.ravel().astype(np.int32)
    doc = np.repeat(np.arange(n_docs), length).astype(np.int32)
    f = np.zeros((len(tok), len(MARKS) + 1), np.float32)
    for k, m in enumerate(MARKS):
        hit = tok == m
        f[hit, k] = rng.uniform(1.0, 5.0, hit.sum())
    f[rng.random(len(tok)) < 0.33, len(MARKS)] = 0.5
    store = Store(
        acts=np.zeros((len(tok), 2), np.float32),
        token_ids=tok,
        doc_ids=doc,
        positions=np.tile(np.arange(1, length + 1), n_docs).astype(np.int32),
        layer=0,
        model="tiny",
    )
    return store, index_from_dense(f)


def test_top_pool_is_top_examples_found_faster():
    store, index = planted()
    for i in range(index.d_sae):
        for n in (1, 4, 10):
            want = F.top_examples(index, store, i, n=n)
            got = I.top_pool(index, store, i, n)
            assert [e.center for e in got] == [e.center for e in want]


def test_questions_are_deterministic_per_seed():
    store, index = planted()
    a = I.make_questions(index, store, [0, 1, 2], seed=5)
    b = I.make_questions(index, store, [0, 1, 2], seed=5)
    c = I.make_questions(index, store, [0, 1, 2], seed=6)

    def key(qs):
        return [(q.answer, q.intruder_feature, [e.center for e in q.contexts]) for q in qs]

    assert key(a) == key(b)
    assert key(a) != key(c)
    assert {q.answer for s in range(8) for q in I.make_questions(index, store, [0, 1, 2], seed=s)} == set(
        range(5)
    )  # the intruder is shuffled to every position


def test_the_intruder_comes_from_a_silent_window_of_another_document():
    store, index = planted()
    for q in I.make_questions(index, store, [0, 1, 2, 3, 4], seed=1):
        assert len(q.contexts) == 5 and q.intruder_feature != q.feature
        intruder = q.contexts[q.answer]
        four = [e for k, e in enumerate(q.contexts) if k != q.answer]
        assert intruder.doc_id not in {e.doc_id for e in four}
        assert index.values_at(q.feature, np.array([intruder.center]))[0] == 0
        # the intruder is a top example of its own feature, the four are the feature's own top examples
        assert intruder.center in {e.center for e in I.top_pool(index, store, q.intruder_feature, 10)}
        tops = {e.center for e in I.top_pool(index, store, q.feature, 10)}
        assert all(e.center in tops for e in four)
        if q.feature != 4:  # the sparse features leave whole windows silent for each other
            assert not index.values_at(q.feature, intruder.rows).any()


def test_auto_pick_finds_the_planted_intruder():
    store, index = planted()
    qs = I.make_questions(index, store, [0, 1, 2, 3], seed=0)
    score, right = I.auto_score(qs, store)
    assert score == 1.0 and right.dtype == bool and right.shape == (4,)


def test_odd_one_out_weighs_the_peak_over_common_tokens():
    the, comma = 1, 2
    same = [np.array([the, comma, 50 + k, 60 + k, 7, 70 + k, 80 + k]) for k in range(4)]
    odd = np.array([the, comma, the, comma, 8, the, comma])  # more filler in common with each than they share
    contexts = [same[0], same[1], odd, same[2], same[3]]
    assert I.odd_one_out(contexts, [4] * 5) == 2
    # unweighted, the shared filler drowns the peak: the chooser no longer finds the intruder
    assert I.odd_one_out(contexts, [4] * 5, weights=(1.0, 1.0, 1.0)) != 2


def test_pick_features_draws_at_random_among_features_that_fire_enough():
    counts = np.array([0, 3, 50, 60, 70, 80, 90, 100, 5, 40])
    f = np.zeros((200, len(counts)), np.float32)
    for i, c in enumerate(counts):
        f[:c, i] = 1.0
    index = index_from_dense(f)
    drawn = {tuple(I.pick_features(index, 3, min_fires=40, seed=s)) for s in range(20)}
    assert all(set(d) <= {2, 3, 4, 5, 6, 7, 9} and len(set(d)) == 3 for d in drawn)
    assert len(drawn) > 5  # not the top three every time
    assert I.pick_features(index, 3, 40, seed=4).tolist() == I.pick_features(index, 3, 40, seed=4).tolist()
    with pytest.raises(ValueError, match="only 7 features fire at least 40 times"):
        I.pick_features(index, 8, min_fires=40)


def test_pick_features_with_a_store_skips_features_with_one_context():
    store, index = planted()
    # feature 5 fires on the same text in every document: many firings, one distinct context
    f = np.zeros((len(store), 6), np.float32)
    for i in range(5):
        rows, vals = index.of(i)
        f[rows, i] = vals
    store.token_ids = store.token_ids.copy()
    store.token_ids[store.positions <= 3] = 3  # the same opening in every document
    f[store.positions == 3, 5] = 1.0
    idx = index_from_dense(f)
    assert 5 not in I.pick_features(idx, 5, min_fires=3, store=store).tolist()
    with pytest.raises(ValueError, match="distinct top examples"):
        I.make_questions(idx, store, [5])


def test_random_baseline_is_chance_with_a_binomial_range():
    p, (lo, hi) = I.random_baseline(100)
    assert p == 0.2 and lo < 0.2 < hi
    draws = np.random.default_rng(0).binomial(100, 0.2, 20_000) / 100
    inside = ((draws >= lo) & (draws <= hi)).mean()
    assert 0.94 <= inside <= 0.99
    _, (lo10, hi10) = I.random_baseline(10)
    assert hi10 - lo10 > hi - lo
    assert I.random_baseline(50, n_choices=4)[0] == 0.25
    for bad in (0, 2.5, True):
        with pytest.raises(ValueError, match="n_questions"):
            I.random_baseline(bad)
    with pytest.raises(ValueError, match="level"):
        I.random_baseline(10, level=1.0)


def test_score_interval_is_wilson_over_questions():
    right = np.array([True] * 30 + [False] * 70)
    iv = I.score_interval(right)
    assert iv.value == 0.3 and iv.n == 100
    assert iv.low == pytest.approx(0.219, abs=2e-3) and iv.high == pytest.approx(0.396, abs=2e-3)
    assert I.score_interval(np.ones(5, bool)).high == 1.0
    with pytest.raises(ValueError, match="bool array"):
        I.score_interval(np.array([1, 0, 1]))


def test_bad_input_is_refused_in_one_line():
    store, index = planted()
    with pytest.raises(ValueError, match="pool"):
        I.make_questions(index, store, [0], n_top=4, pool=3)
    with pytest.raises(ValueError, match="out of range"):
        I.make_questions(index, store, [99])
    with pytest.raises(ValueError, match="no questions"):
        I.auto_score([], store)
    with pytest.raises(ValueError, match="one peak each"):
        I.odd_one_out([np.arange(3)] * 4, [1, 1])
