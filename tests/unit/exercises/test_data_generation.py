import re
from collections import Counter

import numpy as np
import pytest

from helpers.data import text_stats
from helpers.data.text_stats import STOP_WORDS, words
from helpers.exercises import data_generation as ex
from helpers.exercises.common import (
    CheckFailed,
    answer_hidden,
    judge_all,
    read_cases,
    run_answer,
    write_cases,
)
from tests.unit.exercises.support import SEEDS
from tests.unit.exercises.support import first_hint as _first_hint
from tests.unit.exercises.support import hidden as _hidden

# ----------------------------------------------------------------------------------------------
# top_words


def my_top_words(texts: list[str], k: int) -> list[tuple[str, int]]:  # the notebook's solution
    counts = Counter(w for t in texts for w in words(t) if w not in STOP_WORDS)
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:k]


def _counts(texts, split=words, stop=True):
    return Counter(w for t in texts for w in split(t) if not (stop and w in STOP_WORDS))


def test_top_words_solution_passes(capsys):
    ex.check_top_words(my_top_words)
    assert capsys.readouterr().out.startswith("PASSED top_words:")


def test_top_words_reference_judged_right_on_public_and_hidden():
    cases = ex.TOP_WORDS.public() + _hidden(ex.TOP_WORDS, range(20))
    assert len(ex.TOP_WORDS.public()) >= 3
    for case in cases:
        assert ex.TOP_WORDS.judge(case, ex.TOP_WORDS.solve(case)) is None
        assert ex.TOP_WORDS.judge(case, run_answer(ex.TOP_WORDS, (my_top_words,), case)) is None


def test_top_words_cases_hold_stop_words_and_boundary_ties():
    for case in ex.TOP_WORDS.public()[1:] + _hidden(ex.TOP_WORDS):
        texts, k = [str(t) for t in case["texts"]], int(case["k"])
        assert any(w in STOP_WORDS for t in texts for w in words(t))
        ranked = sorted(_counts(texts).items(), key=lambda kv: (-kv[1], kv[0]))
        if k < len(ranked):  # the k-th and the next word tie: the alphabetical tie-break decides
            assert ranked[k - 1][1] == ranked[k][1]


def test_top_words_public_fixed_hidden_fresh():
    a, b = ex.TOP_WORDS.public(), ex.TOP_WORDS.public()
    assert all(np.array_equal(x["texts"], y["texts"]) and x["k"] == y["k"] for x, y in zip(a, b, strict=True))
    h1, h2 = (ex.TOP_WORDS.hidden(np.random.default_rng(s)) for s in (1, 2))
    assert len(h1) >= 3
    assert not any(np.array_equal(x["texts"], y["texts"]) for x in h1 for y in h2)


def test_top_words_unanswered():
    def todo(texts, k):
        raise NotImplementedError()

    with pytest.raises(CheckFailed, match="not answered yet"):
        ex.check_top_words(todo)


def test_top_words_reference_is_blocked():
    with pytest.raises(CheckFailed, match="asks for your own code"):
        ex.check_top_words(lambda texts, k: text_stats.top_words(texts, k))
    ex.check_top_words(my_top_words)
    assert text_stats.top_words(["solar solar wind"], 1) == [("solar", 2)]  # switched back on


def _letters_only(t):
    return re.findall(r"[a-z]+", t.lower())


def _keep_case(t):
    return re.findall(r"[A-Za-z]+(?:['-][A-Za-z]+)*", t)


