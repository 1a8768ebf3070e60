"""nbgrader metadata of the committed notebooks, and the student version."""

from __future__ import annotations

import nbformat
import pytest

from tools import assignment as a

NOTEBOOKS = a.workbook_notebooks()


def test_there_are_notebooks():
    assert len(NOTEBOOKS) == 7


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_metadata_is_consistent(path):
    nb = a.read_notebook(path)
    assert a.metadata_problems(nb, path.name) == []
    assert any(a.is_exercise(c) for c in nb.cells), "every notebook has at least one exercise"


def test_grade_ids_unique_across_the_workbook():
    ids = [
        a.grade_id(c)
        for p in NOTEBOOKS
        for c in a.read_notebook(p).cells
        if a.is_exercise(c) or a.is_graded(c)
    ]
    assert len(ids) == len(set(ids))
    assert all(
        i[:2] == p.name[:2]
        for p in NOTEBOOKS
        for i in (a.grade_id(c) for c in a.read_notebook(p).cells if c.get("metadata", {}).get("nbgrader"))
    )


def _cell(source, tags=(), **meta):
    cell = nbformat.v4.new_code_cell(source)
    cell.metadata["tags"] = list(tags)
    if meta:
        cell.metadata["nbgrader"] = {"schema_version": 3, **meta}
    return cell


def _nb(*cells):
    nb = nbformat.v4.new_notebook()
    nb.cells = list(cells)
    return nb


EX = dict(solution=True, grade=False, locked=False, grade_id="99_ex1")
CHK = dict(solution=False, grade=True, locked=True, points=1, grade_id="99_check1")
SOLVED = "def f(x):\n    ### BEGIN SOLUTION\n    return 2 * x\n    ### END SOLUTION\n"


def test_metadata_problems_found():
    good = _nb(_cell(SOLVED, ["exercise"], **EX), _cell("check(f)", ["graded", "nbval-check-output"], **CHK))
    assert a.metadata_problems(good) == []
    no_check = _nb(_cell(SOLVED, ["exercise"], **EX), _cell("x = 1"))
    assert any("not followed by a graded cell" in p for p in a.metadata_problems(no_check))
    dup = _nb(
        _cell(SOLVED, ["exercise"], **EX),
        _cell("check(f)", ["graded", "nbval-check-output"], **{**CHK, "grade_id": "99_ex1"}),
    )
    assert any("already used" in p for p in a.metadata_problems(dup))
    unlocked = _nb(
        _cell(SOLVED, ["exercise"], **EX),
        _cell("check(f)", ["graded", "nbval-check-output"], **{**CHK, "locked": False}),
    )
    assert any("locked should be True" in p for p in a.metadata_problems(unlocked))
    untagged = _nb(_cell(SOLVED, [], **EX))
    assert any("neither the exercise nor the graded tag" in p for p in a.metadata_problems(untagged))
    no_meta = _nb(_cell("check(f)", ["graded"]))
    assert any("no nbgrader metadata" in p for p in a.metadata_problems(no_meta))
    no_markers = _nb(
        _cell("def f(x):\n    return x\n", ["exercise"], **EX),
        _cell("check(f)", ["graded", "nbval-check-output"], **CHK),
    )
    assert any("markers" in p for p in a.metadata_problems(no_markers))
    v2 = _nb(_cell("check(f)", ["graded", "nbval-check-output"], **{**CHK, "schema_version": 2}))
    assert any("schema_version" in p for p in a.metadata_problems(v2))


def test_strip_solution_keeps_indentation_and_surroundings():
    src = "import numpy as np\n\n" + SOLVED + "\ny = 3\n### BEGIN SOLUTION\nz = f(y)\n### END SOLUTION"
    out = a.strip_solution(src)
    assert out == (
        "import numpy as np\n\ndef f(x):\n    # YOUR CODE HERE\n    raise NotImplementedError()\n"
        "\ny = 3\n# YOUR CODE HERE\nraise NotImplementedError()"
    )


def test_student_version_clears_outputs_and_keeps_the_rest():
    nb = a.read_notebook(NOTEBOOKS[0])
    student = a.student_version(nb)
    assert len(student.cells) == len(nb.cells)
    for orig, cell in zip(nb.cells, student.cells, strict=True):
        assert cell.metadata == {k: v for k, v in orig.metadata.items() if k not in a.RUN_CELL_METADATA}
        if cell.cell_type == "markdown":
            assert cell.source == orig.source
            continue
        assert cell.outputs == [] and cell.execution_count is None
        assert a.BEGIN not in cell.source
        if a.is_exercise(orig):
            assert "raise NotImplementedError()" in cell.source and cell.source != orig.source
        else:
            assert cell.source == orig.source
    assert any(c.get("outputs") for c in nb.cells if c.cell_type == "code")  # the original is untouched
    nbformat.validate(student)


def test_student_version_drops_the_executed_runs_metadata():
    nb = a.read_notebook(NOTEBOOKS[0])
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {"x": "y" * 1000}}}
    nb.cells[0].metadata["execution"] = {"iopub.status.busy": "2026-11-25T00:00:00Z"}
    student = a.student_version(nb)
    assert "widgets" not in student.metadata and "kernelspec" in student.metadata
    assert all("execution" not in c.metadata for c in student.cells)
    assert "widgets" in nb.metadata  # the original is untouched
    text = nbformat.writes(student)
    assert "widget-state" not in text and "image/png" not in text
    assert len(text) < 60_000, len(text)


def test_write_student_versions(tmp_path):
    written = a.write_student_versions(NOTEBOOKS[:2], tmp_path / "student")
    assert [p.name for p in written] == [p.name for p in NOTEBOOKS[:2]]
    assert not list((tmp_path / "student").glob(".*"))  # no temp files left behind
    back = a.read_notebook(written[0])
    assert sum(a.is_graded(c) for c in back.cells) == 2


def test_read_notebook_errors_are_one_line(tmp_path):
    bad = tmp_path / "01_bad.ipynb"
    bad.write_text('{"cells": [')
    with pytest.raises(ValueError, match="not a readable notebook") as err:
        a.read_notebook(bad)
    assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match="no such notebook"):
        a.read_notebook(tmp_path / "missing.ipynb")
