"""The grader, attacked as a hostile student would, through ``grade()`` (what ``make grade`` runs) on a
two-exercise notebook that needs no model (notebook 01's checks): every attack scores 0 on the check it
attacks, the complete solution scores full marks, and one student cannot reach another or the
prepared outputs. Each README claim of "For instructors" names the test here that backs it."""

from __future__ import annotations

import nbformat
import pandas as pd
import pytest

from tools import grading, kernel

CHK = dict(schema_version=3, solution=False, grade=True, locked=True, points=1)
EX = dict(schema_version=3, solution=True, grade=False, locked=False)
STUB = "def sink_ratio(x, positions):\n    raise NotImplementedError()\n"
SINK = (
    "def sink_ratio(x, positions):\n    ### BEGIN SOLUTION\n    n = np.linalg.norm(x, axis=-1)\n"
    "    return float(n[positions == 0].mean() / n[positions > 0].mean())\n    ### END SOLUTION"
)
PARTICIPATION = (
    "def participation_ratio(x):\n    ### BEGIN SOLUTION\n    xc = x - x.mean(0)\n"
    "    lam = np.linalg.eigvalsh(xc.T @ xc / (len(x) - 1))\n"
    "    return float(lam.sum() ** 2 / (lam**2).sum())\n"
    "    ### END SOLUTION"
)


def _code(source, tags=(), nbgrader=None):
    cell = nbformat.v4.new_code_cell(source)
    cell.metadata["tags"] = list(tags)
    if nbgrader:
        cell.metadata["nbgrader"] = nbgrader
    return cell


def _reference():
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        _code(
            "import numpy as np\nfrom helpers.data import layer_scan\n"
            "from helpers.exercises.layer_scan import check_participation_ratio, check_sink_ratio"
        ),
        _code(SINK, ["exercise"], {**EX, "grade_id": "99_ex1"}),
        _code(
            "check_sink_ratio(sink_ratio)", ["graded", "nbval-check-output"], {**CHK, "grade_id": "99_check1"}
        ),
        _code(PARTICIPATION, ["exercise"], {**EX, "grade_id": "99_ex2"}),
        _code(
            "check_participation_ratio(participation_ratio)",
            ["graded", "nbval-check-output"],
            {**CHK, "grade_id": "99_check2"},
        ),
    ]
    return nb