TOP_WORDS_MISTAKES = [
    (lambda texts, k: Counter(w for t in texts for w in words(t)).most_common(k), "are stop-words"),
    (
        lambda texts, k: sorted(
            Counter(w for t in texts for w in _keep_case(t) if w.lower() not in STOP_WORDS).items(),
            key=lambda kv: (-kv[1], kv[0]),
        )[:k],
        "lower-case the text before counting",
    ),
    (
        lambda texts, k: sorted(
            Counter(w for t in texts for w in t.lower().split() if w not in STOP_WORDS).items(),
            key=lambda kv: (-kv[1], kv[0]),
        )[:k],
        "keep letters only",
    ),
    (
        lambda texts, k: sorted(_counts(texts, _letters_only).items(), key=lambda kv: (-kv[1], kv[0]))[:k],
        "inner hyphens and apostrophes",
    ),
    (
        lambda texts, k: sorted(
            _counts(texts, lambda t: set(words(t))).items(), key=lambda kv: (-kv[1], kv[0])
        )[:k],
        "not the number of texts",
    ),
    (lambda texts, k: _counts(texts).most_common(k), "ties are broken alphabetically"),
    (
        lambda texts, k: sorted(_counts(texts).items(), key=lambda kv: kv[1], reverse=True)[:k],
        "ties are broken alphabetically",
    ),
    (lambda texts, k: sorted(_counts(texts).items(), key=lambda kv: (kv[1], kv[0]))[:k], "sort by count"),
    (lambda texts, k: my_top_words(texts, k + 1), "asked for the k = "),
    (lambda texts, k: my_top_words(texts, k - 1), "asked for the k = "),
    (lambda texts, k: [(w, c + 1) for w, c in my_top_words(texts, k)], "a count is off"),
    (lambda texts, k: my_top_words(texts, k + 1)[1:], "top_words is wrong on a case"),
    (lambda texts, k: dict(my_top_words(texts, k)), "list of \\(word, count\\) pairs"),
    (lambda texts, k: [w for w, _ in my_top_words(texts, k)], "list of \\(word, count\\) pairs"),
]


@pytest.mark.parametrize(("wrong", "hint"), TOP_WORDS_MISTAKES)
def test_top_words_mistakes_are_named(wrong, hint):
    found = _first_hint(ex.TOP_WORDS, wrong, ex.TOP_WORDS.public() + _hidden(ex.TOP_WORDS))
    assert found is not None and re.search(hint, found), found


def test_top_words_public_cases_name_the_usual_mistakes():
    for wrong, hint in TOP_WORDS_MISTAKES[:3] + TOP_WORDS_MISTAKES[5:7]:
        with pytest.raises(CheckFailed, match=hint):
            ex.check_top_words(wrong)


def test_top_words_hints_hold_no_expected_value():
    for case in ex.TOP_WORDS.public() + _hidden(ex.TOP_WORDS):
        want = ex.TOP_WORDS.solve(case)
        for wrong, _ in TOP_WORDS_MISTAKES:
            try:
                hint = ex.TOP_WORDS.judge(case, run_answer(ex.TOP_WORDS, (wrong,), case))
            except CheckFailed as err:
                hint = str(err)
            if hint:
                assert not any(re.search(rf"\b{re.escape(str(w))}\b", hint) for w in want["words"]), hint
                assert str(list(want["counts"])) not in hint


def test_top_words_lookup_table_fails_hidden():
    table = {
        (len(c["texts"]), int(c["k"])): my_top_words([str(t) for t in c["texts"]], int(c["k"]))
        for c in ex.TOP_WORDS.public()
    }

    def lookup(texts, k):
        return table.get((len(texts), k), [])

    ex.check_top_words(lookup)
    cases = ex.TOP_WORDS.hidden(np.random.default_rng(2024))
    outputs = [run_answer(ex.TOP_WORDS, (lookup,), c) for c in cases]
    assert judge_all(ex.TOP_WORDS, cases, outputs) is not None


def test_top_words_judge_survives_malformed_outputs():
    case = ex.TOP_WORDS.public()[0]
    for out in (
        {},
        {"words": np.array(["a", "b"])},
        {"words": np.array(["a", "b"]), "counts": np.array([1.0])},
        {"words": np.array([1, 2]), "counts": np.array([1, 2])},
        {"words": np.array(["a"]), "counts": np.array([np.nan])},
        {"words": np.array([["a"]]), "counts": np.array([[1]])},
    ):
        assert isinstance(ex.TOP_WORDS.judge(case, out), str)


def test_top_words_hidden_round_trip(tmp_path):
    cases = ex.TOP_WORDS.hidden(np.random.default_rng(7))
    write_cases(tmp_path / "in.npz", cases)
    answer_hidden(ex.TOP_WORDS, (my_top_words,), str(tmp_path / "in.npz"), str(tmp_path / "out.npz"))
    assert judge_all(ex.TOP_WORDS, cases, read_cases(tmp_path / "out.npz")) is None
    answer_hidden(
        ex.TOP_WORDS, (TOP_WORDS_MISTAKES[0][0],), str(tmp_path / "in.npz"), str(tmp_path / "out.npz")
    )
    assert "stop-words" in judge_all(ex.TOP_WORDS, cases, read_cases(tmp_path / "out.npz"))


# ----------------------------------------------------------------------------------------------
# validate_store


