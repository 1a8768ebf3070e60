"""Run notebook cells in one fresh kernel, headless, going on after a cell raises (what the grader and
the invert check share)."""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbformat import NotebookNode

from helpers.config import OUTPUT_ENV, PROFILE_ENV


@dataclass(frozen=True)
class CellResult:
    """What happened to one code cell: ``error`` is empty when it ran cleanly."""

    ran: bool
    error: str = ""
    stdout: str = ""

    @property
    def ok(self) -> bool:
        return self.ran and not self.error


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
    timeout: int = 600,
    notebook_timeout: float | None = None,
    output: Path | None = None,
    env: dict[str, str] | None = None,
    around: Callable[[int, str], None] | None = None,
) -> list[CellResult]:
    """Run ``cells`` in order in one fresh kernel, going on after a cell raises.

    Returns one :class:`CellResult` per cell (markdown cells count as run). A cell past ``timeout``
    seconds, the whole run past ``notebook_timeout`` seconds or a dead kernel ends the run: that cell
    gets the error, the cells after it ``ran=False``. ``output`` becomes the kernel's
    ``WORKBOOK_OUTPUT`` (where the notebooks write data/ and figures/); ``env`` adds variables;
    ``around(i, "before")`` / ``around(i, "after")`` run in this process around code cell ``i``.
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
    kernel_env = {
        **os.environ,
        PROFILE_ENV: profile,
        "PYTHONDONTWRITEBYTECODE": "1",
        "WORKBOOK_HEADLESS": "1",
    }
    kernel_env.update(env or {})
    if output is not None:
        kernel_env[OUTPUT_ENV] = str(output)
    stopped = ""
    try:
        with client.setup_kernel(env=kernel_env):
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
                if around is not None:
                    around(i, "before")
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
                finally:
                    if around is not None:
                        around(i, "after")
                results.append(CellResult(True, _error_of(executed), _stdout_of(executed)))
    except Exception as err:  # the kernel could not start, or died between cells
        reason = f"not run: {type(err).__name__}: {first_line(str(err))}"
        results += [CellResult(False, reason)] * (len(nb.cells) - len(results))
    return results
