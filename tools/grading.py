"""Grade notebooks headless: run them in a fresh kernel, collect every graded cell's outcome.

``python -m tools.grading [--submissions DIR] [--csv FILE]`` (what ``make grade`` runs)
executes each notebook in the ``ci`` profile and prints a table (student, notebook, check,
points, passed, first line of the failure) with totals, and writes it as CSV.

A submission is graded like nbgrader's autograde: its locked graded cells are restored from the
workbook's own notebook (matched by ``grade_id``) before it runs, execution continues after a
cell raises, and every ungraded cell that broke is reported as its own row. A missing or
corrupted notebook becomes rows in the table, never a crash of the whole run.

:func:`invert_check` is nbgrader's ``validate`` / ``validate --invert`` in one execution: it
runs a notebook and, at each exercise, runs the student version of the cell and its checks
first (they must fail), then the solution and its checks (they must pass).
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import nbformat
import pandas as pd
from nbclient import NotebookClient
from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbformat import NotebookNode

from helpers.config import ROOT
from helpers.files import save_csv
from tools.assignment import (
    checks_after,
    grade_id,
    graded_cells,
    is_exercise,
    is_graded,
    points,
    read_notebook,
    student_cell,
    workbook_notebooks,
)

CELL_TIMEOUT_S = 900


@dataclass(frozen=True)
class CellResult:
    """What happened to one code cell: ``error`` is empty when it ran cleanly."""

    ran: bool
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.ran and not self.error


@dataclass(frozen=True)
class Row:
    """One line of the grade table."""

    student: str
    notebook: str
    check: str
    points: float
    passed: bool
    failure: str = ""


def first_line(text: str, limit: int = 160) -> str:
    lines = [ln.strip() for ln in str(text).splitlines() if ln.strip()]
    return (lines[0] if lines else "")[:limit]


def _error_of(cell: NotebookNode) -> str:
    for out in cell.get("outputs", []):
        if out.get("output_type") == "error":
            value = first_line(out.get("evalue", ""))
            return f"{out.get('ename', 'Error')}: {value}" if value else str(out.get("ename", "Error"))
    return ""


def run_cells(
    cells: list[NotebookNode], *, cwd: Path, profile: str = "ci", timeout: int = CELL_TIMEOUT_S
) -> list[CellResult]:
    """Run ``cells`` in order in one fresh kernel, going on after a cell raises.

    Returns one :class:`CellResult` per cell (markdown cells count as run). A timeout or a dead
    kernel ends the run: that cell gets the error, the cells after it ``ran=False``.
    """
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.from_dict(dict(c)) for c in cells]
    client = NotebookClient(
        nb,
        timeout=timeout,
        kernel_name="python3",
        allow_errors=True,
        resources={"metadata": {"path": str(cwd)}},
    )
    results: list[CellResult] = []
    env = {**os.environ, "WORKBOOK_PROFILE": profile}
    stopped = ""
    try:
        with client.setup_kernel(env=env):
            for i, cell in enumerate(nb.cells):
                if stopped:
                    results.append(CellResult(False, stopped))
                    continue
                if cell.cell_type != "code":
                    results.append(CellResult(True))
                    continue
                try:
                    executed = client.execute_cell(cell, i)
                except CellTimeoutError:
                    results.append(CellResult(True, f"timed out after {timeout} s"))
                    stopped = f"not run: cell {i} timed out"
                    continue
                except DeadKernelError as err:
                    results.append(CellResult(True, f"kernel died: {first_line(str(err))}"))
                    stopped = f"not run: the kernel died in cell {i}"
                    continue
                results.append(CellResult(True, _error_of(executed)))
    except Exception as err:  # the kernel could not start, or died between cells
        reason = f"not run: {type(err).__name__}: {first_line(str(err))}"
        results += [CellResult(False, reason)] * (len(nb.cells) - len(results))
    return results


def _restore_locked(submission: NotebookNode, reference: NotebookNode) -> None:
    """Put the workbook's own source back into every graded cell (a student may not edit checks)."""
    ref = {grade_id(c): c for _, c in graded_cells(reference)}
    for _, cell in graded_cells(submission):
        if grade_id(cell) in ref:
            cell.source = ref[grade_id(cell)].source


def _where(cells: list[NotebookNode], i: int) -> str:
    src = first_line(cells[i].source, 60)
    return f"cell {i} `{src}`" if src else f"cell {i}"


