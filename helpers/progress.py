"""Progress bars that a saved notebook shows in their final state.

In a live notebook a bar is tqdm's widget. A notebook saved by a headless run (``make run``, nbval,
the grader: they set ``WORKBOOK_HEADLESS=1``) would keep only the widget's plain-text fallback, which
tqdm writes once, at 0% ("0%| 0/7" on GitHub and in VS Code). There the bar is one plain line written
when it closes instead: what ran, how many, how long.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Iterator
from typing import Any

HEADLESS_ENV = "WORKBOOK_HEADLESS"


class FinalLine:
    """tqdm's interface (iterate, ``update``, ``close``) printing one line at the end."""

    def __init__(
        self, iterable: Iterable | None = None, total: int | None = None, desc: str | None = None, **_: Any
    ):
        self.iterable = iterable
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)  # type: ignore[arg-type]
        self.total, self.desc, self.n = total, desc or "progress", 0
        self.t0, self.closed = time.perf_counter(), False

    def __iter__(self) -> Iterator:
        if self.iterable is None:
            raise TypeError("nothing to iterate: pass an iterable, or call update()")
        for item in self.iterable:
            yield item
            self.n += 1
        self.close()

    def update(self, n: int = 1) -> None:
        self.n += n

    def line(self) -> str:
        of = f"/{self.total}" if self.total is not None else ""
        return f"{self.desc}: {self.n}{of} done in {time.perf_counter() - self.t0:.1f} s"

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            print(self.line(), flush=True)


class _Silent(FinalLine):
    def close(self) -> None:
        self.closed = True


def progress_bar(iterable: Iterable | None = None, *, disable: bool = False, **kw: Any):
    """``tqdm.auto.tqdm(iterable, **kw)`` in a live session; :class:`FinalLine` in a headless run."""
    if disable:
        return _Silent(iterable, **kw)
    if os.environ.get(HEADLESS_ENV, "").strip() not in ("", "0"):
        return FinalLine(iterable, **kw)
    from tqdm.auto import tqdm

    return tqdm(iterable, **kw)
