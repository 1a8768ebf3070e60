"""The package's imports point one way: config/files/validate -> model -> data -> sae -> analysis -> viz ->
exercises. No module imports a higher layer, and there are no import cycles. Walks every module's
``import`` statements (top level and inside functions) with ``ast``."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "helpers"
LAYERS = {
    "config": 0,
    "files": 0,
    "malloc": 0,
    "progress": 0,
    "stats": 0,
    "validate": 0,
    "model": 1,
    "data": 2,
    "sae": 3,
    "analysis": 4,
    "viz": 5,
    "exercises": 6,
}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer(module: str) -> int:
    parts = module.split(".")
    if len(parts) < 2:
        return 0  # the package itself: it imports malloc (layer 0) to set the allocator on import
    return LAYERS[parts[1]]


def imports_of(path: Path) -> set[str]:
    """``helpers`` modules that ``path`` imports, resolved to module names."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("helpers"):
            for alias in node.names:  # `from helpers.data import store` imports the module helpers.data.store
                sub = f"{node.module}.{alias.name}"
                out.add(sub if (PACKAGE.parent / (sub.replace(".", "/") + ".py")).is_file() else node.module)
        elif isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("helpers")}
    return out


GRAPH = {module_name(p): imports_of(p) for p in sorted(PACKAGE.rglob("*.py"))}


def test_every_subpackage_has_a_layer():
    tops = {m.split(".")[1] for m in GRAPH if m.count(".") >= 1}
    assert tops <= set(LAYERS), f"give {tops - set(LAYERS)} a layer in LAYERS"


@pytest.mark.parametrize("module", sorted(GRAPH))
def test_no_upward_imports(module):
    up = {m for m in GRAPH[module] if layer(m) > layer(module)}
    assert not up, f"{module} (layer {layer(module)}) imports higher layers: {sorted(up)}"


def test_no_import_cycles():
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done

    def visit(m: str, path: list[str]) -> None:
        state[m] = 1
        for n in sorted(GRAPH.get(m, ())):
            if n not in GRAPH or n == m:
                continue
            if state.get(n) == 1:
                raise AssertionError("import cycle: " + " -> ".join(path[path.index(n) :] + [n]))
            if n not in state:
                visit(n, path + [n])
        state[m] = 2

    for m in GRAPH:
        if m not in state:
            visit(m, [m])


def test_the_checker_sees_a_planted_upward_import(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from helpers.viz.figures import save_figure\n")
    assert "helpers.viz.figures" in imports_of(bad)
