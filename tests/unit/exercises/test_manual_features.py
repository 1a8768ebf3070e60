"""Notebook 04's select_top and label_words exercises: the notebook's solutions pass, the reference judges
itself right, every hint fires for its mistake, calling the reference fails, a lookup table of the public
answers fails the hidden cases, and no hint gives the answer away."""

import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from helpers.analysis import features, labels
from helpers.exercises import manual_features as ex
from helpers.exercises.common import (
    CheckFailed,
    answer_hidden,
    judge_all,
    read_cases,
    run_answer,
    write_cases,
)

SEEDS = range(6)


def hidden_cases(exercise, seeds=SEEDS):
    return [c for s in seeds for c in exercise.hidden(np.random.default_rng(1000 + s))]


def first_hint(exercise, fn):
    """The hint of the first case (public, then hidden) that ``fn`` gets wrong, as the grader reports it."""
    for case in exercise.public() + hidden_cases(exercise):
        hint = exercise.judge(case, run_answer(exercise, (fn,), case))
        if hint:
            return hint, case
    return None, None


# ----------------------------------------------------------------------------------------------
# select_top


def select_top(values, rows, doc_ids, n, radius):  # the notebook's solution
    chosen = []
    for j in np.argsort(-values, kind="stable"):
        near = [
            c
            for c in chosen
            if doc_ids[rows[c]] == doc_ids[rows[j]] and abs(int(rows[c]) - int(rows[j])) <= 2 * radius
        ]
        if not near:
            chosen.append(int(j))
        if len(chosen) == n:
            break
    return chosen


def test_select_top_solution_passes(capsys):
    ex.check_select_top(select_top)
    assert capsys.readouterr().out.startswith("PASSED select_top: greedy, non-overlapping")


def test_select_top_reference_and_solution_are_right_on_every_case():
    for case in ex.SELECT_TOP.public() + hidden_cases(ex.SELECT_TOP):
        assert ex.SELECT_TOP.judge(case, ex.SELECT_TOP.solve(case)) is None
        assert ex.SELECT_TOP.judge(case, run_answer(ex.SELECT_TOP, (select_top,), case)) is None
        assert len(ex.SELECT_TOP.solve(case)["idx"]) == int(case["n"])


def _greedy_wrong(**switch):
    return lambda v, r, d, n, rad: ex._greedy(v, r, d, n, rad, **switch)


SELECT_TOP_MISTAKES = {
    "row numbers": (lambda v, r, d, n, rad: [int(r[j]) for j in select_top(v, r, d, n, rad)], "not the row"),
    "no overlap check": (lambda v, r, d, n, rad: list(np.argsort(-v)[:n]), "two examples overlap"),
    "strict distance": (
        lambda v, r, d, n, rad: ex._greedy(v, r, d, n, rad, reach=2 * rad - 1),
        r"distance is <= 2 \* radius",
    ),
    "radius": (lambda v, r, d, n, rad: ex._greedy(v, r, d, n, rad, reach=rad), "not radius"),
    "documents ignored": (_greedy_wrong(same_doc=False), "different documents never overlap"),
    "indices as rows": (_greedy_wrong(by_index=True), r"compare row numbers rows\[j\]"),
    "last only": (_greedy_wrong(last_only=True), "not only the last one"),
    "sorted by index": (lambda v, r, d, n, rad: sorted(select_top(v, r, d, n, rad)), "largest first"),
    "smallest": (lambda v, r, d, n, rad: select_top(-v, r, d, n, rad), "smallest activations"),
    "one short": (lambda v, r, d, n, rad: select_top(v, r, d, n - 1, rad), "asked for n = "),
    "skips one": (  # non-overlapping, ordered, n long, but not the greedy choice
        lambda v, r, d, n, rad: (lambda got: got[: n - 1] + got[n:])(select_top(v, r, d, n + 1, rad)),
        "select_top is wrong on a case",
    ),
}


