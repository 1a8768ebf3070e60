"""nbgrader's ``validate`` / ``validate --invert`` in one execution, without nbgrader: the public
self-checks of each exercise fail with the student version of its cell and pass with the solution."""

from __future__ import annotations

from pathlib import Path

from nbformat import NotebookNode

from tools.assignment import checks_after, grade_id, graded_cells, is_exercise, read_notebook, student_cell
from tools.kernel import first_line, run_cells


def invert_check(path: Path, *, profile: str = "ci", timeout: int = 600) -> list[str]:
    """Prove a notebook's self-checks tell a missing answer from a right one; returns the problems.

    Runs the notebook up to its last graded cell. At each exercise it first runs the student version
    of the cell and that exercise's checks (each must fail), then the solution and the checks (each
    must pass). Every other cell must run cleanly."""
    nb = read_notebook(path)
    last = max((i for i, _ in graded_cells(nb)), default=-1)
    seq: list[tuple[NotebookNode, str, int]] = []  # (cell, expectation, index in the notebook)
    for i, cell in enumerate(nb.cells[: last + 1]):
        if is_exercise(cell):
            seq.append((student_cell(cell), "student", i))
            seq += [(nb.cells[j], "must fail", j) for j in checks_after(nb, i)]
        seq.append((cell, "must pass", i))
    results = run_cells([c for c, _, _ in seq], cwd=path.parent, profile=profile, timeout=timeout)
    problems = []
    for (cell, expect, i), result in zip(seq, results, strict=True):
        label = f"{path.name} {grade_id(cell) or f'cell {i} `{first_line(nb.cells[i].source, 60)}`'}"
        if expect == "must fail" and result.ok:
            problems.append(f"{label}: passes with the student version (no answer written)")
        elif expect == "must pass" and not result.ok:
            problems.append(f"{label}: fails with the solution: {result.error}")
    return problems
