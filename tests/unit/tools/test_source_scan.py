"""The source scan on the workbook's own notebooks: every graded cell's checks are known to the grader,
and no notebook's solution is flagged as using its reference (no false positives on honest work)."""

from __future__ import annotations

import importlib

import pytest

from helpers.exercises.common import exercise_of
from tools.assignment import graded_cells, read_notebook, student_version, workbook_notebooks
from tools.source_scan import Guarded, check_calls, check_modules, reference_uses

NOTEBOOKS = workbook_notebooks()


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_graded_check_is_guarded(path):
    nb = read_notebook(path)
    modules = check_modules(nb)
    calls = [call for _, cell in graded_cells(nb) for call in check_calls(cell.source)]
    assert calls, "a notebook with graded cells calls checks"
    for check, _ in calls:
        assert check in modules, f"{check} is called in a graded cell but not imported from helpers.exercises"
        ex = exercise_of(importlib.import_module(modules[check]), check)
        assert len(ex.public()) >= 1 or ex.name == "diagnosis"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_the_solutions_use_no_reference(path):
    nb = read_notebook(path)
    modules = check_modules(nb)
    guarded = []
    for check, module in modules.items():
        ex = exercise_of(importlib.import_module(module), check)
        guarded.append(Guarded(ex.name, ex.references, module))
    # the solution cells, scanned as a student's own cells (the reference is the student version)
    assert reference_uses(nb, student_version(nb), guarded) == {}


def test_the_forms_of_reference_use(tmp_path):
    import nbformat

    ref = nbformat.v4.new_notebook()
    ref.cells = [
        nbformat.v4.new_code_cell(
            "from helpers.data import layer_scan\nfrom helpers.analysis import features as F"
        )
    ]
    g = [Guarded("pr", ("helpers.data.layer_scan.participation_ratio",), "helpers.exercises.layer_scan")]
    honest = [
        "def participation_ratio(x):\n    return layer_scan.outlier_dims(x)",
        "import numpy as np\nF.select_top(1)",
        "from helpers.exercises.layer_scan import check_participation_ratio",
    ]
    cheats = [
        "participation_ratio = layer_scan.participation_ratio",
        "from helpers.data.layer_scan import participation_ratio as mine",
        "import helpers.data.layer_scan as m\np = m.participation_ratio",
        "m = layer_scan",
        "p = getattr(layer_scan, name)",
        "p = vars(layer_scan)[name]",
        "p = layer_scan.__dict__[name]",
        "p = eval('participation_ratio')",
        "import importlib\nm = importlib.import_module('helpers.data.layer_scan')",
        "import helpers.exercises.layer_scan as L\nL.PARTICIPATION",
        "from helpers.exercises.layer_scan import PARTICIPATION",
        "import inspect\nexec(inspect.getsource(layer_scan))",
    ]
    for source, flagged in [(s, False) for s in honest] + [(s, True) for s in cheats]:
        nb = nbformat.v4.new_notebook()
        nb.cells = [*ref.cells, nbformat.v4.new_code_cell(source)]
        assert bool(reference_uses(nb, ref, g)) == flagged, source


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_the_reference_through_every_name_the_notebook_imports_is_flagged(path):
    """For each exercise, a cell that reaches its reference through each name the notebook binds (the
    function itself, its module under any alias, the full dotted path) scores that exercise 0."""
    import nbformat

    from tools.source_scan import bindings

    nb = read_notebook(path)
    names = bindings(c.source for c in nb.cells if c.cell_type == "code")
    tried = 0
    for check, module in check_modules(nb).items():
        ex = exercise_of(importlib.import_module(module), check)
        for ref in ex.references:
            mod, _, fn = ref.rpartition(".")
            forms = [f"import {mod}\nanswer = {ref}", f"from {mod} import {fn} as mine"]
            forms += [f"answer = {n}.{fn}" for n, t in names.items() if t == mod]
            forms += [f"answer = {n}" for n, t in names.items() if t == ref]
            for source in forms:
                sub = nbformat.from_dict(dict(nb))
                sub.cells = [*nb.cells, nbformat.v4.new_code_cell(source)]
                assert ex.name in reference_uses(sub, nb, [Guarded(ex.name, ex.references, module)]), source
                tried += 1
    assert tried >= 2
