"""Every interval a notebook prints resamples the independent unit: the interval helpers that take a unit
(``groups=``: each text's prompt, say) are handed one in every notebook call. A call that resamples
something else on purpose says so on its line with ``# unit:`` (e.g. the exercise that contrasts texts
with prompts)."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[2] / "notebooks").glob("[0-9][0-9]_*.ipynb"))
NEEDS_GROUPS = {"ce_recovered_interval", "ce_delta_interval", "ce_recovered_difference", "mean_interval"}


def _calls(source: str):
    code = "\n".join("" if ln.lstrip().startswith(("%", "!")) else ln for ln in source.splitlines())
    lines = code.splitlines()
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Call):
            f = node.func
            name = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", None)
            if name in NEEDS_GROUPS:
                yield name, node, lines[node.lineno - 1]


def test_notebooks_exist():
    assert len(NOTEBOOKS) >= 6


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.stem)
def test_interval_calls_name_their_unit(nb):
    bad = []
    for i, cell in enumerate(json.loads(nb.read_text())["cells"]):
        if cell["cell_type"] != "code":
            continue
        for name, node, line in _calls("".join(cell["source"])):
            if "groups" not in {k.arg for k in node.keywords} and "# unit:" not in line:
                bad.append(f"cell {i}: {name}(...) without groups=: {line.strip()}")
    assert not bad, "\n".join(bad)


def test_the_check_catches_a_call_without_groups():
    src = "iv = ce_recovered_interval(res, 'a', 'mean', seed=0)\nok = mean_interval(v)  # unit: texts"
    found = [(n, ln) for n, node, ln in _calls(src) if "groups" not in {k.arg for k in node.keywords}]
    assert [n for n, ln in found if "# unit:" not in ln] == ["ce_recovered_interval"]
