"""The notebooks nbval runs (``make nbval``): each exercise's student version, then its checks wrapped so
that a check passing without the answer fails the run, then the solution and its checks as committed."""

from __future__ import annotations

import nbformat
import pytest

from tests.unit.tools.test_assignment import CHK, EX, SOLVED, _cell, _nb
from tools.invert import MARK, invert_version, main, must_fail_source


def _run(source: str, namespace: dict) -> None:
    exec(compile(source, "cell", "exec"), namespace)  # what the kernel does with the cell, in one namespace


def _notebook(check: str):
    check_cell = _cell(check, ["graded", "nbval-check-output"], **CHK)
    check_cell.outputs = [nbformat.v4.new_output("stream", text="PASSED 99_check1\n")]
    check_cell.execution_count = 3
    return _nb(_cell("x = 1"), _cell(SOLVED, ["exercise"], **EX), check_cell)


def test_sequence_student_then_wrapped_checks_then_solution_and_checks_with_outputs_kept():
    nb = invert_version(_notebook("assert f(2) == 4"))
    sources = [c.source for c in nb.cells]
    assert sources[0] == "x = 1"
    assert sources[1].startswith(MARK) and "raise NotImplementedError()" in sources[1]
    assert nb.cells[1].metadata["tags"] == ["raises-exception"], "a stub that raises is not a failure"
    assert "nbgrader" not in nb.cells[1].metadata, "the student copy is no graded cell"
    assert sources[2].startswith(MARK) and "99_check1 must fail" in sources[2]
    assert not nb.cells[2].outputs and nb.cells[2].execution_count is None, "nbval compares nothing there"
    assert sources[3] == SOLVED and sources[4] == "assert f(2) == 4"
    assert nb.cells[4].outputs[0]["text"] == "PASSED 99_check1\n", "nbval compares the graded outputs"
    nbformat.validate(nb)


def test_a_check_that_fails_without_the_answer_passes_the_wrapper_and_one_that_passes_fails_it():
    ns: dict = {}
    nb = invert_version(_notebook("assert f(2) == 4"))
    for cell in nb.cells[:3]:
        try:
            _run(cell.source, ns)
        except NotImplementedError:
            assert cell is nb.cells[1]
    lazy = invert_version(_notebook("assert f is not None"))  # passes with the stub: proves nothing
    ns = {}
    _run(lazy.cells[0].source, ns)
    _run(lazy.cells[1].source, ns)
    with pytest.raises(AssertionError, match="99_check1 passes with the student version of 99_ex1"):
        _run(lazy.cells[2].source, ns)


def test_wrapper_quotes_any_source():
    tricky = "s = '''a\\n\"b\"'''\nassert s == 'x'"
    with pytest.raises(AssertionError, match="passes"):
        _run(must_fail_source("pass", "q", "e"), {})
    _run(must_fail_source(tricky, "q", "e"), {})


def test_cli_replaces_the_folders_notebooks_and_refuses_a_damaged_one(tmp_path, capsys):
    src = tmp_path / "99_demo.ipynb"
    src.write_text(nbformat.writes(_notebook("assert f(2) == 4")))
    out = tmp_path / "out"
    out.mkdir()
    (out / "00_stale.ipynb").write_text("{}")
    assert main([str(src), "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["99_demo.ipynb"]
    bad = tmp_path / "98_bad.ipynb"
    bad.write_text("{not json")
    assert main([str(bad), "--out", str(out)]) == 2
    assert "not a readable notebook" in capsys.readouterr().err
