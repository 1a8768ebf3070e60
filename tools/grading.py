"""Grade notebooks headless: run them in a fresh kernel, collect every graded cell's outcome.

``python -m tools.grading [--submissions DIR] [--csv FILE]`` (what ``make grade`` runs)
executes each notebook in the ``ci`` profile and prints a table (student, notebook, check,
points, passed, first line of the failure) with totals, and writes it as CSV after every
notebook (atomically), so an interrupted run leaves every row gathered so far.

A submission is graded like nbgrader's autograde, with these guards:

- the workbook's reference notebooks are read once, before any student's code runs;
- every locked graded cell is restored from the reference (matched by ``grade_id``) and run
  *guarded*: the check functions it names are imported fresh from ``helpers.exercises`` (the
  whole ``helpers`` package re-read from disk for that cell, so a student's monkeypatch of the
  checks or of the reference solutions they compare with is not seen), and the cell passes only
  when it runs cleanly **and** prints a secret token drawn for this run, which only the guard
  prints, after the check returned. Rebinding ``check_*``, ``print``, ``exec`` ... in the
  student's namespace cannot produce it;
- each student runs in a private folder: the working directory is a copy of the submission, and
  ``WORKBOOK_OUTPUT`` points at a private output folder seeded from a read-only copy of the
  reference notebooks' own outputs (:func:`prepared_outputs`, made once and cached), so a broken
  notebook 01 costs only that student's checks and nothing reaches ``data/``, ``figures/`` or
  ``.ci_out/``;
- the workbook's code (``helpers/``, ``tools/``) is fingerprinted: a notebook that changes it gets
  its checks voided and the files are put back (:class:`FileGuard`); changes to ``notebooks/``,
  ``data/`` or ``figures/`` are reported;
- cells that reach into the grader's machinery (``importlib``, ``sys.modules``, ``builtins``, IPython
  hooks, frame inspection, rebinding a check or a builtin) are listed in a ``(review)`` row.

Execution continues after a cell raises and every ungraded cell that broke is reported as its
own row; a cell stops at the per-cell limit and a notebook at the per-notebook limit (the rest of
it is not run). A missing or corrupted notebook becomes rows in the table, never a crash.

What remains possible: the grader runs student code in the same Python process as the check, so
code written to attack it (rebinding ``__builtins__`` or ``importlib``, IPython input hooks that
read the guarded cell's source, inspecting the caller's frame, crafted ``.pyc`` files, writing into
the virtual environment) can still forge a pass. Each of those needs names the ``(review)`` row
lists; read such a notebook before trusting its score.

:func:`invert_check` is nbgrader's ``validate`` / ``validate --invert`` in one execution: it
runs a notebook and, at each exercise, runs the student version of the cell and its checks
first (they must fail), then the solution and its checks (they must pass).
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import math
import os
import re
import secrets
import shutil
import signal
import stat
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import nbformat
import pandas as pd
from nbclient import NotebookClient
from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbformat import NotebookNode

from helpers.config import OUTPUT_ENV, PROFILE_ENV, ROOT
from helpers.files import save_csv
from tools.assignment import (
    checks_after,
    grade_id,
    graded_cells,
    is_exercise,
    is_graded,
    points,
    read_notebook,
    student_cell,
    workbook_notebooks,
)

CELL_TIMEOUT_S = 600  # one cell (ci profile: 12 s idle, 169 s seen on a loaded 2-core machine)
NOTEBOOK_TIMEOUT_S = 1200  # one notebook, every cell together
CACHE_DIR = ROOT / ".cache" / "grading"
# committed inputs the notebooks read from the repository (part of the prepared outputs' key)
INPUTS = ("data/prompts.csv", "data/corpus_prompts.csv", "data/corpus.csv.gz")
RESTORED_CODE = ("helpers", "tools")  # put back if a notebook changes them
WATCHED = ("notebooks", "data", "figures")  # reported if a notebook changes them


@dataclass(frozen=True)
class CellResult:
    """What happened to one code cell: ``error`` is empty when it ran cleanly."""

    ran: bool
    error: str = ""
    stdout: str = ""

    @property
    def ok(self) -> bool:
        return self.ran and not self.error


@dataclass(frozen=True)
class Row:
    """One line of the grade table."""

    student: str
    notebook: str
    check: str
    points: float
    passed: bool
    failure: str = ""


COLUMNS = list(Row.__dataclass_fields__)


def first_line(text: str, limit: int = 160) -> str:
    lines = [ln.strip() for ln in str(text).splitlines() if ln.strip()]
    return (lines[0] if lines else "")[:limit]


def _error_of(cell: NotebookNode) -> str:
    for out in cell.get("outputs", []):
        if out.get("output_type") == "error":
            value = first_line(out.get("evalue", ""))
            return f"{out.get('ename', 'Error')}: {value}" if value else str(out.get("ename", "Error"))
    return ""


def _stdout_of(cell: NotebookNode) -> str:
    return "".join(
        str(o.get("text", ""))
        for o in cell.get("outputs", [])
        if o.get("output_type") == "stream" and o.get("name") == "stdout"
    )


def run_cells(
    cells: list[NotebookNode],
    *,
    cwd: Path,
    profile: str = "ci",
    timeout: int = CELL_TIMEOUT_S,
    notebook_timeout: float | None = None,
    output: Path | None = None,
) -> list[CellResult]:
    """Run ``cells`` in order in one fresh kernel, going on after a cell raises.

    Returns one :class:`CellResult` per cell (markdown cells count as run). A cell past ``timeout``
    seconds, the whole run past ``notebook_timeout`` seconds or a dead kernel ends the run: that cell
    gets the error, the cells after it ``ran=False``. ``output`` becomes the kernel's
    ``WORKBOOK_OUTPUT`` (where the notebooks write data/ and figures/).
    """
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.from_dict(dict(c)) for c in cells]
    client = NotebookClient(
        nb,
        timeout=timeout,
        kernel_name="python3",
        allow_errors=True,
        resources={"metadata": {"path": str(cwd)}},
    )
    results: list[CellResult] = []
    env = {**os.environ, PROFILE_ENV: profile, "PYTHONDONTWRITEBYTECODE": "1", "WORKBOOK_HEADLESS": "1"}
    if output is not None:
        env[OUTPUT_ENV] = str(output)
    stopped = ""
    try:
        with client.setup_kernel(env=env):
            deadline = time.monotonic() + notebook_timeout if notebook_timeout else math.inf
            for i, cell in enumerate(nb.cells):
                if stopped:
                    results.append(CellResult(False, stopped))
                    continue
                if cell.cell_type != "code":
                    results.append(CellResult(True))
                    continue
                left = deadline - time.monotonic()
                if left <= 0:
                    stopped = f"not run: the notebook's limit of {notebook_timeout:g} s was reached"
                    results.append(CellResult(False, stopped))
                    continue
                limit = timeout if left >= timeout else max(1, math.ceil(left))
                client.timeout = limit
                try:
                    executed = client.execute_cell(cell, i)
                except CellTimeoutError:
                    whose = f" (the notebook's limit of {notebook_timeout:g} s)" if limit < timeout else ""
                    results.append(CellResult(True, f"timed out after {limit} s{whose}"))
                    stopped = f"not run: cell {i} timed out"
                    continue
                except DeadKernelError as err:
                    results.append(CellResult(True, f"kernel died: {first_line(str(err))}"))
                    stopped = f"not run: the kernel died in cell {i}"
                    continue
                results.append(CellResult(True, _error_of(executed), _stdout_of(executed)))
    except Exception as err:  # the kernel could not start, or died between cells
        reason = f"not run: {type(err).__name__}: {first_line(str(err))}"
        results += [CellResult(False, reason)] * (len(nb.cells) - len(results))
    return results


# ----------------------------------------------------------------------------------------------
# the guarded check cell

_IMPORT = re.compile(r"from\s+(helpers\.exercises\.\w+)\s+import\s+\(?([\w\s,]+)\)?")

_GUARD = """\
def __grader_check():
    import builtins as _b, importlib as _il, sys as _s

    def _ours(name):
        return name == "helpers" or name.startswith("helpers.")

    _saved = {{_k: _s.modules.pop(_k) for _k in _b.list(_s.modules) if _ours(_k)}}
    try:
        _ns = _b.dict(_b.globals())
        for _name, _module in {names!r}.items():
            _ns[_name] = _b.getattr(_il.import_module(_module), _name)
        _b.exec(_b.compile({source!r}, {label!r}, "exec"), _ns)
    finally:
        for _k in [_k for _k in _b.list(_s.modules) if _ours(_k)]:
            del _s.modules[_k]
        _s.modules.update(_saved)
    _s.stdout.write("\\n" + {token!r} + "\\n")
    _s.stdout.flush()