@pytest.mark.parametrize("name", list(SELECT_TOP_MISTAKES))
def test_select_top_each_mistake_gets_its_hint(name):
    wrong, pattern = SELECT_TOP_MISTAKES[name]
    hint, case = first_hint(ex.SELECT_TOP, wrong)
    assert hint is not None
    assert re.search(pattern, hint), hint
    want = ex.SELECT_TOP.solve(case)["idx"]
    assert str(want.tolist()) not in hint and str(want) not in hint


def test_select_top_mistakes_fail_the_self_check():
    with pytest.raises(CheckFailed, match="two examples overlap"):
        ex.check_select_top(lambda v, r, d, n, rad: list(np.argsort(-v)[:n]))


def test_select_top_refuses_a_non_list():
    with pytest.raises(CheckFailed, match="list of indices"):
        ex.check_select_top(lambda v, r, d, n, rad: None)


def test_select_top_calling_the_reference_fails():
    with pytest.raises(CheckFailed, match="asks for your own code"):
        ex.check_select_top(lambda v, r, d, n, rad: features.select_top(v, r, d, n, rad))
    assert features.select_top(np.array([1.0, 2.0]), np.array([0, 5]), np.zeros(6, int), 2, 1) == [1, 0]


def test_select_top_unanswered():
    def todo(values, rows, doc_ids, n, radius):
        raise NotImplementedError()

    with pytest.raises(CheckFailed, match="not answered"):
        ex.check_select_top(todo)


def test_select_top_lookup_table_fails_the_hidden_cases():
    table = {
        (len(c["values"]), int(c["n"]), int(c["radius"])): ex.SELECT_TOP.solve(c)["idx"].tolist()
        for c in ex.SELECT_TOP.public()
    }
    first = next(iter(table.values()))

    def lookup(values, rows, doc_ids, n, radius):
        return table.get((len(values), n, radius), first)

    ex.check_select_top(lookup)
    cases = ex.SELECT_TOP.hidden(np.random.default_rng(12345))
    outputs = [run_answer(ex.SELECT_TOP, (lookup,), c) for c in cases]
    assert judge_all(ex.SELECT_TOP, cases, outputs) is not None


def test_select_top_judge_survives_malformed_outputs():
    case = ex.SELECT_TOP.public()[0]
    for out in (
        {},
        {"idx": np.array(["a", "b"])},
        {"idx": np.array([1.5, np.nan])},
        {"idx": np.zeros((2, 2))},
    ):
        assert isinstance(ex.SELECT_TOP.judge(case, out), str)


# ----------------------------------------------------------------------------------------------
# label_words


def label_words(top_tokens, all_tokens, k):  # the notebook's solution
    def count(tokens):
        return Counter(w for w in (t.strip().lower() for t in tokens) if w)

    top, base = count(top_tokens), count(all_tokens)
    n_top, n_all = sum(top.values()), sum(base.values())
    lift = {w: (c / n_top) / (base[w] / n_all) for w, c in top.items() if c >= 2}
    return sorted(lift, key=lambda w: (-lift[w], -top[w], w))[:k]


def _fewer_first(top_tokens, all_tokens, k):
    """The solution with equal lifts ordered by the lower count first."""
    top = Counter(w for w in (t.strip().lower() for t in top_tokens) if w)
    base = Counter(w for w in (t.strip().lower() for t in all_tokens) if w)
    n_top, n_all = sum(top.values()), sum(base.values())
    lift = {w: (c / n_top) / (base[w] / n_all) for w, c in top.items() if c >= 2}
    return sorted(lift, key=lambda w: (-lift[w], top[w], w))[:k]


