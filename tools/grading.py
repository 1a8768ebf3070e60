"""Grade notebooks headless: the student's answers run on hidden cases, judged outside their kernel.

``python -m tools.grading [--submissions DIR] [--csv FILE]`` (what ``make grade`` runs) executes each
notebook in the ``ci`` profile and prints a table (student, notebook, check, points, passed, first line
of the failure) with totals; the CSV is rewritten (atomically) after every notebook.

Each graded cell is replaced (:mod:`tools.hidden_cases`) by one that runs its ``check_*`` call's
arguments on cases drawn here (seeded per run) and writes only the outputs; they are judged here, against
the reference functions imported before any student code ran. A check also scores 0 when the
submission's own cells use its reference (:mod:`tools.source_scan`). Students run one at a time in fresh
folders (:mod:`tools.isolation`). What this prevents and what it does not is stated, claim by test, in the
README's "For instructors"; ``tools.invert`` is nbgrader's ``validate --invert`` on the self-checks.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import secrets
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
from nbformat import NotebookNode

import helpers
from helpers.config import ROOT
from helpers.exercises.common import Exercise, exercise_of
from helpers.files import save_csv
from helpers.sae.bad_runs import SECRET_ENV
from tools import isolation
from tools.assignment import (
    grade_id,
    graded_cells,
    is_exercise,
    is_graded,
    is_manual,
    points,
    read_notebook,
    workbook_notebooks,
)
from tools.grade_table import Row, as_table, format_table, summary, void
from tools.hidden_cases import judge_cell, plan_cell
from tools.kernel import first_line, run_cells
from tools.source_scan import Guarded, check_modules, reference_uses, review_findings

CELL_TIMEOUT_S = 600  # one cell (ci profile: 12 s idle, 169 s seen on a loaded 2-core machine)
NOTEBOOK_TIMEOUT_S = 1200  # one notebook, every cell together
CACHE_DIR = ROOT / ".cache" / "grading"


# ----------------------------------------------------------------------------------------------
# the exercises, loaded once before any student's code runs


def load_everything() -> None:
    """Import every ``helpers`` module now, so that a student's later edit of ``helpers/`` on disk
    never reaches the reference functions this process judges with."""
    for info in pkgutil.walk_packages(helpers.__path__, "helpers."):
        importlib.import_module(info.name)


def exercises_of(reference: NotebookNode) -> dict[str, tuple[str, Exercise]]:
    """``{check name: (module, exercise)}`` for every check the reference imports; each exercise's
    reference outputs computed once (so lazy imports happen now)."""
    found = {}
    for check, module in check_modules(reference).items():
        ex = exercise_of(importlib.import_module(module), check)
        for case in ex.public()[:1]:
            ex.solve(case)
        found[check] = (module, ex)
    return found


# ----------------------------------------------------------------------------------------------
# one notebook


def _where(cells: list[NotebookNode], i: int) -> str:
    src = first_line(cells[i].source, 60)
    return f"cell {i} `{src}`" if src else f"cell {i}"


def grade_notebook(
    path: Path,
    reference: NotebookNode,
    student: str = "-",
    *,
    name: str,
    home: Path,
    rng: np.random.Generator,
    profile: str = "ci",
    timeout: int = CELL_TIMEOUT_S,
    notebook_timeout: float | None = NOTEBOOK_TIMEOUT_S,
    output: Path | None = None,
) -> list[Row]:
    """Grade one notebook against the workbook's ``reference`` in the folder ``home`` (the kernel's
    working directory is ``home/notebooks``); bad input becomes rows."""
    expected = [(grade_id(c), points(c)) for _, c in graded_cells(reference)]

    def every(reason: str) -> list[Row]:
        return [Row(student, name, gid, pts, False, reason) for gid, pts in expected] or [
            Row(student, name, "-", 0, False, reason)
        ]

    try:
        nb = read_notebook(path)
    except ValueError as err:
        return every(str(err))
    ref_cells = {grade_id(c): c for _, c in graded_cells(reference)}
    for _, cell in graded_cells(nb):  # a student may not edit a check
        if grade_id(cell) in ref_cells:
            cell.source = ref_cells[grade_id(cell)].source
    known = exercises_of(reference)
    private = isolation.fresh_folder(home.parent, ".answers-")  # outside the student's folder
    plans, cells = {}, []
    for i, cell in enumerate(nb.cells):
        if is_graded(cell) and grade_id(cell) in ref_cells and grade_id(cell) not in plans:
            plans[grade_id(cell)], source = plan_cell(cell, i, known, rng, private)
            cell = nbformat.from_dict({**dict(cell), "source": source})
        cells.append(cell)
    by_index = {plan.index: plan for plan in plans.values()}

    def around(i: int, phase: str) -> None:
        if i in by_index:
            by_index[i].around(phase)

    results = run_cells(
        cells,
        around=around,
        cwd=home / "notebooks",
        profile=profile,
        timeout=timeout,
        notebook_timeout=notebook_timeout,
        output=output,
    )
    isolation.remove(private)
    misuse = reference_uses(nb, reference, [Guarded(ex.name, ex.references, m) for m, ex in known.values()])
    rows = []
    for gid, pts in expected:
        if gid not in plans:
            rows.append(Row(student, name, gid, pts, False, "graded cell missing from the submission"))
            continue
        ok, failure = judge_cell(plans[gid], results[plans[gid].index], misuse)
        rows.append(Row(student, name, gid, pts, ok, failure))
    broken = [
        i
        for i, (cell, result) in enumerate(zip(nb.cells, results, strict=True))
        if cell.cell_type == "code" and not is_graded(cell) and result.ran and result.error
    ]
    if broken:  # the first is the cause; the later ones mostly follow from it
        i, n = broken[0], len(broken) - 1
        kind = "exercise" if is_exercise(nb.cells[i]) else "ungraded"
        more = f"; {n} later ungraded cell{'s' * (n > 1)} raised too" if n else ""
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
    for cell in nb.cells:  # answers graded by hand: listed, not scored
        if is_manual(cell):
            lines = [ln for ln in cell.source.splitlines() if "### BEGIN SOLUTION" not in ln and ln.strip()]
            answer = first_line("\n".join(lines), 100) or "(empty)"
            rows.append(
                Row(student, name, f"(manual {grade_id(cell)})", 0, False, f"graded by hand: {answer}")
            )
    findings = review_findings(nb, reference)
    if findings:
        listed = "; ".join(findings[:4]) + " ..." * (len(findings) > 4)
        rows.append(Row(student, name, "(review)", 0, False, f"read before trusting these checks: {listed}"))
    return rows


# ----------------------------------------------------------------------------------------------
# a student, a class


def submissions(folder: Path) -> list[tuple[str, Path]]:
    """(student, folder) pairs: ``folder`` itself if it holds notebooks, else every sub-folder (one
    without notebooks still gets rows, saying so)."""
    if not folder.is_dir():
        raise ValueError(
            f"{folder}: not a folder; pass SUBMISSIONS=<folder of notebooks or of student folders>"
        )
    if any(folder.glob("*.ipynb")):
        return [(folder.name, folder)]
    found = [(d.name, d) for d in sorted(folder.iterdir()) if d.is_dir() and not d.name.startswith(".")]
    if not found:
        raise ValueError(f"{folder}: no .ipynb files and no student folders in it")
    return found


def copies_of(folder: Path, name: str) -> list[Path]:
    """Every copy of notebook ``name`` in a student's folder (checkpoints left out)."""
    return sorted(p for p in folder.rglob(name) if ".ipynb_checkpoints" not in p.parts and p.is_file())