try:
    __grader_check()
finally:
    del __grader_check
"""


def check_imports(reference: NotebookNode) -> dict[str, str]:
    """``{name: module}`` for every name the reference imports from ``helpers.exercises``."""
    found: dict[str, str] = {}
    for cell in reference.cells:
        if cell.cell_type != "code":
            continue
        for module, names in _IMPORT.findall(cell.source):
            for name in names.replace("\n", " ").split(","):
                name = name.strip().split(" as ")[0].strip()
                if name.isidentifier():
                    found[name] = module
    return found


def guarded_source(source: str, names: dict[str, str], token: str, label: str = "graded cell") -> str:
    """The code run for a graded cell: ``source`` with the check functions imported fresh, printing
    ``token`` only after it returned (see the module docstring)."""
    return _GUARD.format(names=names, source=source, label=f"<{label}>", token=token)


def new_token() -> str:
    return f"grader-ok-{secrets.token_hex(16)}"


def _guard_cell(cell: NotebookNode, names: dict[str, str], token: str) -> NotebookNode:
    copy = nbformat.from_dict(dict(cell))
    copy.source = guarded_source(cell.source, names, token, grade_id(cell) or "graded cell")
    return copy


def _check_outcome(result: CellResult, token: str) -> tuple[bool, str]:
    if not result.ok:
        return False, result.error
    if token not in result.stdout:
        return False, "the check did not report success (the grader's token is missing from its output)"
    return True, ""


# ----------------------------------------------------------------------------------------------
# cells to read before trusting a score

_SUSPICIOUS = re.compile(
    r"\b(importlib|__import__|sys\.modules|builtins|__builtins__|get_ipython|_getframe|f_back|f_locals|"
    r"inspect|settrace|setprofile|ctypes|sys\.stdout|sys\.stderr|__stdout__|helpers\.exercises|"
    r"subprocess|os\.system|grader|__file__)\b"
)
_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)


def _rebound(source: str) -> list[str]:
    """Checks (``check_*``) or ``__builtins__`` that ``source`` rebinds at the top level (a local name
    inside a function changes nothing the grader sees, and the checks look builtins up in their own
    module, so rebinding ``print`` at the top level does not reach them)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    names, todo = [], list(tree.body)
    while todo:
        node = todo.pop()
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.append(node.id)
        elif isinstance(node, ast.alias):
            names.append(node.asname or node.name.split(".")[0])
        if isinstance(node, _SCOPES):
            names.append(getattr(node, "name", ""))
            continue
        todo.extend(ast.iter_child_nodes(node))
    return [n for n in names if n.startswith("check_") or n in ("__builtins__", "__import__")]


