"""nbgrader's validate / validate --invert, without nbgrader: run after nbval by ``make test``.

Each notebook is run in the ci profile up to its last graded cell; at each exercise the student
version of the cell goes first and its checks must fail, then the solution and its checks must
pass. This proves the checks can fail, and fail for the right reason: the missing answer.
"""

from __future__ import annotations

import pytest

from tools.assignment import workbook_notebooks
from tools.invert import invert_check


@pytest.mark.parametrize("path", workbook_notebooks(), ids=lambda p: p.name)
def test_checks_fail_without_the_answer_and_pass_with_it(path):
    assert invert_check(path, profile="ci") == []
