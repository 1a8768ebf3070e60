"""Grading on tiny notebooks: outcomes, broken cells, restored checks, bad input."""

from __future__ import annotations

import nbformat
import pandas as pd
import pytest

from tools import grading
from tools.assignment import student_version

CHK = dict(schema_version=3, solution=False, grade=True, locked=True, points=1)
EX = dict(schema_version=3, solution=True, grade=False, locked=False, grade_id="99_ex1")


def _write(path, cells):
    nb = nbformat.v4.new_notebook()
    nb.cells = cells
    nbformat.write(nb, str(path))
    return path


def _code(source, tags=(), nbgrader=None):
    cell = nbformat.v4.new_code_cell(source)
    cell.metadata["tags"] = list(tags)
    if nbgrader:
        cell.metadata["nbgrader"] = nbgrader
    return cell


def _reference(path):
    return _write(
        path,
        [
            nbformat.v4.new_markdown_cell("# Tiny"),
            _code(
                "def double(x):\n    ### BEGIN SOLUTION\n    return 2 * x\n    ### END SOLUTION",
                ["exercise"],
                EX,
            ),
            _code(
                "assert double(3) == 6, 'double(3) should be 6'\nprint('PASSED double')",
                ["graded", "nbval-check-output"],
                {**CHK, "grade_id": "99_check1"},
            ),
            _code("y = 1 / 0"),
            _code(
                "print(y)", ["graded", "nbval-check-output"], {**CHK, "grade_id": "99_check2", "points": 2}
            ),
        ],
    )


def test_run_cells_goes_on_after_errors(tmp_path):
    cells = [
        _code("a = 1"),
        _code("raise ValueError('bad input\\nsecond line')"),
        nbformat.v4.new_markdown_cell("x"),
        _code("print(a + 1)"),
    ]
    results = grading.run_cells(cells, cwd=tmp_path)
    assert [r.ok for r in results] == [True, False, True, True]
    assert results[1].error == "ValueError: bad input"


def test_grade_reference_and_broken_cell(tmp_path):
    ref = _reference(tmp_path / "99_tiny.ipynb")
    rows = {r.check: r for r in grading.grade_notebook(ref, ref)}
    assert rows["99_check1"].passed and rows["99_check1"].failure == ""
    assert not rows["99_check2"].passed and rows["99_check2"].failure.startswith("NameError")
    assert (
        rows["(cell 3)"].failure == "ungraded cell 3 `y = 1 / 0` raised ZeroDivisionError: division by zero"
    )
    text = grading.format_table(pd.DataFrame([r.__dict__ for r in rows.values()]))
    assert text.splitlines()[0].split() == ["student", "notebook", "check", "points", "passed", "failure"]
    assert "99_check2  2 " in text
    assert rows["99_check2"].points == 2


def test_submission_checks_are_restored_and_student_version_fails(tmp_path):
    ref = _reference(tmp_path / "99_tiny.ipynb")
    sub_dir = tmp_path / "sub"
    sub_dir.mkdir()
    student = student_version(nbformat.read(str(ref), as_version=4))
    student.cells[2].source = "pass  # a student silencing the check"
    nbformat.write(student, str(sub_dir / ref.name))
    rows = {r.check: r for r in grading.grade_notebook(sub_dir / ref.name, ref, "ann")}
    assert not rows["99_check1"].passed
    assert rows["99_check1"].failure.startswith("NotImplementedError")
    assert rows["99_check1"].student == "ann"


def test_bad_input_becomes_rows(tmp_path):
    ref = _reference(tmp_path / "99_tiny.ipynb")
    missing = grading.grade_notebook(tmp_path / "nope" / ref.name, ref)
    assert [r.check for r in missing] == ["99_check1", "99_check2"]
    assert all(not r.passed and r.failure == "notebook missing from the submission" for r in missing)
    broken = tmp_path / "broken" / ref.name
    broken.parent.mkdir()
    broken.write_text("{ not json")
    rows = grading.grade_notebook(broken, ref)
    assert all("not a readable notebook" in r.failure for r in rows)
    (tmp_path / "bare").mkdir()
    bare = _write(tmp_path / "bare" / ref.name, [_code("x = 1")])
    rows = grading.grade_notebook(bare, ref)
    assert {r.failure for r in rows} == {"no graded cells in this notebook"}
    no_checks = _write(tmp_path / "98_none.ipynb", [_code("x = 1")])
    assert [(r.check, r.failure) for r in grading.grade_notebook(no_checks, no_checks)] == [
        ("-", "no graded cells in this notebook")
    ]


def test_submissions_layouts(tmp_path):
    (tmp_path / "one").mkdir()
    (tmp_path / "one" / "01_a.ipynb").write_text("{}")
    assert grading.submissions(tmp_path / "one") == [("one", tmp_path / "one")]
    for who in ("bob", "ann"):
        (tmp_path / "class" / who / "hw").mkdir(parents=True)
        (tmp_path / "class" / who / "hw" / "01_a.ipynb").write_text("{}")
    assert [s for s, _ in grading.submissions(tmp_path / "class")] == ["ann", "bob"]
    with pytest.raises(ValueError, match="not a folder"):
        grading.submissions(tmp_path / "absent")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no .ipynb"):
        grading.submissions(tmp_path / "empty")


def test_invert_check_on_a_tiny_notebook(tmp_path):
    ok = _write(
        tmp_path / "97_ok.ipynb",
        [
            _code(
                "def double(x):\n    ### BEGIN SOLUTION\n    return 2 * x\n    ### END SOLUTION",
                ["exercise"],
                EX,
            ),
            _code(
                "assert double(3) == 6", ["graded", "nbval-check-output"], {**CHK, "grade_id": "97_check1"}
            ),
        ],
    )
    assert grading.invert_check(ok) == []
    leaky = _write(
        tmp_path / "96_leaky.ipynb",
        [
            _code("answer = 6"),
            _code(
                "### BEGIN SOLUTION\nanswer = 6\n### END SOLUTION", ["exercise"], {**EX, "grade_id": "96_ex1"}
            ),
            _code("assert answer == 6", ["graded", "nbval-check-output"], {**CHK, "grade_id": "96_check1"}),
        ],
    )
    assert grading.invert_check(leaky) == [
        "96_leaky.ipynb 96_check1: passes with the student version (no answer written)"
    ]
