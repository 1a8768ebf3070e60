"""Graded exercise of notebook 07 (an intruder test): an explanation-free chooser of the intruder.

The student writes ``pick_intruder(contexts, peaks) -> int``: given five contexts (arrays of token ids)
and each one's peak position, the position of the context least like the others. There is no single
right function, so it is graded by outcome: on synthetic question sets, where four contexts share a
feature's tokens at and near their peak and the intruder is another feature's context, with common tokens
(' the', ',') everywhere in uneven amounts, it must find the intruder in at least ``BAR`` of the questions
(the reference, :func:`helpers.analysis.intruder.odd_one_out`, finds ~0.9; chance is 0.2).

A case is one question set as padded arrays (``tokens`` [questions, 5, longest] padded with -1,
``lengths`` and ``peaks`` [questions, 5]) and the ``seed`` it was drawn from. The intruders' positions
are not in the case: the judge draws the set again from its seed to know them.
"""

from __future__ import annotations

import numpy as np

from helpers.analysis.intruder import odd_one_out, similarity_to_rest
from helpers.exercises.common import Case, Exercise, arrays, make_check

N_QUESTIONS = 40
N_CHOICES = 5
BAR = 0.6  # share right needed: the reference scores ~0.9 and chance 0.2 (P(chance >= 0.6) ~ 1e-7)
COMMON = np.arange(1, 9)  # ' the', ',', ' of', ' and', '.', ' a', ' to', ' in'
FILLER = (100, 5000)  # every other word of the vocabulary
MARKERS = (5000, 6000)  # the tokens a feature fires on, and its neighbours
PAD = -1

# ----------------------------------------------------------------------------------------------
# question sets


def _context(rng: np.random.Generator, marks: np.ndarray, near: np.ndarray) -> tuple[np.ndarray, int]:
    """One context: filler words with common tokens at this context's own rate (0.2..0.7: an uneven
    amount, so whole-window similarity follows it), a mark of the feature at the peak and, often, one
    of its neighbour tokens within 2 positions of the peak."""
    length = int(rng.integers(9, 21))
    peak = int(rng.integers(3, length - 1))
    rate = rng.uniform(0.2, 0.7)
    toks = np.where(rng.random(length) < rate, rng.choice(COMMON, length), rng.integers(*FILLER, size=length))
    toks[peak] = rng.choice(marks)
    if rng.random() < 0.7:
        at = peak + int(rng.choice([-2, -1, 1, 2]))
        if 0 <= at < length:
            toks[at] = rng.choice(near)
    return toks.astype(np.int64), peak


def _feature(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A feature: the 1 or 2 tokens it fires on, and 2 tokens often beside them."""
    marks = rng.choice(np.arange(*MARKERS), int(rng.integers(1, 3)), replace=False)
    return marks, rng.choice(np.arange(*MARKERS), 2)


def question_set(seed: int, n: int = N_QUESTIONS) -> tuple[Case, np.ndarray]:
    """``n`` questions drawn from ``seed`` as a case (padded arrays), and the intruders' positions."""
    rng = np.random.default_rng(seed)
    ctx, peaks, answers = [], [], []
    for _ in range(n):
        own, other = (_feature(rng) for _ in range(2))
        made = [_context(rng, *own) for _ in range(N_CHOICES - 1)] + [_context(rng, *other)]
        order = rng.permutation(N_CHOICES)
        ctx.append([made[k][0] for k in order])
        peaks.append([made[k][1] for k in order])
        answers.append(int(np.flatnonzero(order == N_CHOICES - 1)[0]))
    longest = max(len(c) for q in ctx for c in q)
    tokens = np.full((n, N_CHOICES, longest), PAD, np.int64)
    lengths = np.zeros((n, N_CHOICES), np.int64)
    for q, cs in enumerate(ctx):
        for k, c in enumerate(cs):
            tokens[q, k, : len(c)] = c
            lengths[q, k] = len(c)
    case = arrays(seed=np.int64(seed), tokens=tokens, lengths=lengths, peaks=np.asarray(peaks, np.int64))
    return case, np.asarray(answers)


def contexts_of(case: Case, q: int) -> list[np.ndarray]:
    """Question ``q``'s contexts as a list of token-id arrays (padding cut off)."""
    return [case["tokens"][q, k, : case["lengths"][q, k]] for k in range(case["tokens"].shape[1])]


# ----------------------------------------------------------------------------------------------
# the exercise


def _answer(args: tuple, case: Case) -> Case:
    fn = args[0]
    picks = [fn(contexts_of(case, q), case["peaks"][q].copy()) for q in range(len(case["tokens"]))]
    return arrays(picks=np.asarray(picks))


def _picks_of(case: Case, fn) -> np.ndarray:
    return np.array([fn(contexts_of(case, q), case["peaks"][q]) for q in range(len(case["tokens"]))])


def _solve(case: Case) -> Case:
    return arrays(picks=_picks_of(case, odd_one_out))


def _judge(case: Case, out: Case) -> str | None:
    n = len(case["tokens"])
    fmt = f"pick_intruder must return one int per question: a position 0..{N_CHOICES - 1}"
    try:
        got = np.asarray(out["picks"], dtype=np.float64)
    except (KeyError, TypeError, ValueError):
        return fmt
    if got.shape != (n,) or not np.isfinite(got).all() or not np.array_equal(got, np.round(got)):
        return fmt
    if got.min() < 0 or got.max() >= N_CHOICES:
        return f"positions run from 0 to {N_CHOICES - 1} (the contexts' indices in the list)"
    _, answers = question_set(int(case["seed"]), n)
    right = got == answers
    if len(np.unique(got)) == 1:
        return (
            "you return the same position every time: the intruder's position is shuffled, so a constant "
            "is right 1 time in 5; compare the contexts with each other"
        )
    if right.mean() >= BAR:
        return None
    unweighted = _picks_of(case, lambda c, p: odd_one_out(c, p, weights=(1.0, 1.0, 1.0)))
    if (got == unweighted).mean() >= 0.7:
        return (
            "you compare whole windows: common tokens like ' the' and ',' dominate them; weigh the tokens "
            "at and near the peak (peaks[k]) above the rest"
        )
    most = _picks_of(case, lambda c, p: int(np.argmax(similarity_to_rest(c, p))))
    if (got == most).mean() >= 0.5:
        return "you pick the context most like the others: the intruder is the one *least* like the rest"
    return (
        f"your chooser finds the intruder in {int(right.sum())} of {n} questions; it must find it in at "
        f"least {BAR:.0%} (chance: 1 in {N_CHOICES}): represent each context by its tokens weighted toward "
        f"its peak and pick the one least similar (cosine) to the other four"
    )


PICK_INTRUDER = Exercise(
    name="pick_intruder",
    references=(
        "helpers.analysis.intruder.odd_one_out",
        "helpers.analysis.intruder.similarity_to_rest",
        "helpers.analysis.intruder.auto_pick",
    ),
    public=lambda: [question_set(s)[0] for s in (1, 2, 3)],
    hidden=lambda rng: [question_set(int(rng.integers(2**31)))[0] for _ in range(3)],
    answer=_answer,
    solve=_solve,
    judge=_judge,
    done=f"finds the intruder in at least {BAR:.0%} of each question set",
)

EXERCISES = (PICK_INTRUDER,)
check_pick_intruder = make_check(PICK_INTRUDER)