def review_findings(nb: NotebookNode, reference: NotebookNode) -> list[str]:
    """What cells not taken from the reference do that could reach into the grader."""
    known = {c.source for c in reference.cells}
    findings = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code" or cell.source in known or is_graded(cell):
            continue
        src = cell.source
        used = sorted({m.group(1) for m in _SUSPICIOUS.finditer(src)})
        rebinds = sorted(set(_rebound(src)))
        if used:
            findings.append(f"cell {i} uses {', '.join(f'`{u}`' for u in used)}")
        if rebinds:
            findings.append(f"cell {i} rebinds {', '.join(f'`{n}`' for n in rebinds)}")
    return findings


# ----------------------------------------------------------------------------------------------
# one notebook


def _restore_locked(submission: NotebookNode, reference: NotebookNode) -> None:
    """Put the workbook's own source back into every graded cell (a student may not edit checks)."""
    ref = {grade_id(c): c for _, c in graded_cells(reference)}
    for _, cell in graded_cells(submission):
        if grade_id(cell) in ref:
            cell.source = ref[grade_id(cell)].source


def _where(cells: list[NotebookNode], i: int) -> str:
    src = first_line(cells[i].source, 60)
    return f"cell {i} `{src}`" if src else f"cell {i}"


def grade_notebook(
    path: Path,
    reference: Path | NotebookNode,
    student: str = "-",
    *,
    profile: str = "ci",
    timeout: int = CELL_TIMEOUT_S,
    notebook_timeout: float | None = NOTEBOOK_TIMEOUT_S,
    output: Path | None = None,
    cwd: Path | None = None,
    name: str | None = None,
) -> list[Row]:
    """Grade one notebook against the workbook's ``reference`` (a path, or a notebook read before);
    bad input becomes rows. Runs with ``cwd`` as the working directory (default: a fresh empty
    folder) and ``output`` as ``WORKBOOK_OUTPUT``."""
    if isinstance(reference, Path):
        name = name or reference.name
        try:
            reference = read_notebook(reference)
        except ValueError as err:
            return [Row(student, name, "-", 0, False, f"reference notebook broken: {err}")]
    name = name or path.name
    ref = reference
    expected = [(grade_id(c), points(c)) for _, c in graded_cells(ref)]

    def every(reason: str) -> list[Row]:
        return [Row(student, name, gid, pts, False, reason) for gid, pts in expected] or [
            Row(student, name, "-", 0, False, reason)
        ]

    if not path.exists():
        return every("notebook missing from the submission")
    try:
        nb = read_notebook(path)
    except ValueError as err:
        return every(str(err))
    _restore_locked(nb, ref)
    found = {grade_id(c): i for i, c in graded_cells(nb)}
    if not found:
        return every("no graded cells in this notebook")
    token, names = new_token(), check_imports(ref)
    cells = [_guard_cell(c, names, token) if is_graded(c) else c for c in nb.cells]
    with tempfile.TemporaryDirectory(prefix="grading-cwd-") as scratch:
        results = run_cells(
            cells,
            cwd=cwd or Path(scratch),
            profile=profile,
            timeout=timeout,
            notebook_timeout=notebook_timeout,
            output=output,
        )
    rows = []
    for gid, pts in expected:
        if gid not in found:
            rows.append(Row(student, name, gid, pts, False, "graded cell missing from the submission"))
            continue
        passed, failure = _check_outcome(results[found[gid]], token)
        rows.append(Row(student, name, gid, pts, passed, failure))
    broken = [
        i
        for i, (cell, result) in enumerate(zip(nb.cells, results, strict=True))
        if cell.cell_type == "code" and not is_graded(cell) and result.ran and result.error
    ]
    if broken:  # the first is the cause; the later ones mostly follow from it
        i = broken[0]
        kind = "exercise" if is_exercise(nb.cells[i]) else "ungraded"
        more = (
            f"; {len(broken) - 1} later ungraded cell{'s' * (len(broken) > 2)} raised too"
            if len(broken) > 1
            else ""
        )
        rows.append(
            Row(
                student,
                name,
                f"(cell {i})",
                0,
                False,
                f"{kind} {_where(nb.cells, i)} raised {results[i].error}{more}",
            )
        )
    findings = review_findings(nb, ref)
    if findings:
        rows.append(
            Row(
                student,
                name,
                "(review)",
                0,
                False,
                "read before trusting these checks: "
                + "; ".join(findings[:4])
                + " ..." * (len(findings) > 4),
            )
        )
    return rows