# one submission per attack: {cell index: new source}; the check it attacks
ATTACKS = {
    "rebind_check": (
        {1: STUB + "check_sink_ratio = lambda *a, **k: print('PASSED sink_ratio')"},
        "99_check1",
    ),
    "print_passed": ({1: STUB + "print('PASSED sink_ratio: right on every public case (3)')"}, "99_check1"),
    "print_token": ({1: STUB + "print('grader-ok-' + '0' * 32)"}, "99_check1"),
    "call_reference": (
        {1: "def sink_ratio(x, positions):\n    return layer_scan.sink_ratio(x, positions)"},
        "99_check1",
    ),
    "alias_reference": ({3: "participation_ratio = layer_scan.participation_ratio"}, "99_check2"),
    "import_as": (
        {3: "from helpers.data.layer_scan import participation_ratio as mine\nparticipation_ratio = mine"},
        "99_check2",
    ),
    "bound_after": (
        {
            3: "def participation_ratio(x):\n    from helpers.data import layer_scan as m\n"
            "    return m.participation_ratio(x)"
        },
        "99_check2",
    ),
    "module_object": (
        {3: "m = layer_scan\nparticipation_ratio = getattr(m, 'participation' + '_ratio')"},
        "99_check2",
    ),
    "getattr_string": ({3: "participation_ratio = getattr(layer_scan, 'participation_ratio')"}, "99_check2"),
    "function_type": (
        {
            1: "import types\nf = layer_scan.sink_ratio\n"
            "sink_ratio = types.FunctionType(f.__code__, f.__globals__)"
        },
        "99_check1",
    ),
    "getsource": (
        {1: "import inspect\nexec(inspect.getsource(layer_scan.sink_ratio))"},
        "99_check1",
    ),
    "lookup_table": (
        {
            1: "from helpers.exercises import layer_scan as L\n"
            "_t = {c['x'].shape: float(L.SINK.solve(c)['value']) for c in L.SINK.public()}\n"
            "def sink_ratio(x, positions):\n    return _t.get(x.shape, 1.0)"
        },
        "99_check1",
    ),
    "constants": (
        {
            3: "def participation_ratio(x):\n"
            "    return {(200, 8): 2.2045, (50, 8): 2.6546, (40, 6): 1.0001}[x.shape]"
        },
        "99_check2",
    ),
    "patch_judge_in_kernel": (
        {
            1: STUB + "import helpers.exercises.common as c\nc.close = lambda *a, **k: True\n"
            "c.judge_all = lambda *a, **k: None"
        },
        "99_check1",
    ),
    # found by a red team after the first version: each scored then
    "closure_lookup": (
        {
            1: "import glob\nimport numpy as np\nfrom helpers.exercises.common import read_cases\n"
            "c = check_sink_ratio\nex = c.__closure__[0].cell_contents\n_t = {}\n"
            "for f in glob.glob('../../.answers-*/*.npz') + glob.glob('../.answers-*/*.npz'):\n"
            "    for case in read_cases(f):\n"
            "        _t[case['x'].tobytes()] = float(ex.solve(case)['value'])\n"
            "def sink_ratio(x, positions):\n    return _t.get(np.asarray(x).tobytes(), 1.0)"
        },
        "99_check1",
    ),
    "globals_concat": (
        {3: "participation_ratio = layer_scan.token_norms.__globals__['participation' + '_ratio']"},
        "99_check2",
    ),
    "code_concat": (
        {
            3: "_f = layer_scan.token_norms.__globals__['participation' + '_ratio']\n"
            "participation_ratio = type(_f)(getattr(_f, '__co' + 'de__'), _f.__globals__)"
        },
        "99_check2",
    ),
    "forge_outputs": (
        {
            1: "import glob\nfrom pathlib import Path\n"
            "from helpers.exercises.common import read_cases, write_cases\n"
            "ex = check_sink_ratio.__closure__[0].cell_contents\n"
            "for f in glob.glob('../../.answers-*/*.npz'):\n"
            "    write_cases(Path(f), [ex.solve(c) for c in read_cases(f)])"
        },
        "99_check1",
    ),
    "edit_helpers_on_disk": (
        {
            1: STUB + "import pathlib, helpers.exercises.layer_scan as L\np = pathlib.Path(L.__file__)\n"
            "_old = p.read_text()\np.write_text(_old.replace('if close(got', 'if True or close(got'))",
            4: "check_participation_ratio(participation_ratio)\np.write_text(_old)",
        },
        "99_check1",
    ),
}


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """One run of the grader over the complete solution, an empty student and every attack."""
    root = tmp_path_factory.mktemp("grading")
    ref = root / "99_tiny.ipynb"
    nbformat.write(_reference(), str(ref))
    subs = root / "subs"
    (subs / "complete").mkdir(parents=True)
    nbformat.write(_reference(), str(subs / "complete" / ref.name))
    (subs / "no_notebook").mkdir()
    for folder in ("dup/a", "dup/b"):
        (subs / folder).mkdir(parents=True)
        nbformat.write(_reference(), str(subs / folder / ref.name))
    for name, (edits, _) in {
        **ATTACKS,
        "other_students": (
            {
                1: SINK.replace("### BEGIN SOLUTION", "import os\n    ### BEGIN SOLUTION")
                + "\nimport os\nfor k in range(60):\n"
                "    os.makedirs(f'../student-{k:03d}/outputs', exist_ok=True)\n"
                "    os.makedirs(f'../../student-{k:03d}/outputs', exist_ok=True)"
            },
            None,
        ),
        "poison_cache": (
            {
                1: STUB
                + "import os, pathlib\nfor d in pathlib.Path(os.environ['WORKBOOK_OUTPUT']).parents[3].rglob("
                "'.complete'):\n    os.chmod(d.parent, 0o755)\n    (d.parent / 'poison.txt').write_text('x')"
            },
            None,
        ),
        "crash": ({1: "import os\nos._exit(1)"}, None),
        # a process that outlives the kernel, writing right answers for the students after it
        "daemon_a": (
            {
                1: STUB + "import os, time, glob\nfrom pathlib import Path\n"
                "from helpers.exercises.common import read_cases, write_cases\n"
                "from helpers.exercises import layer_scan as L\n"
                "if os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n"
                "        end = time.time() + 60\n        while time.time() < end:\n"
                "            for f in glob.glob(os.path.abspath('../..') + '/.answers-*/*.npz'):\n"
                "                try:\n                    cases = read_cases(f)\n"
                "                    ex = L.SINK if 'positions' in cases[0] else L.PARTICIPATION\n"
                "                    write_cases(Path(f), [ex.solve(c) for c in cases])\n"
                "                except Exception:\n                    pass\n            time.sleep(0.002)\n"
                "    os._exit(0)\nelse:\n    os.wait()"
            },
            None,
        ),
        "daemon_z_victim": (
            {1: STUB, 3: "def participation_ratio(x):\n    raise NotImplementedError()"},
            None,
        ),
        "files_dir": (
            {
                1: SINK + "\nimport os, helpers\n"
                "_p = os.path.join(helpers.__path__[0], 'exercises', 'splitting.py')\n"
                "os.remove(_p)\nos.mkdir(_p)"
            },
            None,
        ),
        "deep_tree": (
            {
                1: SINK
                + "\nimport os\n_here = os.open('.', os.O_RDONLY)\nos.makedirs('deep', exist_ok=True)\n"
                "os.chdir('deep')\nfor _ in range(1100):\n    os.mkdir('d')\n    os.chdir('d')\n"
                "os.fchdir(_here)"
            },
            None,
        ),
    }.items():
        nb = _reference()
        for i, source in edits.items():
            nb.cells[i].source = source
        (subs / name).mkdir()
        nbformat.write(nb, str(subs / name / ref.name))
    cache = root / "cache"
    table = grading.grade(subs, notebooks=[ref], cache_dir=cache, log=lambda m: None, seed=0)
    return table, cache