def validate_store(arrays: dict, d_model: int, pad_id: int, skip: str = "") -> None:
    """The notebook's solution; ``skip`` leaves one of its checks out (or weakens it)."""
    acts, tok, doc, pos = (arrays[k] for k in ("acts", "token_ids", "doc_ids", "positions"))
    n = len(tok)
    if skip != "rows" and (acts.ndim != 2 or len(acts) != n):
        raise ValueError("acts need one row per token")
    if skip != "doc_rows" and len(doc) != n:
        raise ValueError("doc_ids need one row per token")
    if skip != "pos_rows" and len(pos) != n:
        raise ValueError("positions need one row per token")
    if skip != "width" and acts.shape[1] != d_model:
        raise ValueError(f"acts is {acts.shape[1]} wide, the model's d_model is {d_model}")
    if skip != "pad" and (tok == pad_id).any():
        raise ValueError("padding tokens leaked into the store")
    if skip != "nan" and not (np.isfinite(acts).all() if skip != "inf" else not np.isnan(acts).any()):
        raise ValueError("acts holds NaN or inf")
    same_doc = doc[1:] == doc[:-1]
    steps = np.diff(pos)[same_doc]
    if skip != "gap" and ((steps > 1).any() if skip == "repeat" else (steps != 1).any()):
        raise ValueError("positions skip inside a document")


def test_validate_store_solution_passes(capsys):
    ex.check_validate_store(validate_store)
    assert capsys.readouterr().out.startswith("PASSED validate_store:")


def test_validate_store_reference_judged_right_on_public_and_hidden():
    cases = ex.VALIDATE_STORE.public() + _hidden(ex.VALIDATE_STORE, range(10))
    for case in cases:
        assert ex.VALIDATE_STORE.judge(case, ex.VALIDATE_STORE.solve(case)) is None
        assert ex.VALIDATE_STORE.judge(case, run_answer(ex.VALIDATE_STORE, (validate_store,), case)) is None


def _problem(case):
    return ex.store_problem(ex._store_arrays(case), int(case["d_model"]), int(case["pad_id"]))


def test_validate_store_cases_cover_every_problem():
    public = [_problem(c) for c in ex.VALIDATE_STORE.public()]
    assert set(public) == {None, *ex.PROBLEMS}
    for seed in SEEDS:
        hidden = ex.VALIDATE_STORE.hidden(np.random.default_rng(seed))
        assert {_problem(c) for c in hidden} == {None, *ex.PROBLEMS}
        assert len({c["acts"].shape for c in hidden}) > len(hidden) // 2  # sizes vary
    assert {int(c["pad_id"]) for c in _hidden(ex.VALIDATE_STORE)} != {2}


def test_validate_store_good_stores_have_positions_restarting_at_one():
    for case in ex.VALIDATE_STORE.public()[:1] + _hidden(ex.VALIDATE_STORE):
        if _problem(case) is None:
            doc, pos = case["doc_ids"], case["positions"]
            starts = np.r_[True, doc[1:] != doc[:-1]]
            assert (pos[starts] == 1).all() and starts.sum() >= 2


def test_validate_store_unanswered():
    def todo(arrays, d_model, pad_id):
        raise NotImplementedError()

    with pytest.raises(CheckFailed, match="not answered yet"):
        ex.check_validate_store(todo)


def test_validate_store_reference_is_blocked():
    with pytest.raises(CheckFailed, match="asks for your own code"):
        ex.check_validate_store(lambda a, d, p: ex.reference_validate_store(a, d, p))
    with pytest.raises(CheckFailed, match="asks for your own code"):
        ex.check_validate_store(lambda a, d, p: ex.store_problem(a, d, p))
    ex.check_validate_store(validate_store)
    good = ex.VALIDATE_STORE.public()[0]
    assert ex.store_problem(ex._store_arrays(good), int(good["d_model"]), int(good["pad_id"])) is None


def _all_rows_step(arrays, d_model, pad_id):
    if (np.diff(arrays["positions"]) != 1).any():
        raise ValueError("positions skip")


def _from_zero(arrays, d_model, pad_id):
    doc, pos = arrays["doc_ids"], arrays["positions"]
    if (pos[np.r_[True, doc[1:] != doc[:-1]]] != 0).any():
        raise ValueError("a document does not start at position 0")


def _type_error(arrays, d_model, pad_id):
    try:
        validate_store(arrays, d_model, pad_id)
    except ValueError as err:
        raise TypeError(str(err)) from None


