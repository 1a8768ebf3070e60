"""A graded cell as the grader runs it: the student's answer on hidden cases, written just in time and read
back at once, then judged in the grader's process (``tools.grading`` runs the notebook)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from nbformat import NotebookNode

from helpers.exercises.common import Exercise, judge_all, read_cases, write_cases
from tools.assignment import grade_id
from tools.kernel import CellResult, first_line
from tools.source_scan import check_calls

_HIDDEN = """\
import helpers.exercises.common as __grader_c
import {module} as __grader_m

__grader_c.answer_hidden(__grader_c.exercise_of(__grader_m, {check!r}), ({args}), {inputs!r}, {outputs!r})
del __grader_c, __grader_m
"""


@dataclass
class Planned:
    """A graded cell as the grader runs it: per check call, the exercise, its hidden cases, the files."""

    gid: str
    index: int
    calls: list[tuple[Exercise, list, Path, Path]]  # (exercise, hidden cases, inputs file, outputs file)
    problem: str = ""
    got: dict = field(default_factory=dict)  # outputs file -> what it held right after the cell, or the error

    def around(self, phase: str) -> None:
        """Before the cell: write its inputs (only now) and remove any outputs file forged in advance.
        After it: read the outputs at once, then remove both files."""
        for _, cases, inputs, outputs in self.calls:
            if phase == "before":
                outputs.unlink(missing_ok=True)
                write_cases(inputs, cases)
                continue
            try:
                self.got[outputs] = read_cases(outputs, expect=len(cases)) if outputs.exists() else None
            except Exception as err:  # a damaged or forged file
                self.got[outputs] = f"the answer's outputs are unreadable ({type(err).__name__})"
            inputs.unlink(missing_ok=True)
            outputs.unlink(missing_ok=True)


def plan_cell(
    cell: NotebookNode,
    i: int,
    known: dict[str, tuple[str, Exercise]],
    rng: np.random.Generator,
    private: Path,
) -> tuple[Planned, str]:
    """The hidden-case plan of one graded cell and the source that replaces it."""
    plan, sources = Planned(grade_id(cell), i, []), []
    try:
        calls = check_calls(cell.source)
    except ValueError as err:
        return replace(plan, problem=str(err)), "pass"
    for check, args in calls:
        if check not in known:
            return replace(plan, problem=f"{check} is not imported by the workbook"), "pass"
        module, ex = known[check]
        cases = ex.hidden(rng)
        inputs, outputs = (private / f"{secrets.token_hex(12)}.npz" for _ in range(2))  # never guessable
        plan.calls.append((ex, cases, inputs, outputs))
        joined = "".join(f"{a}, " for a in args)
        sources.append(
            _HIDDEN.format(module=module, check=check, args=joined, inputs=str(inputs), outputs=str(outputs))
        )
    if not calls:
        plan.problem = "the graded cell calls no check"
    return plan, "\n".join(sources) or "pass"


def judge_cell(plan: Planned, result: CellResult, misuse: dict[str, list[str]]) -> tuple[bool, str]:
    if plan.problem:
        return False, plan.problem
    for ex, cases, _, outputs in plan.calls:
        if ex.name in misuse:
            uses = misuse[ex.name]
            more = f" (and {len(uses) - 1} more)" if len(uses) > 1 else ""
            return False, f"uses the reference this exercise asks you to write: {uses[0]}{more}"
        got = plan.got.get(outputs)
        if result.error or got is None:  # a cell that raised never counts, whatever file it left
            return False, f"the graded cell did not run the answer: {result.error or 'it wrote no answer'}"
        if isinstance(got, str):
            return False, got
        hint = judge_all(ex, cases, got)
        if hint:
            return False, first_line(hint, 300)
    return True, ""