def test_label_words_reference_on_a_small_example():
    top = [" the", "The", " solar", "solar", "Solar ", ",", ",", " sun", "\n", "\n", " wind", " wind"]
    rest = [" the"] * 20 + [","] * 16 + [" solar", " sun", " wind", " wind", "\n"]
    assert labels.label_words(top, top + rest, 5) == ["solar", "wind", ",", "the"]
    assert labels.label_words(top, top + rest, 1) == ["solar"]
    assert "sun" in labels.label_words(top, top + rest, 5, min_count=1)  # seen once: noise by default
    # equal lifts: the higher count first, then alphabetical
    assert labels.label_words(
        ["b", "b", "a", "a", "a", "c", "c"], ["a", "a", "a", "b", "b", "c", "c"], 3
    ) == [
        "a",
        "b",
        "c",
    ]
    with pytest.raises(ValueError, match="not in all_tokens"):
        labels.label_words(["x", "x"], ["y"], 1)
    # one rule for whole numbers (validate.is_whole, issue 25): 1.0 is 1 (it was refused), True is not
    assert labels.label_words(top, top + rest, 1.0) == ["solar"]
    for bad in (-1, True, 1.5):
        with pytest.raises(
            ValueError, match=rf"^k \(words to return\) = {bad!r} must be a whole number >= 0$"
        ):
            labels.label_words(["x"], ["x"], bad)


def test_label_words_solution_passes(capsys):
    ex.check_label_words(label_words)
    assert capsys.readouterr().out.startswith("PASSED label_words: words ranked by lift")


def test_label_words_reference_and_solution_are_right_on_every_case():
    for case in ex.LABEL_WORDS.public() + hidden_cases(ex.LABEL_WORDS, range(10)):
        want = ex.LABEL_WORDS.solve(case)
        assert ex.LABEL_WORDS.judge(case, want) is None
        assert ex.LABEL_WORDS.judge(case, run_answer(ex.LABEL_WORDS, (label_words,), case)) is None
        assert not set(want["words"]) & {"the", ",", "", "."}  # stop words never make the label


def test_label_words_float_variants_pass():
    """Other fair ways to compute the lift (one division, or shares over every token, whitespace included)
    are judged right even where float rounding orders two equal lifts differently."""

    def one_division(top_tokens, all_tokens, k):
        top = Counter(w for w in (t.strip().lower() for t in top_tokens) if w)
        base = Counter(w for w in (t.strip().lower() for t in all_tokens) if w)
        lift = {w: c * len(all_tokens) / (len(top_tokens) * base[w]) for w, c in top.items() if c >= 2}
        return sorted(lift, key=lambda w: (-lift[w], -top[w], w))[:k]

    for case in ex.LABEL_WORDS.public() + hidden_cases(ex.LABEL_WORDS, range(10)):
        assert ex.LABEL_WORDS.judge(case, run_answer(ex.LABEL_WORDS, (one_division,), case)) is None


def _lw(**switch):
    return lambda top, everything, k: ex._ranking(
        {"top_tokens": np.array(top, dtype=str), "all_tokens": np.array(everything, dtype=str), "k": k},
        **switch,
    )


LABEL_WORDS_MISTAKES = {
    "raw frequency": (_lw(score="count"), "ranked by how often"),
    "upside down": (_lw(score="inverse"), "upside down"),
    "difference": (_lw(score="difference"), "not a difference"),
    "no min_count": (_lw(min_count=1), "seen at least twice"),
    "count > 2": (_lw(min_count=3), "not count > 2"),
    "no normalisation": (_lw(norm=lambda t: t), r"compare tokens after \.strip\(\)\.lower\(\)"),
    "lower only": (_lw(norm=str.lower), "strip the tokens too"),
    "strip only": (_lw(norm=str.strip), "lower-case the tokens too"),
    "empty kept": (_lw(keep_empty=True), "skip empty tokens"),
    "ties alphabetical": (_lw(tie="alpha"), "seen more often among top_tokens first, then"),
    "ties fewer first": (_fewer_first, "seen more often among top_tokens first, then"),
    "surface forms": (
        lambda top, everything, k: [
            next(t for t in top if t.strip().lower() == w) for w in label_words(top, everything, k)
        ],
        "return the words as you compared them",
    ),
    "one short": (lambda top, everything, k: label_words(top, everything, k - 1), "return k = "),
    "nonsense": (lambda top, everything, k: sorted(set(top))[:k], "label_words is wrong on a case"),
}


@pytest.mark.parametrize("name", list(LABEL_WORDS_MISTAKES))
def test_label_words_each_mistake_gets_its_hint(name):
    wrong, pattern = LABEL_WORDS_MISTAKES[name]
    hint, case = first_hint(ex.LABEL_WORDS, wrong)
    assert hint is not None
    assert re.search(pattern, hint), hint
    want = ex.LABEL_WORDS.solve(case)["words"].tolist()
    assert str(want) not in hint and ", ".join(want) not in hint and "/".join(want) not in hint