def run_student(
    student: str,
    folder: Path | None,
    references: list[tuple[str, NotebookNode]],
    home: Path,
    rng: np.random.Generator,
    guard: isolation.FileGuard | None,
    log: Callable[[str], None],
    on_notebook: Callable[[list[Row]], None],
    **limits,
) -> None:
    """Grade one student's notebooks, in order, in ``home`` (``folder`` None: the references)."""
    (home / "notebooks").mkdir(parents=True)
    for name, ref in references:
        log(f"grading {student} / {name} ...")
        start, path = time.monotonic(), home / "notebooks" / name
        found = [path] if folder is None else copies_of(folder, name)
        if folder is None:
            path.write_text(nbformat.writes(ref), encoding="utf-8")
        elif len(found) == 1:
            path.write_bytes(found[0].read_bytes())
        expected = [(grade_id(c), points(c)) for _, c in graded_cells(ref)] or [("-", 0.0)]
        if not found or len(found) > 1:
            listed = ", ".join(str(p.relative_to(folder)) for p in found[:3])
            why = f"{len(found)} copies of the notebook ({listed}); keep exactly one" if found else None
            rows = [
                Row(student, name, g, p, False, why or "notebook missing from the submission")
                for g, p in expected
            ]
        else:
            rows = grade_notebook(path, ref, student, name=name, home=home, rng=rng, **limits)
        changed = guard.changes() if guard is not None else []
        if changed:
            listed = ", ".join(changed[:4]) + " ..." * (len(changed) > 4)
            rows = void(rows, f"the run changed the workbook's own files: {listed}")
        log(f"  {name}: {time.monotonic() - start:.0f} s")
        on_notebook(rows)


