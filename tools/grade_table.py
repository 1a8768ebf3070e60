"""The grade table: one row per graded check (and per finding), its summary and its text form."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, replace

import pandas as pd


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


def void(rows: list[Row], why: str, student: str = "-") -> list[Row]:
    student, name = (rows[0].student, rows[0].notebook) if rows else (student, "-")
    out = [
        replace(r, passed=False, failure=f"void: {why}") if r.passed and r.check[:1] != "(" else r
        for r in rows
    ]
    return out + [Row(student, name, "(files)", 0, False, why)]


def as_table(rows: Iterable[Row]) -> pd.DataFrame:
    return pd.DataFrame([asdict(r) for r in rows], columns=COLUMNS)


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
