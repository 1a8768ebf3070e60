"""Keep freed memory in the process instead of handing it back to the system after every large tensor.

glibc serves each allocation above a threshold (at most 32 MB) with a fresh ``mmap`` and unmaps it on free,
so a loop that makes a 257 MB tensor per step (notebook 07's ΔCE: log-probabilities of 17 patched copies of a
text over the 49,152-token vocabulary) faults every page of it in again each time. Serving every allocation
from the heap, and trimming the heap only beyond 1 GiB of free space at its top, removes those faults:
notebook 07 on a 2-core EPYC went from 256 to 239 s of wall time (system time 37 -> 13 s) and its peak
resident memory from 4.57 to 4.84 GB. No number a notebook prints changes: where memory comes from does not
change any arithmetic.

Applied once, when ``helpers`` is imported, on glibc only (elsewhere nothing happens);
``WORKBOOK_MALLOC=system`` in the environment leaves the allocator as it is.
"""

from __future__ import annotations

import ctypes
import os

M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4  # mallopt's parameters (glibc's malloc.h)
TRIM_THRESHOLD = 1 << 30


def keep_freed_memory() -> bool:
    """Set glibc's malloc to serve every allocation from the heap and keep up to 1 GiB of freed memory at
    its top. Returns whether it was applied (False off glibc or with ``WORKBOOK_MALLOC=system``)."""
    if os.environ.get("WORKBOOK_MALLOC", "").strip().lower() == "system":
        return False
    try:
        libc = ctypes.CDLL(None)  # the process's own symbols, libc's among them (no library search)
        gnu_get_libc_version = libc.gnu_get_libc_version  # glibc only: musl and macOS lack it
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    del gnu_get_libc_version
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(M_MMAP_MAX, 0)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