# ----------------------------------------------------------------------------------------------
# the workbook's own files


def _fingerprint(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class FileGuard:
    """What a graded notebook changed in the workbook: ``helpers/`` and ``tools/`` sources are
    compared by content and put back; ``notebooks/``, ``data/``, ``figures/`` compared by size and
    modification time and reported."""

    def __init__(self, root: Path = ROOT):
        self.root = root
        self.code = {p: p.read_bytes() for p in self._code_files()}
        self.watched = self._stats()

    def _code_files(self) -> list[Path]:
        return sorted(p for d in RESTORED_CODE for p in (self.root / d).rglob("*.py") if p.is_file())

    def _stats(self) -> dict[Path, tuple[int, int]]:
        out = {}
        for d in WATCHED:
            for p in (self.root / d).rglob("*"):
                if p.is_file() and "__pycache__" not in p.parts and ".ipynb_checkpoints" not in p.parts:
                    st = p.stat()
                    out[p] = (st.st_size, st.st_mtime_ns)
        return out

    def changes(self) -> list[str]:
        """Changed files (relative paths, with what was done); restores code, re-baselines the rest."""
        found = []
        for p, data in self.code.items():
            try:
                same = p.read_bytes() == data
            except OSError:
                same = False
            if not same:
                p.parent.mkdir(parents=True, exist_ok=True)
                p.write_bytes(data)
                found.append(f"{p.relative_to(self.root)} (put back)")
        for p in self._code_files():
            if p not in self.code:
                found.append(f"{p.relative_to(self.root)} (new)")
                self.code[p] = p.read_bytes()
        now = self._stats()
        for p in sorted(set(now) | set(self.watched)):
            if now.get(p) != self.watched.get(p):
                what = "new" if p not in self.watched else "removed" if p not in now else "changed"
                found.append(f"{p.relative_to(self.root)} ({what})")
        self.watched = now
        return found


def _void(rows: list[Row], changed: list[str]) -> list[Row]:
    student, name = rows[0].student, rows[0].notebook
    listed = ", ".join(changed[:4]) + " ..." * (len(changed) > 4)
    void = "void: this notebook changed the workbook's own files"
    out = [
        replace(r, passed=False, failure=void) if not r.check.startswith("(") and r.passed else r
        for r in rows
    ]
    return out + [Row(student, name, "(files)", 0, False, f"the run changed {listed}")]


# ----------------------------------------------------------------------------------------------
# the prepared outputs every student starts from


def _make_read_only(folder: Path) -> None:
    for p in sorted(folder.rglob("*"), key=lambda q: -len(q.parts)):
        p.chmod(0o555 if p.is_dir() else 0o444)
    folder.chmod(0o555)


def _make_writable(folder: Path) -> None:
    for p in [folder, *folder.rglob("*")]:
        if not p.is_symlink():
            p.chmod(p.stat().st_mode | stat.S_IWUSR | (stat.S_IXUSR if p.is_dir() else 0))


def _remove(folder: Path) -> None:
    if folder.exists():
        _make_writable(folder)
        shutil.rmtree(folder, ignore_errors=True)


def seed_key(references: list[tuple[str, NotebookNode]], profile: str, root: Path = ROOT) -> str:
    """Changes whenever what the reference notebooks produce could: their code, helpers, inputs."""
    h = hashlib.sha256(profile.encode())
    for name, nb in references:
        h.update(name.encode())
        for cell in nb.cells:
            if cell.cell_type == "code":
                h.update(cell.source.encode())
    for p in sorted((root / "helpers").rglob("*.py")):
        h.update(str(p.relative_to(root)).encode() + bytes.fromhex(_fingerprint(p)))
    for rel in INPUTS:
        if (root / rel).exists():
            h.update(rel.encode() + bytes.fromhex(_fingerprint(root / rel)))
    return h.hexdigest()[:16]


def store_prepared(out: Path, cache_dir: Path, key: str, profile: str) -> Path:
    """Copy ``out`` into the cache as the read-only prepared outputs for ``key``; older ones go."""
    final = cache_dir / f"{profile}-{key}"
    if (final / ".complete").exists():
        return final
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{profile}-{key}.", dir=cache_dir))
    shutil.copytree(out, tmp, dirs_exist_ok=True)
    (tmp / ".complete").write_text(f"{profile} {key}\n")
    _make_read_only(tmp)
    _remove(final)
    tmp.rename(final)
    for old in cache_dir.glob(f"{profile}-*"):
        if old != final:
            _remove(old)
    return final


def _copy_seed(seed: Path | None, out: Path) -> None:
    if seed is None:
        out.mkdir(parents=True)
        return
    shutil.copytree(seed, out, ignore=shutil.ignore_patterns(".complete"))
    _make_writable(out)


def prepared_outputs(
    references: list[tuple[str, NotebookNode]],
    *,
    profile: str = "ci",
    cache_dir: Path | None = CACHE_DIR,
    work: Path,
    log: Callable[[str], None] = print,
    timeout: int = CELL_TIMEOUT_S,
    notebook_timeout: float | None = NOTEBOOK_TIMEOUT_S,
    root: Path = ROOT,
) -> Path:
    """A read-only folder of what the reference notebooks produce in ``profile``: made once (by
    running them, in order, into an empty output folder) and kept in ``cache_dir`` under a key of
    their code, ``helpers`` and the committed inputs. Not cached if a reference check fails (an
    ungraded cell that raises is only warned about)."""
    key = seed_key(references, profile, root)
    if cache_dir is not None and (cache_dir / f"{profile}-{key}" / ".complete").exists():
        return cache_dir / f"{profile}-{key}"
    log(f"preparing the reference outputs ({profile} profile, once; cached under {cache_dir}) ...")
    out = work / "reference-outputs"
    rows = _run_student(
        "reference", None, references, out, work / "reference", None, profile, timeout, notebook_timeout, log
    )
    bad = [r for r in rows if not r.passed and not r.check.startswith("(")]  # a check failed
    broken = [r for r in rows if r.check.startswith("(")]  # ungraded cells raised: warned, still cached
    for r in broken:
        log(f"warning: the workbook's own {r.notebook}: {r.failure}")
    if bad:
        first = f"{bad[0].notebook} {bad[0].check}: {bad[0].failure}"
        log(f"warning: the workbook's own notebooks fail ({first});")
        log("         students start from what they produced; the prepared outputs are not cached")
    if bad or cache_dir is None:
        _make_read_only(out)
        return out
    return store_prepared(out, cache_dir, key, profile)


# ----------------------------------------------------------------------------------------------
# a class


def submissions(folder: Path) -> list[tuple[str, Path]]:
    """(student, folder) pairs: ``folder`` itself if it holds notebooks, else each sub-folder that does."""
    if not folder.is_dir():
        raise ValueError(
            f"{folder}: not a folder; pass SUBMISSIONS=<folder of notebooks or of student folders>"
        )
    if any(folder.glob("*.ipynb")):
        return [(folder.name, folder)]
    found = [(d.name, d) for d in sorted(folder.iterdir()) if d.is_dir() and any(d.rglob("*.ipynb"))]
    if not found:
        raise ValueError(f"{folder}: no .ipynb files in it or in its sub-folders")
    return found


def _find(folder: Path, name: str) -> Path:
    direct = folder / name
    return direct if direct.exists() else next(iter(sorted(folder.rglob(name))), direct)


def _run_student(
    student: str,
    folder: Path | None,
    references: list[tuple[str, NotebookNode]],
    out: Path,
    home: Path,
    guard: FileGuard | None,
    profile: str,
    timeout: int,
    notebook_timeout: float | None,
    log: Callable[[str], None],
    on_notebook: Callable[[list[Row]], None] | None = None,
) -> list[Row]:
    """Grade one student's notebooks, in order, in ``home`` with ``out`` as their output folder.
    ``folder`` None grades the references themselves."""
    copies = home / "notebooks"
    copies.mkdir(parents=True)
    rows: list[Row] = []
    for name, ref in references:
        log(f"grading {student} / {name} ...")
        path = copies / name
        if folder is None:
            path.write_text(nbformat.writes(ref), encoding="utf-8")
        elif _find(folder, name).exists():
            shutil.copyfile(_find(folder, name), path)
        start = time.monotonic()
        got = grade_notebook(
            path,
            ref,
            student,
            profile=profile,
            timeout=timeout,
            notebook_timeout=notebook_timeout,
            output=out,
            cwd=copies,
            name=name,
        )
        log(f"  {name}: {time.monotonic() - start:.0f} s")
        changed = guard.changes() if guard is not None else []
        if changed:
            got = _void(got, changed)
        rows += got
        if on_notebook is not None:
            on_notebook(got)
    return rows


def _table(rows: Iterable[Row]) -> pd.DataFrame:
    return pd.DataFrame([asdict(r) for r in rows], columns=COLUMNS)


def grade(
    submission_dir: Path | None = None,
    *,
    profile: str = "ci",
    log: Callable[[str], None] = print,
    timeout: int = CELL_TIMEOUT_S,
    notebook_timeout: float | None = NOTEBOOK_TIMEOUT_S,
    csv: Path | None = None,
    notebooks: list[Path] | None = None,
    cache_dir: Path | None = CACHE_DIR,
    root: Path = ROOT,
) -> pd.DataFrame:
    """Grade the workbook's notebooks, or every submission under ``submission_dir``.

    ``notebooks`` are the references (default: the workbook's), read once before anything runs.
    ``csv`` is rewritten (atomically) after every notebook. Each student gets a private working
    folder and output folder; submissions start from :func:`prepared_outputs`.
    """
    references = [(p.name, read_notebook(p)) for p in (notebooks or workbook_notebooks())]
    who: list[tuple[str, Path | None]] = (
        list(submissions(submission_dir)) if submission_dir else [("solutions", None)]
    )
    guard = FileGuard(root)
    rows: list[Row] = []

    def flush(new: list[Row]) -> None:
        rows.extend(new)
        if csv is not None:
            save_csv(csv, _table(rows))

    flush([])
    if cache_dir is not None:  # under the repository: notebooks may print paths relative to it
        cache_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="work-", dir=cache_dir) as tmp:
        work = Path(tmp)
        try:
            seed = None
            if submission_dir is not None:
                seed = prepared_outputs(
                    references,
                    profile=profile,
                    cache_dir=cache_dir,
                    work=work,
                    log=log,
                    timeout=timeout,
                    notebook_timeout=notebook_timeout,
                    root=root,
                )
                guard.changes()  # the references' own run is not a student's doing
            for k, (student, folder) in enumerate(who):
                home = work / f"student-{k:03d}"
                out = home / "outputs"
                _copy_seed(seed, out)
                got = _run_student(
                    student,
                    folder,
                    references,
                    out,
                    home,
                    guard,
                    profile,
                    timeout,
                    notebook_timeout,
                    log,
                    flush,
                )
                if (
                    submission_dir is None
                    and cache_dir is not None
                    and all(r.passed for r in got if not r.check.startswith("("))
                ):
                    store_prepared(out, cache_dir, seed_key(references, profile, root), profile)
        finally:
            _make_writable(work)
    return _table(rows)