@pytest.mark.parametrize("name", ["raw frequency", "no min_count", "no normalisation", "ties alphabetical"])
def test_label_words_main_mistakes_fail_on_every_hidden_draw(name):
    """The judgements the exercise is about are caught on every draw of hidden cases, not by luck."""
    wrong, _ = LABEL_WORDS_MISTAKES[name]
    for seed in range(20):
        cases = ex.LABEL_WORDS.hidden(np.random.default_rng(seed))
        outputs = [run_answer(ex.LABEL_WORDS, (wrong,), c) for c in cases]
        assert judge_all(ex.LABEL_WORDS, cases, outputs) is not None


def test_label_words_refuses_pairs_and_strings():
    with pytest.raises(CheckFailed, match="list of words"):
        ex.check_label_words(lambda top, everything, k: [(w, 1.0) for w in label_words(top, everything, k)])
    with pytest.raises(CheckFailed, match="list of words"):
        ex.check_label_words(lambda top, everything, k: " ".join(label_words(top, everything, k)))


def test_label_words_calling_the_reference_fails():
    with pytest.raises(CheckFailed, match="asks for your own code"):
        ex.check_label_words(lambda top, everything, k: labels.label_words(top, everything, k))
    assert labels.label_words(["a", "a"], ["a", "a", "b"], 1) == ["a"]  # restored after the check


def test_label_words_unanswered():
    def todo(top_tokens, all_tokens, k):
        raise NotImplementedError()

    with pytest.raises(CheckFailed, match="not answered"):
        ex.check_label_words(todo)


def test_label_words_lookup_table_fails_the_hidden_cases():
    table = {
        (len(c["top_tokens"]), len(c["all_tokens"]), int(c["k"])): ex.LABEL_WORDS.solve(c)["words"].tolist()
        for c in ex.LABEL_WORDS.public()
    }
    first = next(iter(table.values()))

    def lookup(top_tokens, all_tokens, k):
        return table.get((len(top_tokens), len(all_tokens), k), first)

    ex.check_label_words(lookup)
    cases = ex.LABEL_WORDS.hidden(np.random.default_rng(12345))
    outputs = [run_answer(ex.LABEL_WORDS, (lookup,), c) for c in cases]
    assert judge_all(ex.LABEL_WORDS, cases, outputs) is not None


def test_label_words_cases_cross_as_files(tmp_path: Path):
    """Whitespace tokens (' ', '\\n', '') survive the .npz round trip the grader uses."""
    cases = ex.LABEL_WORDS.hidden(np.random.default_rng(7))
    write_cases(tmp_path / "in.npz", cases)
    back = read_cases(tmp_path / "in.npz")
    for a, b in zip(cases, back, strict=True):
        assert a["top_tokens"].tolist() == b["top_tokens"].tolist()
        assert a["all_tokens"].tolist() == b["all_tokens"].tolist()
    assert any("" in c["top_tokens"].tolist() or "\n" in c["top_tokens"].tolist() for c in back)
    answer_hidden(ex.LABEL_WORDS, (label_words,), str(tmp_path / "in.npz"), str(tmp_path / "out.npz"))
    assert judge_all(ex.LABEL_WORDS, cases, read_cases(tmp_path / "out.npz")) is None


def test_label_words_judge_survives_malformed_outputs():
    case = ex.LABEL_WORDS.public()[0]
    for out in ({}, {"words": np.array([1.0, 2.0])}, {"words": np.array([["a"], ["b"]])}):
        assert isinstance(ex.LABEL_WORDS.judge(case, out), str)


def test_module_exports():
    assert [e.name for e in ex.EXERCISES] == ["select_top", "label_words"]
    assert ex.check_select_top.__name__ == "check_select_top"
    assert ex.check_label_words.__name__ == "check_label_words"
    assert not hasattr(ex, "check_logit_weights")