def prepared_outputs(
    references: list[tuple[str, NotebookNode]],
    *,
    work: Path,
    rng: np.random.Generator,
    profile: str = "ci",
    cache_dir: Path | None = CACHE_DIR,
    log: Callable[[str], None] = print,
    root: Path = ROOT,
    **limits,
) -> Path:
    """A read-only folder of what the reference notebooks produce in ``profile``: made once (by running
    them, in order, into an empty output folder) and cached under a key of their code, ``helpers`` and
    the committed inputs. Not cached if a reference check fails."""
    key = isolation.seed_key([nbformat.writes(nb) for _, nb in references], profile, root)
    if cache_dir is not None and (cache_dir / f"{profile}-{key}" / isolation.COMPLETE).exists():
        return cache_dir / f"{profile}-{key}"
    log(f"preparing the reference outputs ({profile} profile, once; cached under {cache_dir}) ...")
    # the diagnosis exercise is judged with the grader's secret: grade() sets it, but `--prepare` alone (the
    # nbgrader recipe's first step, make check-nbgrader) reaches here without it and its reference failed
    os.environ.setdefault(SECRET_ENV, secrets.token_hex(16))
    home = isolation.fresh_folder(work, "reference-")
    (home / "out").mkdir()
    rows: list[Row] = []
    run_student(
        "reference",
        None,
        references,
        home,
        rng,
        None,
        log,
        rows.extend,
        profile=profile,
        output=home / "out",
        **limits,
    )
    bad = [r for r in rows if not r.passed and r.check[:1] != "("]
    for r in rows:
        if r.check[:1] == "(" and not r.check.startswith("(manual"):
            log(f"warning: the workbook's own {r.notebook}: {r.failure}")
    if bad:
        log(
            f"warning: the workbook's own notebooks fail "
            f"({bad[0].notebook} {bad[0].check}: {bad[0].failure});"
        )
        log("         students start from what they produced; the prepared outputs are not cached")
    if bad or cache_dir is None:
        isolation.make_read_only(home / "out")
        return home / "out"
    return isolation.store_prepared(home / "out", cache_dir, key, profile)


