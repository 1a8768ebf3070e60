"""``make check-nbgrader``: nbgrader itself on the workbook, end to end (optional, not in ``make test``).

In a temporary course directory with ``tools/nbgrader_config.py``: ``generate_assignment`` from the
workbook's notebooks, ``autograde`` of a complete submission (the solutions) and of an empty one (the
release version, nothing answered), each student with a private ``WORKBOOK_OUTPUT`` seeded from the
prepared reference outputs (``python -m tools.grading --prepare``), then ``export``. Fails unless
the complete submission scores every check and the empty one none. Needs nbgrader on ``PATH``
(the Makefile runs it from ``.venv-nbgrader``).
"""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from helpers.config import OUTPUT_ENV, ROOT
from tools.assignment import (
    graded_cells,
    is_manual,
    points,
    read_notebook,
    source_version,
    workbook_notebooks,
    write_student_versions,
)
from tools.isolation import copy_seed, make_writable

ASSIGNMENT = "brain_surgery"


def _run(args: list[str], cwd: Path, env: dict | None = None) -> None:
    print("$", " ".join(args), flush=True)
    start = time.monotonic()
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        print(done.stdout[-4000:], done.stderr[-4000:], sep="\n")
        raise SystemExit(f"FAILED: {' '.join(args)} (exit {done.returncode})")
    print(f"  {time.monotonic() - start:.0f} s", flush=True)


def main() -> int:
    if shutil.which("nbgrader") is None:
        print(
            "nbgrader is not on PATH: run `make check-nbgrader` (it builds .venv-nbgrader)", file=sys.stderr
        )
        return 1
    notebooks = workbook_notebooks()
    possible = sum(points(c) for p in notebooks for _, c in graded_cells(read_notebook(p)))
    # answers graded by hand count in nbgrader's maximum, never in an autograded score
    manual = sum(points(c) for p in notebooks for c in read_notebook(p).cells if is_manual(c))
    seed = Path(
        subprocess.run(
            [sys.executable, "-m", "tools.grading", "--prepare"],
            cwd=ROOT,
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    with tempfile.TemporaryDirectory(prefix="check-nbgrader-") as tmp:
        course = Path(tmp)
        shutil.copyfile(ROOT / "tools" / "nbgrader_config.py", course / "nbgrader_config.py")
        source = course / "source" / ASSIGNMENT
        source.mkdir(parents=True)
        write_student_versions(notebooks, source, source_version)  # as the README: no saved widget state
        _run(["nbgrader", "generate_assignment", ASSIGNMENT, "--force"], course)
        release = course / "release" / ASSIGNMENT
        stale = [p.name for p in notebooks if read_notebook(release / p.name).metadata.get("widgets")]
        if stale:
            raise SystemExit(f"release notebooks keep saved widget state: {stale}")
        for student, origin in (("complete", source), ("empty", course / "release" / ASSIGNMENT)):
            target = course / "submitted" / student / ASSIGNMENT
            target.mkdir(parents=True)
            for p in notebooks:
                shutil.copyfile(origin / p.name, target / p.name)
            out = course / "workbook_outputs" / student
            copy_seed(seed, out)
            env = {**os.environ, OUTPUT_ENV: str(out)}
            _run(["nbgrader", "autograde", ASSIGNMENT, "--student", student, "--force"], course, env)
        _run(["nbgrader", "export"], course)
        with open(course / "grades.csv", newline="") as fh:
            scores = {r["student_id"]: (float(r["score"]), float(r["max_score"])) for r in csv.DictReader(fh)}
        make_writable(course)
    print(
        f"nbgrader export: {scores} ({possible:g} points in the workbook's graded cells, "
        f"{manual:g} graded by hand)"
    )
    most = possible + manual
    want = {"complete": (possible, most), "empty": (0.0, most)}
    if scores != want:
        print(f"FAILED: expected {want}", file=sys.stderr)
        return 1
    print(f"ok: complete {possible:g}/{most:g} before hand-grading, empty 0/{most:g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
