"""The intruder test as the student sees it (notebook 07): five numbered contexts, one of which is not
like the others; a static render with the answer folded away, and a widget that asks one question at a
time and keeps score.

Before the pick the contexts are plain text, identical in markup: highlighting the feature's peak, or
any tooltip with its activation, would give the intruder away (the feature is silent on it). After the
pick the four contexts show the feature's activation (orange) and the intruder its own feature's (blue).
Token text wraps (ordinary spaces, ``white-space: normal``, ``overflow-wrap: anywhere``): the workbook's
:func:`helpers.viz.tokens.tokens_html` joins tokens with ``&nbsp;``, so a long context would not wrap.
"""

from __future__ import annotations

import html
from collections.abc import Sequence

import numpy as np

from helpers.analysis.features import Example
from helpers.analysis.intruder import Question
from helpers.data.store import Store
from helpers.viz.tokens import token_strings

FEATURE_RGB = (255, 120, 0)  # the question's feature, as in the dashboards
INTRUDER_RGB = (40, 120, 255)
BOX = (
    "font-family:monospace;font-size:12px;line-height:1.7;white-space:normal;"
    "overflow-wrap:anywhere;word-break:normal;max-width:100%"
)


def _escape(tok: str) -> str:
    """A token's text as HTML that wraps: spaces stay spaces (never ``&nbsp;``), a newline shows as ⏎."""
    return html.escape(tok).replace("\r", "").replace("\n", "⏎ ") or "∅"


def context_html(
    tokens: Sequence[str], acts: np.ndarray | None = None, rgb: tuple[int, int, int] = FEATURE_RGB
) -> str:
    """One context as wrapping token text; with ``acts``, each token shaded by its activation over the
    context's largest (and the peak token underlined), else plain text with no trace of the feature."""
    if acts is None:
        return f'<span style="{BOX}">' + "".join(_escape(t) for t in tokens) + "</span>"
    a = np.asarray(acts, dtype=float)
    if len(a) != len(tokens):
        raise ValueError(f"got {len(tokens)} tokens but {len(a)} activations; pass one per token")
    top = float(a.max()) if len(a) and a.max() > 0 else 1.0
    peak = int(a.argmax()) if len(a) else -1
    r, g, b = rgb
    spans = []
    for k, (tok, v) in enumerate(zip(tokens, a, strict=True)):
        line = "text-decoration:underline;font-weight:bold;" if k == peak and v > 0 else ""
        spans.append(
            f'<span title="act {v:.3g}" style="background:rgba({r},{g},{b},{max(v, 0) / top:.2f});'
            f'{line}border-radius:2px">{_escape(tok)}</span>'
        )
    return f'<span style="{BOX}">' + "".join(spans) + "</span>"


def _row(k: int, body: str, note: str = "") -> str:
    return (
        f'<div style="display:flex;gap:8px;margin:3px 0;align-items:baseline">'
        f'<b style="min-width:1.5em">{k + 1}.</b><div style="{BOX};flex:1">{body}{note}</div></div>'
    )


def _tokens(ex: Example, store: Store, tokenizer) -> list[str]:
    return token_strings(tokenizer, store.token_ids[ex.rows])


def question_html(question: Question, store: Store, tokenizer, reveal: bool = False) -> str:
    """The question's five numbered contexts. ``reveal=False``: plain text, the same markup for all five.
    ``reveal=True``: activations shaded, the intruder marked with the feature it was taken from."""
    rows = []
    for k, ex in enumerate(question.contexts):
        toks = _tokens(ex, store, tokenizer)
        if not reveal:
            rows.append(_row(k, context_html(toks)))
        elif k == question.answer:
            note = (
                f' <span style="color:{_hex(INTRUDER_RGB)};font-size:11px">&larr; the intruder: '
                f"a top context of feature {question.intruder_feature}</span>"
            )
            rows.append(_row(k, context_html(toks, ex.acts, INTRUDER_RGB), note))
        else:
            rows.append(_row(k, context_html(toks, ex.acts, FEATURE_RGB)))
    n = len(question.contexts)
    head = (
        f"<div><b>Feature {question.feature}</b>: {n - 1} of these {n} contexts are among its top "
        f"activations; one is not. Which one?</div>"
    )
    return f'<div style="max-width:990px;margin:4px 0">{head}{"".join(rows)}</div>'


def _hex(rgb: tuple[int, int, int]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*rgb)


def answer_line(question: Question) -> str:
    """One line naming the intruder's position and the feature it came from."""
    return (
        f"context {question.answer + 1} is the intruder: a top context of feature "
        f"{question.intruder_feature}, where feature {question.feature} is silent"
    )


def static_question(question: Question, store: Store, tokenizer) -> str:
    """The question for a static render (GitHub, nbval): the plain contexts, then the answer and the
    shaded contexts inside a collapsed ``<details>`` element."""
    return (
        question_html(question, store, tokenizer, reveal=False)
        + "<details><summary>show the answer</summary>"
        + f"<p>{html.escape(answer_line(question))}</p>"
        + question_html(question, store, tokenizer, reveal=True)
        + "</details>"
    )


def intruder_widget(questions: Sequence[Question], store: Store, tokenizer):
    """One question at a time: five buttons to pick the intruder; a pick reveals the answer (the
    intruder, the activations shaded, its own feature) and updates the tally "you: 3/5 right"; Next
    moves on. Returns an ``ipywidgets.VBox``."""
    import ipywidgets as widgets

    questions = list(questions)
    if not questions:
        raise ValueError("no questions to ask: build some with helpers.analysis.intruder.make_questions")
    n = len(questions[0].contexts)
    state = {"k": 0, "asked": 0, "right": 0, "picked": False}
    title = widgets.HTML()
    body = widgets.HTML()
    feedback = widgets.HTML()
    tally = widgets.HTML()
    picks = [widgets.Button(description=str(c + 1), layout=widgets.Layout(width="48px")) for c in range(n)]
    nxt = widgets.Button(description="Next", disabled=True)

    def show() -> None:
        q = questions[state["k"]]
        title.value = f"<b>question {state['k'] + 1} of {len(questions)}</b>"
        body.value = question_html(q, store, tokenizer, reveal=state["picked"])
        tally.value = f"you: {state['right']}/{state['asked']} right"
        for b in picks:
            b.disabled = state["picked"]
        nxt.disabled = not state["picked"] or state["k"] + 1 == len(questions)

    def pick(button) -> None:
        if state["picked"]:
            return
        q = questions[state["k"]]
        choice = int(button.description) - 1
        ok = choice == q.answer
        state.update(picked=True, asked=state["asked"] + 1, right=state["right"] + ok)
        verdict = "right" if ok else f"not this time: you picked {choice + 1}"
        done = " (that was the last question)" if state["k"] + 1 == len(questions) else ""
        feedback.value = f"<b>{verdict}</b> — {html.escape(answer_line(q))}{done}"
        show()

    def advance(_button=None) -> None:
        if not state["picked"] or state["k"] + 1 == len(questions):
            return
        state.update(k=state["k"] + 1, picked=False)
        feedback.value = ""
        show()

    for b in picks:
        b.on_click(pick)
    nxt.on_click(advance)
    show()
    return widgets.VBox([title, body, widgets.HBox(picks), feedback, widgets.HBox([tally, nxt])])
