"""The workbook as an assignment: exercise cells, graded check cells and the student version.

The cells follow nbgrader's conventions (metadata schema version 3), so a course already on
nbgrader can use the notebooks directly, while the workbook itself never imports nbgrader:

- an **exercise** cell is tagged ``exercise`` and carries ``nbgrader.solution = true``; its
  answer sits between ``### BEGIN SOLUTION`` and ``### END SOLUTION``;
- a **graded** cell is tagged ``graded`` (and ``nbval-check-output``) and carries
  ``nbgrader.grade = true``, ``locked = true``, ``points`` and a stable ``grade_id``;
- a **manual** answer is a markdown cell tagged ``manual`` (nbgrader: ``solution`` and ``grade``, not
  locked, ``points``): its rubric and model answer sit in one solution block, and the student version
  holds ``YOUR ANSWER HERE`` in its place, as nbgrader writes it.

``python -m tools.assignment [--out student]`` writes the student versions (what
``make student`` runs; ``--nbgrader-source --out DIR`` writes nbgrader's source notebooks: solutions
kept, outputs and saved widget state dropped): each solution replaced by ``# YOUR CODE HERE`` /
``raise NotImplementedError()`` as nbgrader does, outputs and execution counts cleared, and the
executed run's metadata dropped (saved widget state with its images, per-cell execution timings).
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import nbformat
from nbformat import NotebookNode

from helpers.config import ROOT
from helpers.files import write_atomic

NB_VERSION = 4
BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
STUDENT_STUB = ("# YOUR CODE HERE", "raise NotImplementedError()")
EXERCISE_TAG, GRADED_TAG, CHECK_OUTPUT_TAG = "exercise", "graded", "nbval-check-output"
MANUAL_TAG = "manual"  # a markdown answer graded by hand (nbgrader: solution and grade, not locked)
MANUAL_STUB = "YOUR ANSWER HERE"
# metadata of an executed run, not of the assignment: ~100 KB of widget state (with images) per notebook
RUN_METADATA = ("widgets",)  # notebook level
RUN_CELL_METADATA = ("execution", "widgets", "collapsed", "scrolled")  # cell level
_SOLUTION_BLOCK = re.compile(
    rf"^([ \t]*){re.escape(BEGIN)}[^\n]*\n.*?^[ \t]*{re.escape(END)}[^\n]*$", re.M | re.S
)


def workbook_notebooks(folder: Path | None = None) -> list[Path]:
    """The numbered notebooks ``NN_*.ipynb`` of ``folder`` (default: the workbook's), in order."""
    return sorted((folder or ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def read_notebook(path: Path) -> NotebookNode:
    """Read and validate a notebook; a missing or corrupted file raises ``ValueError`` in one line."""
    try:
        nb = nbformat.read(str(path), as_version=NB_VERSION)
        nbformat.validate(nb)
    except FileNotFoundError:
        raise ValueError(f"{path.name}: no such notebook; check the path") from None
    except Exception as err:  # JSON errors, schema errors: all say the file is damaged
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(
            f"{path.name}: not a readable notebook ({first[:120]}); re-download or re-save it"
        ) from None
    return nb


def tags(cell: NotebookNode) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def is_exercise(cell: NotebookNode) -> bool:
    return cell.cell_type == "code" and EXERCISE_TAG in tags(cell)


def is_graded(cell: NotebookNode) -> bool:
    return cell.cell_type == "code" and GRADED_TAG in tags(cell)


def is_manual(cell: NotebookNode) -> bool:
    return cell.cell_type == "markdown" and MANUAL_TAG in tags(cell)


def grade_id(cell: NotebookNode) -> str:
    return str(cell.get("metadata", {}).get("nbgrader", {}).get("grade_id", ""))


def points(cell: NotebookNode) -> float:
    return float(cell.get("metadata", {}).get("nbgrader", {}).get("points", 0))


def graded_cells(nb: NotebookNode) -> Iterator[tuple[int, NotebookNode]]:
    """(index, cell) of every graded check cell, in order."""
    return ((i, c) for i, c in enumerate(nb.cells) if is_graded(c))


def checks_after(nb: NotebookNode, index: int) -> list[int]:
    """Indices of the graded cells that follow the exercise at ``index`` (markdown in between allowed)."""
    found: list[int] = []
    for j in range(index + 1, len(nb.cells)):
        cell = nb.cells[j]
        if cell.cell_type != "code":
            continue
        if not is_graded(cell):
            break
        found.append(j)
    return found


def metadata_problems(nb: NotebookNode, name: str = "notebook") -> list[str]:
    """Every inconsistency between tags, nbgrader metadata and solution markers; empty if none."""
    problems: list[str] = []
    seen: dict[str, int] = {}
    for i, cell in enumerate(nb.cells):
        meta = cell.get("metadata", {}).get("nbgrader")
        where = f"{name} cell {i}"
        source = cell.get("source", "")
        exercise, graded = is_exercise(cell), is_graded(cell)
        if is_manual(cell):
            want = {"solution": True, "grade": True, "locked": False}
            if not meta or any(meta.get(k) is not v for k, v in want.items()) or not points(cell) > 0:
                problems.append(
                    f"{where}: a manual answer needs nbgrader solution, grade, unlocked and points"
                )
            elif meta.get("grade_id") in seen:
                problems.append(
                    f"{where}: grade_id {meta.get('grade_id')!r} already used "
                    f"by cell {seen[meta['grade_id']]}"
                )
            else:
                seen[meta.get("grade_id")] = i
            if source.count(BEGIN) != 1 or source.count(END) != 1:
                problems.append(
                    f"{where}: a manual answer holds one {BEGIN} / {END} block (the rubric and model answer)"
                )
            continue
        if exercise and graded:
            problems.append(f"{where}: tagged both exercise and graded")
        if (exercise or graded) and not meta:
            problems.append(
                f"{where}: tagged {'exercise' if exercise else 'graded'} but has no nbgrader metadata"
            )
            continue
        if meta and not (exercise or graded):
            problems.append(f"{where}: has nbgrader metadata but neither the exercise nor the graded tag")
            continue
        if (BEGIN in source or END in source) and not exercise:
            problems.append(f"{where}: solution markers in a cell that is not an exercise")
        if not meta:
            continue
        if meta.get("schema_version") != 3:
            problems.append(f"{where}: nbgrader schema_version is {meta.get('schema_version')!r}, not 3")
        gid = meta.get("grade_id")
        if not gid or not re.fullmatch(r"[A-Za-z0-9_\-]+", str(gid)):
            problems.append(f"{where}: grade_id {gid!r} missing or not [A-Za-z0-9_-]+")
        elif gid in seen:
            problems.append(f"{where}: grade_id {gid!r} already used by cell {seen[gid]}")
        else:
            seen[gid] = i
        if exercise:
            want = {"solution": True, "grade": False, "locked": False}
            if source.count(BEGIN) < 1 or source.count(BEGIN) != source.count(END):
                problems.append(f"{where}: exercise without matched {BEGIN} / {END} markers")
            if not checks_after(nb, i):
                problems.append(f"{where}: exercise {gid} is not followed by a graded cell")
        else:
            want = {"solution": False, "grade": True, "locked": True}
            if not points(cell) > 0:
                problems.append(f"{where}: graded cell {gid} has no positive points")
            if CHECK_OUTPUT_TAG not in tags(cell):
                problems.append(
                    f"{where}: graded cell {gid} lacks the {CHECK_OUTPUT_TAG} tag (nbval must compare it)"
                )
        for key, value in want.items():
            if meta.get(key) is not value:
                problems.append(
                    f"{where}: nbgrader {key} should be {value} for a {'exercise' if exercise else 'graded'} "
                    f"cell"
                )
    return problems


def strip_solution(source: str) -> str:
    """Replace each solution block by nbgrader's stub, at the block's indentation."""
    return _SOLUTION_BLOCK.sub(lambda m: "\n".join(m.group(1) + line for line in STUDENT_STUB), source)


def student_cell(cell: NotebookNode) -> NotebookNode:
    """A copy of ``cell`` as a student receives it (solution stubbed, outputs and run metadata cleared)."""
    copy = nbformat.from_dict(dict(cell))
    copy.metadata = nbformat.from_dict({k: v for k, v in cell.metadata.items() if k not in RUN_CELL_METADATA})
    if is_manual(copy):
        copy.source = MANUAL_STUB
    if copy.cell_type == "code":
        copy.source = strip_solution(copy.source)
        copy.outputs = []
        copy.execution_count = None
    return copy


def student_version(nb: NotebookNode) -> NotebookNode:
    """The student notebook: every solution stubbed, every output, execution count and run metadata
    (saved widget state, execution timings) cleared."""
    out = nbformat.from_dict(dict(nb))
    out.metadata = nbformat.from_dict({k: v for k, v in nb.metadata.items() if k not in RUN_METADATA})
    out.cells = [student_cell(c) for c in nb.cells]
    return out


def source_version(nb: NotebookNode) -> NotebookNode:
    """The notebook as nbgrader's ``source/`` should hold it: solutions kept, but outputs, execution
    counts and the executed run's metadata (saved widget state, timings) dropped, as in the student
    version. nbgrader's ``generate_assignment`` clears outputs but keeps the notebook-level widget
    state, so release notebooks copied straight from ``notebooks/`` would carry 12-175 KB of it."""
    out = nbformat.from_dict(dict(nb))
    out.metadata = nbformat.from_dict({k: v for k, v in nb.metadata.items() if k not in RUN_METADATA})
    cells = []
    for cell in nb.cells:
        copy = nbformat.from_dict(dict(cell))
        copy.metadata = nbformat.from_dict(
            {k: v for k, v in cell.metadata.items() if k not in RUN_CELL_METADATA}
        )
        if copy.cell_type == "code":
            copy.outputs = []
            copy.execution_count = None
        cells.append(copy)
    out.cells = cells
    return out


def write_student_versions(
    notebooks: list[Path], out_dir: Path, version: Callable[[NotebookNode], NotebookNode] | None = None
) -> list[Path]:
    """Check metadata, then write ``out_dir/NN_*.ipynb`` for each notebook (``version``: the student
    version by default, :func:`source_version` for nbgrader's source); returns the written paths."""
    version = version or student_version
    written = []
    for path in notebooks:
        nb = read_notebook(path)
        problems = metadata_problems(nb, path.name)
        if problems:
            raise ValueError(
                f"{problems[0]} (and {len(problems) - 1} more); fix the metadata before handing out"
            )
        target = out_dir / path.name
        text = nbformat.writes(version(nb)) + "\n"
        write_atomic(target, lambda tmp, text=text: tmp.write_text(text, encoding="utf-8"), suffix=".ipynb")
        written.append(target)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write the student versions of the workbook's notebooks.")
    parser.add_argument(
        "--out", type=Path, default=ROOT / "student", help="folder to write into (default: student/)"
    )
    parser.add_argument(
        "--nbgrader-source",
        action="store_true",
        help="write nbgrader's source notebooks: solutions kept, outputs and saved widget state dropped",
    )
    args = parser.parse_args(argv)
    try:
        args.out.mkdir(parents=True, exist_ok=True)
        version = source_version if args.nbgrader_source else student_version
        written = write_student_versions(workbook_notebooks(), args.out, version)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    for path in written:
        nb = nbformat.read(str(path), as_version=NB_VERSION)
        n_ex = sum(is_exercise(c) for c in nb.cells)
        n_gr = sum(is_graded(c) for c in nb.cells)
        print(
            f"wrote {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}: "
            f"{n_ex} exercise{'s' * (n_ex != 1)}, {n_gr} graded check{'s' * (n_gr != 1)}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
