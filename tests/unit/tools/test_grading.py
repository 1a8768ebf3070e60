"""Grading on tiny notebooks: outcomes, broken cells, restored checks, bad input, the attacks on the
grader (issue 20), students isolated from each other, time limits and the incremental CSV."""

from __future__ import annotations

import json
import stat
import textwrap

import nbformat
import pandas as pd
import pytest

from helpers.config import ROOT
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


# ---------------------------------------------------------------------------------------------
# attacks on the grader: each must fail against it (issue 20)

SINK = "def sink_ratio(x, positions):\n"
SINK_SOLVED = (
    SINK + "    ### BEGIN SOLUTION\n    norms = np.linalg.norm(x, axis=-1)\n"
    "    return float(norms[positions == 0].mean() / norms[positions > 0].mean())\n    ### END SOLUTION"
)
STUB = SINK + "    # YOUR CODE HERE\n    raise NotImplementedError()\n"


def _sink_reference(path):
    """A one-exercise notebook graded by the workbook's real check_sink_ratio."""
    return _write(
        path,
        [
            _code("import numpy as np\nfrom helpers.exercises.layer_scan import check_sink_ratio"),
            _code(SINK_SOLVED, ["exercise"], {**EX, "grade_id": "01_ex1"}),
            _code(
                "check_sink_ratio(sink_ratio)",
                ["graded", "nbval-check-output"],
                {**CHK, "grade_id": "01_check1"},
            ),
        ],
    )


def _submit(tmp_path, ref, exercise_source, who="mallory"):
    nb = student_version(nbformat.read(str(ref), as_version=4))
    nb.cells[1].source = exercise_source
    folder = tmp_path / who
    folder.mkdir()
    nbformat.write(nb, str(folder / ref.name))
    return folder / ref.name


def _rows(path, ref, **kw):
    return {r.check: r for r in grading.grade_notebook(path, ref, "mallory", **kw)}


@pytest.fixture(scope="module")
def sink_ref(tmp_path_factory):
    return _sink_reference(tmp_path_factory.mktemp("ref") / "01_sink.ipynb")


def test_the_solution_passes_and_the_stub_fails(tmp_path, sink_ref):
    assert _rows(sink_ref, sink_ref)["01_check1"].passed
    row = _rows(_submit(tmp_path, sink_ref, STUB), sink_ref)["01_check1"]
    assert not row.passed and "not answered yet" in row.failure


ATTACKS = {
    # the attack: rebind the check in the exercise cell, printing what a pass prints
    "rebind_check": STUB + "\ncheck_sink_ratio = lambda f: print('PASSED sink_ratio: matches')\n",
    # rebind what a guard written in the student's namespace would call
    "rebind_builtins": STUB + "\nprint = exec = compile = getattr = dict = globals = lambda *a, **k: None\n",
    # monkeypatch the checks' module and its helpers, in place
    "patch_module": STUB
    + textwrap.dedent(
        """
        import helpers.exercises.layer_scan as m, helpers.exercises.common as c
        m.check_sink_ratio = lambda f: print('PASSED sink_ratio')
        c.call = lambda fn, *args: 1.0
        c.close = lambda a, b, rtol=1e-4: True
        """
    ),
    # patch the reference solution the check compares with, and answer what the patch returns
    "patch_reference": SINK
    + "    return 0.0\nimport helpers.data.layer_scan as L\nL.sink_ratio = lambda x, positions: 0.0\n",
    # print the success line and raise nothing from inside the student's function
    "print_and_return": SINK + "    print('PASSED sink_ratio: matches the reference')\n    return 0.0\n",
}


@pytest.mark.parametrize("attack", list(ATTACKS))
def test_attacks_on_the_check_fail(tmp_path, sink_ref, attack):
    rows = _rows(_submit(tmp_path, sink_ref, ATTACKS[attack]), sink_ref)
    assert not rows["01_check1"].passed, rows["01_check1"]
    assert rows["01_check1"].failure


def test_attacks_are_listed_for_review(tmp_path, sink_ref):
    nb = nbformat.read(str(_submit(tmp_path, sink_ref, ATTACKS["patch_module"])), as_version=4)
    ref = nbformat.read(str(sink_ref), as_version=4)
    found = grading.review_findings(nb, ref)
    assert found and "`helpers.exercises`" in found[0]
    nb.cells[1].source = ATTACKS["rebind_check"]
    assert grading.review_findings(nb, ref) == ["cell 1 rebinds `check_sink_ratio`"]
    nb.cells[1].source = SINK + "    max = sum = 0\n    return 1.0\n"  # local names are nobody's business
    assert grading.review_findings(nb, ref) == []
    assert grading.review_findings(ref, ref) == []


def test_guarded_source_runs_the_fresh_check_and_prints_the_token():
    src = grading.guarded_source("check_x(f)", {"check_x": "helpers.exercises.layer_scan"}, "TOKEN-1")
    compile(src, "<guard>", "exec")
    assert "import_module" in src and "TOKEN-1" in src and "'check_x(f)'" in src


# ---------------------------------------------------------------------------------------------
# students isolated from each other, from the references and from the committed results

MAKE = "from helpers.config import paths\nimport json\n"
VALUE = "def value():\n    ### BEGIN SOLUTION\n    return 7\n    ### END SOLUTION"
DOUBLE = "def double(v):\n    ### BEGIN SOLUTION\n    return 2 * v\n    ### END SOLUTION"


