"""The intruder question as HTML and as a widget: text that wraps, no trace of the answer before the pick,
and a pick that reveals it and counts."""

import re

import ipywidgets as widgets
import numpy as np
import pytest

from helpers.analysis import intruder as I
from helpers.viz import intruder_view as V
from tests.unit.analysis.test_intruder import planted


class Tok:
    """A tokenizer stub: token t reads " w<t>", with a newline and markup characters thrown in."""

    def decode(self, ids):
        t = int(ids[0])
        return {7: " <b>&", 8: "\n"}.get(t, f" w{t}")

    def convert_ids_to_tokens(self, ids):
        return [self.decode([i]) for i in ids]


def _questions(seed: int = 0):
    store, index = planted()
    return store, I.make_questions(index, store, [0, 1, 2, 3], seed=seed)


def _contexts(page: str) -> list[str]:
    """The five numbered rows of a rendered question."""
    return re.findall(r"<b style=\"min-width:1.5em\">\d\.</b>(.*?)</div></div>", page)


def test_contexts_wrap_and_are_escaped():
    store, qs = _questions()
    for reveal in (False, True):
        page = V.question_html(qs[0], store, Tok(), reveal=reveal)
        assert "&nbsp;" not in page and "white-space:normal" in page and "overflow-wrap:anywhere" in page
        assert "<b>&" not in page.replace("<b>Feature", "")  # the token's markup is escaped
    ex = qs[1].contexts[1 - min(qs[1].answer, 1)]  # not the intruder: feature 1 peaks on the newline
    toks = [Tok().decode([t]) for t in store.token_ids[ex.rows]]
    plain = re.sub(r"<[^>]+>", "", V.context_html(toks))
    assert plain == "".join(toks).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace(
        "\n", "⏎ "
    )  # the text itself, ordinary spaces between words
    assert "⏎" in plain


def test_before_the_pick_the_five_contexts_look_alike():
    store, qs = _questions()
    for q in qs:
        page = V.question_html(q, store, Tok(), reveal=False)
        rows = _contexts(page)
        assert len(rows) == 5
        assert "intruder" not in page and "title=" not in page and "rgba" not in page
        # the same markup for every row: only the token text differs
        shapes = {re.sub(r">[^<]*<", "><", r) for r in rows}
        assert len(shapes) == 1
        shown = V.question_html(q, store, Tok(), reveal=True)
        assert "the intruder" in shown and f"feature {q.intruder_feature}" in shown
        assert f"{q.answer + 1}." in shown and "rgba(40,120,255" in _contexts(shown)[q.answer]


def test_static_render_folds_the_answer_into_details():
    store, qs = _questions()
    page = V.static_question(qs[1], store, Tok())
    before, sep, after = page.partition("<details>")
    assert sep and "<summary>show the answer</summary>" in after and after.endswith("</details>")
    assert "intruder" not in before and V.answer_line(qs[1]) in after


def _parts(w):
    title, body, picks, feedback, bottom = w.children
    return body, list(picks.children), feedback, bottom.children[0], bottom.children[1]


def test_a_pick_reveals_the_answer_and_updates_the_tally():
    store, qs = _questions()
    w = V.intruder_widget(qs, store, Tok())
    assert isinstance(w, widgets.VBox)
    body, picks, feedback, tally, nxt = _parts(w)
    assert "intruder" not in body.value and tally.value == "you: 0/0 right" and nxt.disabled
    picks[qs[0].answer].click()
    assert "the intruder" in body.value and feedback.value.startswith("<b>right</b>")
    assert tally.value == "you: 1/1 right" and not nxt.disabled and all(b.disabled for b in picks)
    picks[(qs[0].answer + 1) % 5].click()  # a second click on the same question does not count
    assert tally.value == "you: 1/1 right"
    nxt.click()
    assert "intruder" not in body.value and feedback.value == "" and not any(b.disabled for b in picks)
    picks[(qs[1].answer + 1) % 5].click()
    assert tally.value == "you: 1/2 right" and "not this time" in feedback.value
    for q in qs[2:]:
        nxt.click()
        picks[q.answer].click()
    assert tally.value == f"you: 3/{len(qs)} right" and nxt.disabled and "last question" in feedback.value


def test_the_widget_refuses_an_empty_question_set():
    store, _ = _questions()
    with pytest.raises(ValueError, match="no questions"):
        V.intruder_widget([], store, Tok())
    with pytest.raises(ValueError, match="one per token"):
        V.context_html(["a", "b"], np.array([1.0]))