def summary(table: pd.DataFrame) -> pd.DataFrame:
    """Score per student: points earned / points possible, checks passed / checks."""
    checks = table[~table["check"].str.startswith("(")]
    earned = checks["points"].where(checks["passed"], 0)
    out = pd.DataFrame(
        {
            "score": earned.groupby(checks["student"]).sum(),
            "possible": checks.groupby("student")["points"].sum(),
            "passed": checks.groupby("student")["passed"].sum(),
            "checks": checks.groupby("student").size(),
        }
    )
    return out.astype({"passed": int, "checks": int})


def format_table(table: pd.DataFrame, width: int = 110) -> str:
    """The grade table as text, text columns left-aligned, failures cut to ``width`` characters."""
    shown = table.assign(
        failure=table["failure"].str.slice(0, width), points=table["points"].map("{:g}".format)
    )
    cols = list(shown.columns)
    widths = {c: max(len(c), *(len(str(v)) for v in shown[c])) if len(shown) else len(c) for c in cols}
    lines = ["  ".join(c.ljust(widths[c]) for c in cols).rstrip()]
    for row in shown.itertuples(index=False):
        lines.append("  ".join(str(v).ljust(widths[c]) for c, v in zip(cols, row, strict=True)).rstrip())
    return "\n".join(lines)