def _pipeline(folder):
    """01 writes value() to its output folder; 02 reads it back (as 02 reads 01's layer scan)."""
    folder.mkdir(parents=True)
    one = _write(
        folder / "01_make.ipynb",
        [
            _code(MAKE),
            _code(VALUE, ["exercise"], {**EX, "grade_id": "01_ex1"}),
            _code("assert value() == 7", ["graded", "nbval-check-output"], {**CHK, "grade_id": "01_check1"}),
            _code("(paths().data / 'v.json').write_text(json.dumps(value()))"),
        ],
    )
    two = _write(
        folder / "02_use.ipynb",
        [
            _code(MAKE + "v = json.loads((paths().data / 'v.json').read_text())"),
            _code(DOUBLE, ["exercise"], {**EX, "grade_id": "02_ex1"}),
            _code(
                "assert double(v) == 14", ["graded", "nbval-check-output"], {**CHK, "grade_id": "02_check1"}
            ),
        ],
    )
    return [one, two]


def _hand_in(folder, ref, exercise_source):
    folder.mkdir(parents=True, exist_ok=True)
    nb = nbformat.read(str(ref), as_version=4)
    if exercise_source is not None:
        nb = student_version(nb)
        nb.cells[1].source = exercise_source
    nbformat.write(nb, str(folder / ref.name))


def test_students_graded_together_cannot_affect_each_other(tmp_path):
    refs = _pipeline(tmp_path / "ref")
    ref_two = refs[1].read_text()
    subs = tmp_path / "class"
    # ann: a wrong value() poisons her own output; she overwrites the reference notebook (by its absolute
    # path and by name in her working folder) with a neutered check, and writes into her output folder
    poison = textwrap.dedent(
        f"""
        def value():
            return 100
        import pathlib, nbformat
        for target in [pathlib.Path({str(refs[1])!r}), pathlib.Path('02_use.ipynb')]:
            nb = nbformat.read(str({str(refs[1])!r}), as_version=4)
            nb.cells[2].source = 'pass'
            nbformat.write(nb, str(target))
        """
    )
    _hand_in(subs / "ann", refs[0], poison)
    _hand_in(subs / "ann", refs[1], None)
    # bob: notebook 01 broken (no v.json of his own), notebook 02 solved
    _hand_in(subs / "bob", refs[0], "raise RuntimeError('bob broke notebook 01')")
    _hand_in(subs / "bob", refs[1], None)
    # cat: notebook 01 solved, notebook 02 not answered
    _hand_in(subs / "cat", refs[0], None)
    _hand_in(subs / "cat", refs[1], "def double(v):\n    raise NotImplementedError()")
    table = grading.grade(
        subs, notebooks=refs, cache_dir=tmp_path / "cache", root=tmp_path / "root", log=lambda m: None
    )
    got = {(r.student, r.check): r.passed for r in table.itertuples()}
    assert got[("ann", "01_check1")] is False and got[("ann", "02_check1")] is False  # her own v = 100
    assert got[("bob", "01_check1")] is False
    assert got[("bob", "02_check1")] is True  # starts from the prepared v = 7, not ann's 100
    assert got[("cat", "01_check1")] is True
    assert got[("cat", "02_check1")] is False  # the reference read before ann ran, not her neutered one
    # the prepared outputs: made once from the references, read-only, untouched by the students
    (seed,) = (tmp_path / "cache").glob("ci-*")
    assert json.loads((seed / "data" / "v.json").read_text()) == 7
    assert not (seed / "data" / "v.json").stat().st_mode & stat.S_IWUSR
    # nothing reached the repository's ci outputs; ann's overwrite hit only the file, after it was read
    assert not (ROOT / ".ci_out" / "data" / "v.json").exists()
    assert refs[1].read_text() != ref_two


def test_a_changed_workbook_file_is_put_back_and_reported(tmp_path):
    (tmp_path / "helpers").mkdir()
    (tmp_path / "data").mkdir()
    code, data = tmp_path / "helpers" / "checks.py", tmp_path / "data" / "prompts.csv"
    code.write_text("def check(): raise AssertionError\n")
    data.write_text("a,b\n")
    guard = grading.FileGuard(tmp_path)
    assert guard.changes() == []
    code.write_text("def check(): pass\n")
    data.write_text("a,b,c\n")
    assert guard.changes() == ["helpers/checks.py (put back)", "data/prompts.csv (changed)"]
    assert code.read_text() == "def check(): raise AssertionError\n"
    assert guard.changes() == []
    rows = [grading.Row("ann", "01.ipynb", "01_check1", 1, True)]
    voided = grading._void(rows, ["helpers/checks.py (put back)"])
    assert [(r.check, r.passed) for r in voided] == [("01_check1", False), ("(files)", False)]


# ---------------------------------------------------------------------------------------------
# time limits, and the table written as it grows


def test_an_endless_loop_stops_at_the_notebook_limit(tmp_path, sink_ref):
    sub = _submit(tmp_path, sink_ref, SINK + "    while True:\n        pass\n")
    rows = _rows(sub, sink_ref, timeout=60, notebook_timeout=3)
    assert not rows["01_check1"].passed
    assert rows["01_check1"].failure.startswith("timed out after ")
    assert "notebook's limit of 3 s" in rows["01_check1"].failure
    cell = _rows(sub, sink_ref, timeout=2, notebook_timeout=60)["01_check1"]
    assert cell.failure == "timed out after 2 s"


def test_rows_are_written_as_they_come(tmp_path):
    refs = _pipeline(tmp_path / "ref")
    csv = tmp_path / "grades.csv"

    def log(message):
        if "02_use" in message:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        grading.grade(notebooks=refs, csv=csv, cache_dir=None, root=tmp_path / "root", log=log)
    table = pd.read_csv(csv)
    assert list(table.columns) == grading.COLUMNS
    assert table[["notebook", "check", "passed"]].values.tolist() == [["01_make.ipynb", "01_check1", True]]