def grade(
    submission_dir: Path | None = None,
    *,
    profile: str = "ci",
    log: Callable[[str], None] = print,
    csv: Path | None = None,
    notebooks: list[Path] | None = None,
    cache_dir: Path | None = CACHE_DIR,
    root: Path = ROOT,
    seed: int | None = None,
    **limits,
) -> pd.DataFrame:
    """Grade the workbook's notebooks (as "solutions"), or every submission under ``submission_dir``.

    The references are read and every ``helpers`` module imported before anything runs; the hidden
    cases are drawn from ``seed`` (default: a fresh one per run). ``limits``: ``timeout``,
    ``notebook_timeout`` (seconds per cell and per notebook)."""
    references = [(p.name, read_notebook(p)) for p in (notebooks or workbook_notebooks())]
    load_everything()
    for _, ref in references:
        exercises_of(ref)
    who: list[tuple[str, Path | None]] = (
        list(submissions(submission_dir)) if submission_dir else [("solutions", None)]
    )
    rng = np.random.default_rng(secrets.randbits(64) if seed is None else seed)
    os.environ[SECRET_ENV] = secrets.token_hex(16)  # kernels inherit it; the judge reads it here
    guard = isolation.FileGuard(root)
    isolation.adopt_orphans()
    rows: list[Row] = []

    def flush(new: list[Row]) -> None:
        rows.extend(new)
        if csv is not None:
            save_csv(csv, as_table(rows))

    flush([])
    if cache_dir is not None:
        cache_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="work-", dir=cache_dir) as tmp:
        work = Path(tmp)
        try:
            held = None
            if submission_dir is not None:
                prepared = prepared_outputs(
                    references,
                    work=work,
                    rng=rng,
                    profile=profile,
                    cache_dir=cache_dir,
                    log=log,
                    root=root,
                    **limits,
                )
                held = isolation.Seed(prepared)
                guard.changes()  # the references' own run is not a student's doing
            for student, folder in who:
                home = isolation.fresh_folder(work, "student-")
                theirs: list[Row] = []
                try:
                    out = home / "outputs"
                    held.write_to(out) if held is not None else out.mkdir()
                    run_student(
                        student,
                        folder,
                        references,
                        home,
                        rng,
                        guard,
                        log,
                        theirs.extend,
                        profile=profile,
                        output=out,
                        **limits,
                    )
                except Exception as err:  # one student's failure is a row, never the end of the run
                    theirs.append(
                        Row(student, "-", "(error)", 0, False, f"grading stopped: {first_line(repr(err))}")
                    )
                try:  # whatever the student left, the next one starts clean
                    if isolation.end_children():
                        theirs = void(theirs, "the run left processes behind (ended)", student)
                    if held is not None and held.changed_on_disk():
                        held.restore()
                        theirs = void(
                            theirs, "the run changed the prepared reference outputs (put back)", student
                        )
                    isolation.remove(home)
                except Exception as err:
                    theirs.append(Row(student, "-", "(error)", 0, False, f"cleanup: {first_line(repr(err))}"))
                flush(theirs)
                if (
                    submission_dir is None
                    and cache_dir is not None
                    and all(r.passed for r in theirs if r.check[:1] != "(")
                ):
                    key = isolation.seed_key([nbformat.writes(nb) for _, nb in references], profile, root)
                    isolation.store_prepared(out, cache_dir, key, profile) if out.exists() else None
        finally:
            isolation.make_writable(work)
    return as_table(rows)


def _interrupt(signum, frame):  # SIGTERM: stop like Ctrl-C, so the kernel is shut down
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run notebooks headless and report every graded check.")
    parser.add_argument(
        "--submissions",
        type=Path,
        default=None,
        help="a folder of submitted notebooks, or of one folder per student "
        "(default: grade the workbook itself)",
    )
    parser.add_argument("--csv", type=Path, default=ROOT / "grades.csv", help="where to write the table")
    parser.add_argument(
        "--profile", default="ci", choices=("ci", "full"), help="profile to run in (default: ci)"
    )
    parser.add_argument("--cell-timeout", type=int, default=CELL_TIMEOUT_S, help="seconds one cell may run")
    parser.add_argument(
        "--notebook-timeout",
        type=int,
        default=NOTEBOOK_TIMEOUT_S,
        help="seconds one notebook may run, all cells",
    )
    parser.add_argument(
        "--seed", type=int, default=None, help="seed of the hidden cases (default: fresh per run)"
    )
    parser.add_argument(
        "--prepare", action="store_true", help="only make (or find) the prepared reference outputs"
    )
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)
    log = lambda m: print(m, file=sys.stderr)  # noqa: E731
    limits = dict(timeout=args.cell_timeout, notebook_timeout=args.notebook_timeout)
    try:
        if args.prepare:
            refs = [(p.name, read_notebook(p)) for p in workbook_notebooks()]
            CACHE_DIR.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(prefix="work-", dir=CACHE_DIR) as tmp:
                rng = np.random.default_rng(args.seed)
                seed = prepared_outputs(
                    refs, work=Path(tmp), rng=rng, profile=args.profile, log=log, **limits
                )
                if not (seed / isolation.COMPLETE).exists():
                    isolation.make_writable(Path(tmp))
                    print("error: the workbook's own notebooks fail; nothing prepared", file=sys.stderr)
                    return 1
            print(seed)
            return 0
        table = grade(args.submissions, profile=args.profile, log=log, csv=args.csv, seed=args.seed, **limits)
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