def invert_check(path: Path, *, profile: str = "ci", timeout: int = CELL_TIMEOUT_S) -> list[str]:
    """Prove a notebook's checks tell a missing answer from a right one; returns the problems found.

    Runs the notebook up to its last graded cell. At each exercise it first runs the student
    version of the cell and that exercise's checks (each must fail), then the solution and the
    checks (each must pass). Every other cell must run cleanly. Checks run guarded, as in grading.
    """
    nb = read_notebook(path)
    token, names = new_token(), check_imports(nb)
    last = max((i for i, _ in graded_cells(nb)), default=-1)
    seq: list[tuple[NotebookNode, str, int]] = []  # (cell, expectation, index in the notebook)
    for i, cell in enumerate(nb.cells[: last + 1]):
        if is_exercise(cell):
            seq.append((student_cell(cell), "student", i))
            seq += [(nb.cells[j], "must fail", j) for j in checks_after(nb, i)]
        seq.append((cell, "must pass", i))
    cells = [_guard_cell(c, names, token) if is_graded(c) else c for c, _, _ in seq]
    results = run_cells(cells, cwd=path.parent, profile=profile, timeout=timeout)
    problems = []
    for (cell, expect, i), result in zip(seq, results, strict=True):
        label = f"{path.name} {grade_id(cell) or _where(nb.cells, i)}"
        ok, error = _check_outcome(result, token) if is_graded(cell) else (result.ok, result.error)
        if expect == "must fail" and ok:
            problems.append(f"{label}: passes with the student version (no answer written)")
        elif expect == "must pass" and not ok:
            problems.append(f"{label}: fails with the solution: {error}")
    return problems


