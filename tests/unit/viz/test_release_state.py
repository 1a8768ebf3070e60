"""Issue 29: nbgrader's route drops the executed run's saved widget state, as ``make student`` does
(nbgrader's generate_assignment clears outputs but keeps notebook-level widget state). Kept here
because this round's brief limited new tests to tests/unit/viz; it belongs with tests/unit/tools."""

import nbformat

from tools import assignment as a

NOTEBOOKS = a.workbook_notebooks()


def test_nbgrader_source_keeps_solutions_and_drops_saved_widget_state(tmp_path):
    with_state = [p for p in NOTEBOOKS if "widgets" in a.read_notebook(p).metadata]
    assert with_state, "no committed notebook carries widget state: nothing to test"
    written = a.write_student_versions(with_state[:1], tmp_path / "source", a.source_version)
    back = a.read_notebook(written[0])
    text = nbformat.writes(back)
    assert "widgets" not in back.metadata and "widget-state" not in text
    assert all(not c.get("outputs") for c in back.cells if c.cell_type == "code")
    assert any(a.BEGIN in c.source for c in back.cells if a.is_exercise(c))  # solutions kept
    assert not a.metadata_problems(back, written[0].name)


def test_the_command_line_writes_nbgrader_source(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(a, "workbook_notebooks", lambda: NOTEBOOKS[:2])
    assert a.main(["--nbgrader-source", "--out", str(tmp_path / "src")]) == 0
    names = sorted(p.name for p in (tmp_path / "src").glob("*.ipynb"))
    assert names == sorted(p.name for p in NOTEBOOKS[:2])
    assert all("widgets" not in a.read_notebook(tmp_path / "src" / n).metadata for n in names)
