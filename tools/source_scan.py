"""What a submission's own code does, read from its source with ``ast`` (never run).

- :func:`check_calls` / :func:`check_modules`: which ``check_*`` a graded cell calls, with which
  arguments, and which ``helpers.exercises`` module each comes from (the reference notebook's imports).
- :func:`reference_uses`: per exercise, every use of the ``helpers`` function the student was asked to
  write — called, aliased, imported under another name, reached through its module object
  (``getattr``, ``vars``, ``__dict__``, the module bound to another name), named in a string, or its
  ``__code__`` / source taken — and every use of the exercise module's internals. Such a check scores 0.
- :func:`review_findings`: cells that reach for the machinery around the grader (``importlib``,
  ``sys.modules``, the process environment, frames ...): listed for an instructor to read.

Only the submission's *own* cells are read: a code cell whose code equals a cell of the reference
notebook (the workbook's own, comments and spacing aside) is the workbook's and is not scanned.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from nbformat import NotebookNode

EXERCISES_PKG = "helpers.exercises"


def python_of(source: str) -> ast.Module | None:
    """A cell's code as an ``ast`` (IPython magics turned into Python first); None if it cannot parse."""
    try:
        from IPython.core.inputtransformer2 import TransformerManager

        source = TransformerManager().transform_cell(source)
    except Exception:  # IPython missing or the transform failed: parse the raw text
        pass
    try:
        return ast.parse(source)
    except SyntaxError:
        return None


def _code_cells(nb: NotebookNode) -> Iterator[tuple[int, NotebookNode]]:
    return ((i, c) for i, c in enumerate(nb.cells) if c.cell_type == "code")


def _dump(source: str) -> str | None:
    tree = python_of(source)
    return ast.dump(tree) if tree is not None else None


def own_cells(nb: NotebookNode, reference: NotebookNode) -> list[tuple[int, str]]:
    """(index, source) of the submission's code cells that are not the workbook's own."""
    known = {_dump(c.source) for _, c in _code_cells(reference)} - {None}
    return [(i, c.source) for i, c in _code_cells(nb) if _dump(c.source) not in known or not c.source.strip()]


# ----------------------------------------------------------------------------------------------
# graded cells


def check_calls(source: str) -> list[tuple[str, list[str]]]:
    """(check name, argument sources) for every top-level ``check_*(...)`` call in a graded cell."""
    tree = python_of(source)
    calls = []
    for node in tree.body if tree else []:
        call = node.value if isinstance(node, ast.Expr) else None
        if (
            isinstance(call, ast.Call)
            and isinstance(call.func, ast.Name)
            and call.func.id.startswith("check_")
        ):
            if call.keywords or any(isinstance(a, ast.Starred) for a in call.args):
                raise ValueError(f"{call.func.id}: a graded call takes plain positional arguments")
            calls.append((call.func.id, [ast.unparse(a) for a in call.args]))
    return calls


def check_modules(reference: NotebookNode) -> dict[str, str]:
    """``{check name: helpers.exercises module}`` from the reference notebook's imports."""
    found = {}
    for _, cell in _code_cells(reference):
        for node in ast.walk(python_of(cell.source) or ast.Module(body=[], type_ignores=[])):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(EXERCISES_PKG + "."):
                for alias in node.names:
                    if alias.name.startswith("check_"):
                        found[alias.asname or alias.name] = node.module
    return found


# ----------------------------------------------------------------------------------------------
# uses of the reference


@dataclass(frozen=True)
class Guarded:
    """What one exercise forbids: its reference functions and its exercise module's internals."""

    name: str
    references: tuple[str, ...]  # dotted names of helpers functions
    module: str  # the helpers.exercises module holding the exercise


def bindings(sources: Iterable[str]) -> dict[str, str]:
    """``{name: dotted target}`` of every import in ``sources`` (``import a.b as c`` -> c: a.b)."""
    out: dict[str, str] = {}
    for source in sources:
        for node in ast.walk(python_of(source) or ast.Module(body=[], type_ignores=[])):
            if isinstance(node, ast.Import):
                for a in node.names:
                    out[a.asname or a.name.split(".")[0]] = a.name if a.asname else a.name.split(".")[0]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                for a in node.names:
                    out[a.asname or a.name] = f"{node.module}.{a.name}"
    return out


def _dotted(node: ast.AST, names: dict[str, str]) -> str | None:
    """The dotted target an expression like ``F.select_top`` names, through ``names``; else None."""
    if isinstance(node, ast.Name):
        return names.get(node.id)
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value, names)
        return f"{base}.{node.attr}" if base else None
    return None


def _within(target: str, prefix: str) -> bool:
    return target == prefix or target.startswith(prefix + ".")


# reaching into a function or frame finds every reference behind it: a submission that does scores 0
INTROSPECTION = frozenset(
    {
        "__globals__",
        "__closure__",
        "cell_contents",
        "__code__",
        "__dict__",
        "__getattribute__",
        "__builtins__",
    }
    | {"__wrapped__", "__func__", "__self__", "__module__", "f_globals", "f_locals", "f_back", "gi_frame"}
)