def grade_notebook(
    path: Path, reference: Path, student: str = "-", *, profile: str = "ci", timeout: int = CELL_TIMEOUT_S
) -> list[Row]:
    """Grade one notebook against the workbook's ``reference`` copy; bad input becomes rows."""
    name = reference.name
    try:
        ref = read_notebook(reference)
    except ValueError as err:
        return [Row(student, name, "-", 0, False, f"reference notebook broken: {err}")]
    expected = [(grade_id(c), points(c)) for _, c in graded_cells(ref)]

    def every(reason: str) -> list[Row]:
        return [Row(student, name, gid, pts, False, reason) for gid, pts in expected] or [
            Row(student, name, "-", 0, False, reason)
        ]

    if not path.exists():
        return every("notebook missing from the submission")
    try:
        nb = read_notebook(path)
    except ValueError as err:
        return every(str(err))
    _restore_locked(nb, ref)
    found = {grade_id(c): i for i, c in graded_cells(nb)}
    if not found:
        return every("no graded cells in this notebook")
    results = run_cells(nb.cells, cwd=reference.parent, profile=profile, timeout=timeout)
    rows = []
    for gid, pts in expected:
        if gid not in found:
            rows.append(Row(student, name, gid, pts, False, "graded cell missing from the submission"))
            continue
        result = results[found[gid]]
        rows.append(Row(student, name, gid, pts, result.ok, result.error))
    broken = [
        i
        for i, (cell, result) in enumerate(zip(nb.cells, results, strict=True))
        if cell.cell_type == "code" and not is_graded(cell) and result.ran and result.error
    ]
    if broken:  # the first is the cause; the later ones mostly follow from it
        i = broken[0]
        kind = "exercise" if is_exercise(nb.cells[i]) else "ungraded"
        more = (
            f"; {len(broken) - 1} later ungraded cell{'s' * (len(broken) > 2)} raised too"
            if len(broken) > 1
            else ""
        )
        rows.append(
            Row(
                student,
                name,
                f"(cell {i})",
                0,
                False,
                f"{kind} {_where(nb.cells, i)} raised {results[i].error}{more}",
            )
        )
    return rows


def submissions(folder: Path) -> list[tuple[str, Path]]:
    """(student, folder) pairs: ``folder`` itself if it holds notebooks, else each sub-folder that does."""
    if not folder.is_dir():
        raise ValueError(
            f"{folder}: not a folder; pass SUBMISSIONS=<folder of notebooks or of student folders>"
        )
    if any(folder.glob("*.ipynb")):
        return [(folder.name, folder)]
    found = [(d.name, d) for d in sorted(folder.iterdir()) if d.is_dir() and any(d.rglob("*.ipynb"))]
    if not found:
        raise ValueError(f"{folder}: no .ipynb files in it or in its sub-folders")
    return found


def _find(folder: Path, name: str) -> Path:
    direct = folder / name
    return direct if direct.exists() else next(iter(sorted(folder.rglob(name))), direct)


def grade(submission_dir: Path | None = None, *, profile: str = "ci", log=print) -> pd.DataFrame:
    """Grade the workbook's notebooks, or every submission under ``submission_dir``."""
    references = workbook_notebooks()
    who = submissions(submission_dir) if submission_dir else [("solutions", references[0].parent)]
    rows: list[Row] = []
    for student, folder in who:
        for ref in references:
            log(f"grading {student} / {ref.name} ...")
            path = ref if submission_dir is None else _find(folder, ref.name)
            rows += grade_notebook(path, ref, student, profile=profile)
    return pd.DataFrame([asdict(r) for r in rows], columns=[f for f in Row.__dataclass_fields__])


def summary(table: pd.DataFrame) -> pd.DataFrame:
    """Score per student: points earned / points possible, checks passed / checks."""
    checks = table[~table["check"].str.startswith("(")]
    earned = checks["points"].where(checks["passed"], 0)
    out = pd.DataFrame(
        {
            "score": earned.groupby(checks["student"]).sum(),
            "possible": checks.groupby("student")["points"].sum(),
            "passed": checks.groupby("student")["passed"].sum(),
            "checks": checks.groupby("student").size(),
        }
    )
    return out.astype({"passed": int, "checks": int})


def format_table(table: pd.DataFrame, width: int = 110) -> str:
    """The grade table as text, text columns left-aligned, failures cut to ``width`` characters."""
    shown = table.assign(
        failure=table["failure"].str.slice(0, width), points=table["points"].map("{:g}".format)
    )
    cols = list(shown.columns)
    widths = {c: max(len(c), *(len(str(v)) for v in shown[c])) if len(shown) else len(c) for c in cols}
    lines = ["  ".join(c.ljust(widths[c]) for c in cols).rstrip()]
    for row in shown.itertuples(index=False):
        lines.append("  ".join(str(v).ljust(widths[c]) for c, v in zip(cols, row, strict=True)).rstrip())
    return "\n".join(lines)


def invert_check(path: Path, *, profile: str = "ci", timeout: int = CELL_TIMEOUT_S) -> list[str]:
    """Prove a notebook's checks tell a missing answer from a right one; returns the problems found.

    Runs the notebook up to its last graded cell. At each exercise it first runs the student
    version of the cell and that exercise's checks (each must fail), then the solution and the
    checks (each must pass). Every other cell must run cleanly.
    """
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
        label = f"{path.name} {grade_id(cell) or _where(nb.cells, i)}"
        if expect == "must fail" and result.ok:
            problems.append(f"{label}: passes with the student version (no answer written)")
        elif expect == "must pass" and not result.ok:
            problems.append(f"{label}: fails with the solution: {result.error}")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run notebooks headless and report every graded check.")
    parser.add_argument(
        "--submissions",
        type=Path,
        default=None,
        help="a folder of submitted notebooks, or of one folder per student (default: grade the workbook "
        "itself)",
    )
    parser.add_argument(
        "--csv", type=Path, default=ROOT / "grades.csv", help="where to write the table (default: grades.csv)"
    )
    parser.add_argument(
        "--profile", default="ci", choices=("ci", "full"), help="profile to run in (default: ci)"
    )
    args = parser.parse_args(argv)
    try:
        table = grade(args.submissions, profile=args.profile, log=lambda m: print(m, file=sys.stderr))
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    save_csv(args.csv, table)
    print(format_table(table))
    print()
    print(summary(table).to_string())
    print(f"\nwrote {args.csv}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