def _rows(table: pd.DataFrame, student: str) -> dict[str, pd.Series]:
    return {r.check: r for r in table[table.student == student].itertuples()}


def test_the_complete_solution_scores_full_marks(graded):
    rows = _rows(graded[0], "complete")
    assert rows["99_check1"].passed and rows["99_check2"].passed
    assert set(rows) == {"99_check1", "99_check2"}  # nothing to review


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_each_attack_scores_0_on_its_check(graded, attack):
    rows = _rows(graded[0], attack)
    assert not rows[ATTACKS[attack][1]].passed, rows[ATTACKS[attack][1]].failure


def test_reference_use_is_named_in_the_row(graded):
    failure = _rows(graded[0], "alias_reference")["99_check2"].failure
    assert failure.startswith("uses the reference") and "layer_scan.participation_ratio" in failure
    assert _rows(graded[0], "alias_reference")["99_check1"].passed  # only the attacked exercise


def test_edited_helpers_are_put_back_and_void(graded):
    rows = _rows(graded[0], "edit_helpers_on_disk")
    assert "(files)" in rows and "helpers/exercises/layer_scan.py" in rows["(files)"].failure


def test_one_student_cannot_reach_another_or_the_prepared_outputs(graded):
    table, cache = graded
    others = _rows(table, "other_students")
    assert others["99_check1"].passed and others["99_check2"].passed
    poison = _rows(table, "poison_cache")
    assert "prepared reference outputs" in poison["(files)"].failure
    assert not any(cache.rglob("poison.txt"))
    later = [s for s in sorted(set(table.student)) if s > "poison_cache"]
    assert later and all(_rows(table, s).get("(files)") is None for s in later if s not in ATTACKS)


def test_every_student_folder_gets_rows(graded):
    table = graded[0]
    assert _rows(table, "no_notebook")["99_check1"].failure == "notebook missing from the submission"
    assert "2 copies of the notebook" in _rows(table, "dup")["99_check1"].failure
    crash = _rows(table, "crash")
    assert not crash["99_check1"].passed and "kernel died" in crash["99_check1"].failure
    assert _rows(table, "rebind_check")["99_check2"].passed  # the run went on after the crash


def test_left_behind_processes_trees_and_folders_harm_no_one_else(graded):
    table = graded[0]
    victim = _rows(table, "daemon_z_victim")
    assert not victim["99_check1"].passed and not victim["99_check2"].passed
    assert "processes behind" in _rows(table, "daemon_a")["(files)"].failure
    assert "helpers/exercises/splitting.py (put back)" in _rows(table, "files_dir")["(files)"].failure
    assert _rows(table, "deep_tree")["99_check1"].passed  # its own work counts; the tree is removed
    later = _rows(table, "rebind_check")
    assert later["99_check2"].passed and "(files)" not in later and "(error)" not in later


def test_failures_never_carry_the_expected_value(graded):
    table = graded[0]
    assert not table.failure.str.contains("expected").any()


def test_run_cells_goes_on_after_errors(tmp_path):
    cells = [
        _code("a = 1"),
        _code("raise ValueError('bad input\\nsecond line')"),
        nbformat.v4.new_markdown_cell("x"),
        _code("print(a + 1)"),
    ]
    results = kernel.run_cells(cells, cwd=tmp_path)
    assert [r.ok for r in results] == [True, False, True, True]
    assert results[1].error == "ValueError: bad input"


def test_an_endless_loop_stops_at_the_notebook_limit(tmp_path):
    cells = [_code("x = 1"), _code("while True:\n    pass"), _code("print(x)")]
    results = kernel.run_cells(cells, cwd=tmp_path, timeout=60, notebook_timeout=3)
    assert results[0].ok and "limit of 3 s" in results[1].error and not results[2].ran


def test_bad_input_becomes_one_line(tmp_path):
    with pytest.raises(ValueError, match="not a folder"):
        grading.submissions(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no .ipynb files and no student folders"):
        grading.submissions(tmp_path / "empty")


def test_prepare_alone_sets_the_graders_secret(tmp_path, monkeypatch):
    """`python -m tools.grading --prepare` (the nbgrader recipe's first step) ran the references without
    the secret the diagnosis is judged with, so on a fresh clone the workbook's own 03 failed to prepare."""
    from helpers.sae.bad_runs import SECRET_ENV

    monkeypatch.delenv(SECRET_ENV, raising=False)
    seen = []

    def fake_run_student(*args, **kw):
        seen.append(grading.os.environ.get(SECRET_ENV))

    monkeypatch.setattr(grading, "run_student", fake_run_student)
    monkeypatch.setattr(grading.isolation, "store_prepared", lambda out, *a, **k: out)
    ref = nbformat.v4.new_notebook()
    grading.prepared_outputs(
        [("99_tiny.ipynb", ref)], work=tmp_path, rng=None, cache_dir=tmp_path / "cache", log=lambda m: None
    )
    grading.os.environ.pop(SECRET_ENV, None)  # the secret set here must not leak into other tests
    assert seen and seen[0], "the references ran without the grader's secret"