def _strings(tree: ast.AST) -> list[str]:
    """Every string constant, with constant concatenations folded (``'__co' + 'de__'`` is ``'__code__'``)."""
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            out.append(node.value)
        elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
            try:
                value = ast.literal_eval(node)
            except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
                continue
            if isinstance(value, str):
                out.append(value)
    return out


def introspection(tree: ast.AST) -> list[str]:
    """Uses of function or frame internals (``f.__globals__``, ``getattr(f, '__co' + 'de__')`` ...)."""
    found = [
        f"`{ast.unparse(n)}`"
        for n in ast.walk(tree)
        if isinstance(n, ast.Attribute) and n.attr in INTROSPECTION
    ]
    found += [f"the string {t!r}" for t in _strings(tree) if t in INTROSPECTION]
    return found


def _uses(tree: ast.AST, g: Guarded, names: dict[str, str]) -> list[str]:
    """How the code in ``tree`` reaches exercise ``g``'s forbidden things (empty if it does not): its
    reference, its module object, or anything of ``helpers.exercises`` but calling a ``check_*``."""
    funcs = {r.rpartition(".")[2] for r in g.references}
    modules = {r.rpartition(".")[0] for r in g.references} | {g.module}
    parents = {id(c): p for p in ast.walk(tree) for c in ast.iter_child_nodes(p)}
    found = introspection(tree)
    for text in _strings(tree):
        if text in funcs or any(r in text for r in g.references) or any(m in text for m in modules):
            found.append(f"the string {text[:40]!r}")
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in funcs:
            found.append(f"`{ast.unparse(node)}`")
        elif isinstance(node, ast.ImportFrom) and node.module:
            for a in node.names:
                full = f"{node.module}.{a.name}"
                if full in g.references or (_within(full, EXERCISES_PKG) and not a.name.startswith("check_")):
                    found.append(f"`from {node.module} import {a.name}`")
        if isinstance(node, ast.Name | ast.Attribute):
            target = _dotted(node, names)
            if target is None:
                continue
            parent, last = parents.get(id(node)), target.rpartition(".")[2]
            called = isinstance(parent, ast.Call) and parent.func is node
            if target in g.references:
                found.append(f"`{ast.unparse(node)}`")
            elif _within(target, EXERCISES_PKG) and target.count(".") >= 2:
                loaded = isinstance(getattr(node, "ctx", None), ast.Load)
                if last.startswith("check_") and loaded and not called:  # c = check_x: its closure holds it
                    found.append(f"`{ast.unparse(node)}` (a check, not called)")
                elif not last.startswith("check_") and not isinstance(parent, ast.Attribute):
                    found.append(f"`{ast.unparse(node)}` (the exercises' own code)")
                elif not last.startswith("check_") and _within(target, g.module) and target != g.module:
                    found.append(f"`{ast.unparse(node)}` (the exercise's own module)")
            elif target.rpartition(".")[0] in modules and last.startswith("__"):
                found.append(f"`{ast.unparse(node)}`")  # m.__dict__, m.__getattribute__ ...
            elif any(_within(m, target) for m in modules) and not isinstance(parent, ast.Attribute):
                found.append(f"`{ast.unparse(node)}` (the module object)")  # getattr(m, ..), vars(m), x = m
    return list(dict.fromkeys(found))


def reference_uses(nb: NotebookNode, reference: NotebookNode, guarded: list[Guarded]) -> dict[str, list[str]]:
    """``{exercise name: ["cell 12: `layer_scan.sink_ratio`", ...]}`` for every exercise whose reference
    the submission's own cells use (names bound by the workbook's cells count too: ``F`` is
    ``helpers.analysis.features`` wherever the notebook imports it)."""
    names = bindings(c.source for _, c in _code_cells(nb))
    out: dict[str, list[str]] = {}
    for i, source in own_cells(nb, reference):
        tree = python_of(source)
        if tree is None:
            continue
        for g in guarded:
            for use in _uses(tree, g, names):
                out.setdefault(g.name, []).append(f"cell {i}: {use}")
    return out


# ----------------------------------------------------------------------------------------------
# cells to read before trusting a score

_SUSPICIOUS = re.compile(
    r"\b(importlib|__import__|sys\.modules|builtins|__builtins__|get_ipython|_getframe|f_back|f_locals|"
    r"inspect|settrace|setprofile|ctypes|subprocess|os\.system|os\.kill|environ|getenv|grader|__file__|"
    r"__code__|FunctionType|gc|eval|exec|compile|chmod|shutil|site-packages|fork|setsid|Popen|multiprocessing|"
    r"threading|glob|chdir|rename|rmdir|mkdir|makedirs|answers|read_cases|write_cases)\b"
)


def review_findings(nb: NotebookNode, reference: NotebookNode) -> list[str]:
    """What the submission's own cells do that could reach into the grader or other students' files."""
    findings = []
    for i, source in own_cells(nb, reference):
        used = sorted({m.group(1) for m in _SUSPICIOUS.finditer(source)})
        if used:
            findings.append(f"cell {i} uses {', '.join(f'`{u}`' for u in used)}")
        if python_of(source) is None:
            findings.append(f"cell {i} is not valid Python")
    return findings
