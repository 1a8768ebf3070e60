"""nbgrader's ``validate`` / ``validate --invert`` without nbgrader: the public self-checks of each
exercise fail with the student version of its cell and pass with the solution.

Two ways to run it, one execution each:

- :func:`invert_version` writes a notebook for nbval (``make nbval``, part of ``make test``): the whole
  notebook, with, before each exercise's solution, the student version of the cell and each of its
  checks wrapped so that the wrapper raises if the check *passes* without the answer. nbval then runs
  every cell once, so re-executing the notebook and the invert test share one kernel's run.
- :func:`invert_check` runs the same sequence through :mod:`tools.kernel` up to the last graded cell and
  returns the problems (``make invert``, the grader's own machinery).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nbformat
from nbformat import NotebookNode

from helpers.files import write_atomic
from tools.assignment import (
    checks_after,
    grade_id,
    graded_cells,
    is_exercise,
    read_notebook,
    student_cell,
)
from tools.kernel import first_line, run_cells

MARK = "# invert check, written by tools.invert (not part of the notebook)"


def must_fail_source(check: str, label: str, exercise: str) -> str:
    """A cell that runs ``check`` (a graded check's source) and raises if it passes: run after the
    student version of ``exercise``, a check that passes cannot tell a missing answer from a right one."""
    return (
        f"{MARK}: {label} must fail with the student version of {exercise}\n"
        "try:\n"
        f"    exec(compile({check!r}, {label!r}, 'exec'), globals())\n"
        "except Exception as _invert_error:\n"
        f"    print({label + ' fails without the answer, as it must:'!r}, type(_invert_error).__name__)\n"
        "else:\n"
        f"    raise AssertionError({label + ' passes with the student version of ' + exercise!r}"
        " + ' (no answer written): the check cannot fail')\n"
    )


def invert_version(nb: NotebookNode) -> NotebookNode:
    """The notebook for nbval: the notebook as committed (outputs kept: nbval compares the graded cells'
    outputs with them) with, before each exercise cell, its student version (tagged ``raises-exception``:
    a stub may raise) and then each of its checks wrapped by :func:`must_fail_source` (no outputs: nbval
    compares nothing there, the wrapper's own exception is the test)."""
    base = nbformat.from_dict(dict(nb))
    cells: list[NotebookNode] = []
    for i, cell in enumerate(base.cells):
        if is_exercise(cell):
            exercise = grade_id(cell) or f"cell {i}"
            # a new cell (own id): not graded, not an nbgrader cell, outputs not compared, and a stub that
            # raises is no failure
            student = nbformat.v4.new_code_cell(
                f"{MARK}: the student version of {exercise}\n{student_cell(cell).source}",
                metadata={"tags": ["raises-exception"]},
            )
            cells.append(student)
            for j in checks_after(base, i):
                label = grade_id(base.cells[j]) or f"cell {j}"
                cells.append(
                    nbformat.v4.new_code_cell(must_fail_source(base.cells[j].source, label, exercise))
                )
        cells.append(cell)
    base.cells = cells
    return base


def write_invert_versions(notebooks: list[Path], out_dir: Path) -> list[Path]:
    """Write :func:`invert_version` of each notebook to ``out_dir`` (its other notebooks removed first, so
    nbval runs exactly these); returns the written paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in out_dir.glob("*.ipynb"):
        stale.unlink()
    written = []
    for path in notebooks:
        text = nbformat.writes(invert_version(read_notebook(path))) + "\n"
        target = out_dir / path.name
        write_atomic(target, lambda tmp, text=text: tmp.write_text(text, encoding="utf-8"), suffix=".ipynb")
        written.append(target)
    return written


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Write the notebooks nbval runs: each with its invert checks."
    )
    parser.add_argument("notebooks", nargs="+", type=Path)
    parser.add_argument(
        "--out", type=Path, required=True, help="folder to write into (its notebooks replaced)"
    )
    args = parser.parse_args(argv)
    try:
        written = write_invert_versions(args.notebooks, args.out)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {len(written)} notebooks with their invert checks to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