def _asserts(arrays, d_model, pad_id):
    assert arrays["acts"].shape == (len(arrays["token_ids"]), d_model), "bad shape"


@pytest.mark.parametrize(
    ("wrong", "hint"),
    [
        (
            lambda a, d, p: validate_store(a, d, p, skip="rows"),
            "passed: acts and token_ids must have the same",
        ),
        (lambda a, d, p: validate_store(a, d, p, skip="doc_rows"), "not IndexError\\) when doc_ids must"),
        (lambda a, d, p: validate_store(a, d, p, skip="pos_rows"), "not IndexError\\) when positions must"),
        (
            lambda a, d, p: validate_store(a, d, p, skip="width"),
            "passed: acts must be \\[n_tokens, d_model\\]",
        ),
        (lambda a, d, p: validate_store(a, d, p, skip="pad"), "passed: a padding token"),
        (lambda a, d, p: validate_store(a, d, p, skip="nan"), "passed: acts holds a NaN"),
        (lambda a, d, p: validate_store(a, d, p, skip="inf"), "passed: acts holds an inf"),
        (
            lambda a, d, p: validate_store(a, d, p, skip="gap"),
            "passed: positions must count up by (exactly )?1",
        ),
        (lambda a, d, p: validate_store(a, d, p, skip="repeat"), "passed: .*repeated position"),
        (lambda a, d, p: None, "a broken store passed"),
        (_all_rows_step, "a valid store was rejected \\(ValueError: positions skip\\)"),
        (_from_zero, "a valid store was rejected .*positions start at 1"),
        (_type_error, "raise ValueError \\(not TypeError\\)"),
        (_asserts, "raise ValueError \\(not AssertionError\\) when acts and token_ids"),
    ],
)
def test_validate_store_mistakes_are_named(wrong, hint):
    with pytest.raises(CheckFailed, match=hint):
        ex.check_validate_store(wrong)
    assert re.search(hint, _first_hint(ex.VALIDATE_STORE, wrong, _hidden(ex.VALIDATE_STORE)) or "")


def test_validate_store_assertion_is_not_a_value_error():
    def asserts(arrays, d_model, pad_id):
        validate_store(arrays, d_model, pad_id)
        assert np.isfinite(arrays["acts"]).all(), "not finite"

    def no_finite(arrays, d_model, pad_id):
        validate_store(arrays, d_model, pad_id, skip="nan")
        assert np.isfinite(arrays["acts"]).all(), "not finite"

    ex.check_validate_store(asserts)
    with pytest.raises(CheckFailed, match="not AssertionError\\) when acts holds a NaN"):
        ex.check_validate_store(no_finite)


def test_validate_store_lookup_table_fails_hidden():
    table = {c["acts"].shape: bool(ex.VALIDATE_STORE.solve(c)["raised"]) for c in ex.VALIDATE_STORE.public()}

    def lookup(arrays, d_model, pad_id):
        if table.get(arrays["acts"].shape, False):
            raise ValueError("broken")

    ex.check_validate_store(lookup)
    cases = ex.VALIDATE_STORE.hidden(np.random.default_rng(2024))
    outputs = [run_answer(ex.VALIDATE_STORE, (lookup,), c) for c in cases]
    assert judge_all(ex.VALIDATE_STORE, cases, outputs) is not None


def test_validate_store_judge_survives_malformed_outputs():
    case = ex.VALIDATE_STORE.public()[1]
    for out in (
        {},
        {"raised": np.array([True, False])},
        {"raised": np.array("yes")},
        {"raised": np.array(1.5)},
    ):
        assert isinstance(ex.VALIDATE_STORE.judge(case, out), str)


def test_validate_store_hidden_round_trip(tmp_path):
    cases = ex.VALIDATE_STORE.hidden(np.random.default_rng(7))
    write_cases(tmp_path / "in.npz", cases)
    answer_hidden(ex.VALIDATE_STORE, (validate_store,), str(tmp_path / "in.npz"), str(tmp_path / "out.npz"))
    assert judge_all(ex.VALIDATE_STORE, cases, read_cases(tmp_path / "out.npz")) is None
    answer_hidden(
        ex.VALIDATE_STORE, (lambda a, d, p: None,), str(tmp_path / "in.npz"), str(tmp_path / "out.npz")
    )
    assert "a broken store passed" in judge_all(ex.VALIDATE_STORE, cases, read_cases(tmp_path / "out.npz"))