def _interrupt(signum, frame):  # SIGTERM: stop like Ctrl-C, so the kernel is shut down
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run notebooks headless and report every graded check.")
    parser.add_argument(
        "--submissions",
        type=Path,
        default=None,
        help="a folder of submitted notebooks, or of one folder per student (default: grade the workbook "
        "itself)",
    )
    parser.add_argument(
        "--csv", type=Path, default=ROOT / "grades.csv", help="where to write the table (default: grades.csv)"
    )
    parser.add_argument(
        "--profile", default="ci", choices=("ci", "full"), help="profile to run in (default: ci)"
    )
    parser.add_argument(
        "--cell-timeout",
        type=int,
        default=CELL_TIMEOUT_S,
        help=f"seconds one cell may run (default {CELL_TIMEOUT_S})",
    )
    parser.add_argument(
        "--notebook-timeout",
        type=int,
        default=NOTEBOOK_TIMEOUT_S,
        help=f"seconds one notebook may run, all cells together (default {NOTEBOOK_TIMEOUT_S})",
    )
    parser.add_argument(
        "--prepare",
        action="store_true",
        help="only make (or find) the prepared reference outputs students start from; print their folder",
    )
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)
    log = lambda m: print(m, file=sys.stderr)  # noqa: E731
    if args.prepare:
        refs = [(p.name, read_notebook(p)) for p in workbook_notebooks()]
        CACHE_DIR.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="work-", dir=CACHE_DIR) as tmp:
            seed = prepared_outputs(
                refs,
                profile=args.profile,
                work=Path(tmp),
                log=log,
                timeout=args.cell_timeout,
                notebook_timeout=args.notebook_timeout,
            )
            if not (seed / ".complete").exists():
                print("error: the workbook's own notebooks fail; nothing prepared", file=sys.stderr)
                _make_writable(Path(tmp))
                return 1
        print(seed)
        return 0
    try:
        table = grade(
            args.submissions,
            profile=args.profile,
            log=log,
            timeout=args.cell_timeout,
            notebook_timeout=args.notebook_timeout,
            csv=args.csv,
        )
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"interrupted: the rows gathered so far are in {args.csv}", file=sys.stderr)
        return 130
    print(format_table(table))
    print()
    print(summary(table).to_string())
    print(f"\nwrote {args.csv}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
