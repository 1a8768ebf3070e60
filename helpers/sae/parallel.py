"""Independent training runs on every core of the machine: one process per core, one thread each.

Small SAEs do not keep two threads busy: on a 2-core EPYC a 150-step x2 TopK run takes 4.9 s on two threads
and 6.9 s on one, and a run on notebook 07's synthetic set no less on one thread than on two. Two runs side
by side, one thread each, then finish in the time two threads take for one and a half. :func:`run_all` runs
a list of jobs so, in spawned processes (never forked: a forked PyTorch can hang), and one after another on
one thread where there is one core or ``parallel`` is off. Every run trains on one thread either way, so the
numbers do not depend on the path or on the machine's number of cores.
"""

from __future__ import annotations

import atexit
import multiprocessing as mp
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from typing import Any

import torch

_SHARED: Any = None  # what every job of a worker reads (set once per worker by _init)
# the pool of the last call, kept for the next call with the same shared data (notebook 07's §1 makes two
# calls on one synthetic set: the second then skips the ~3 s the workers take to start)
_POOL: tuple[ProcessPoolExecutor, Any, int] | None = None


def cores() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


@contextmanager
def one_thread() -> Iterator[None]:
    """PyTorch on one thread inside the block (as in a worker), its own setting restored after."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


def _init(shared: Any) -> None:
    global _SHARED
    torch.set_num_threads(1)
    _SHARED = shared


def _call(fn: Callable, args: tuple) -> Any:
    return fn(_SHARED, *args)


def close_pool() -> None:
    """Stop the kept workers (also done at exit, and by a call with other shared data)."""
    global _POOL
    if _POOL is not None:
        _POOL[0].shutdown(cancel_futures=True)
        _POOL = None


atexit.register(close_pool)


def _pool(shared: Any, workers: int) -> ProcessPoolExecutor:
    global _POOL
    if _POOL is None or _POOL[1] is not shared or _POOL[2] != workers:
        close_pool()
        pool = ProcessPoolExecutor(
            workers, mp_context=mp.get_context("spawn"), initializer=_init, initargs=(shared,)
        )
        _POOL = (pool, shared, workers)  # holds shared: its identity cannot pass to another object
    return _POOL[0]


def run_all(fn: Callable, jobs: Sequence[tuple], shared: Any = None, parallel: bool = True) -> list:
    """``[fn(shared, *job) for job in jobs]``, in order, each on one thread. ``fn`` must be a module-level
    function (a worker imports it); ``shared`` (the data every job reads) reaches each worker once. With
    ``parallel`` and more than one core and job, the jobs run in min(cores, jobs) spawned processes, kept
    for the next call with the same ``shared`` object (:func:`close_pool` stops them; change ``shared`` in
    place and the kept workers would not see it: pass a new object); an error in a job is raised here, as it
    would be one after another, and stops the workers."""
    jobs = [tuple(j) for j in jobs]
    workers = min(cores(), len(jobs)) if parallel else 1
    if workers <= 1:
        with one_thread():
            return [fn(shared, *j) for j in jobs]
    try:
        return list(_pool(shared, workers).map(_call, [fn] * len(jobs), jobs))
    except BrokenProcessPool:
        close_pool()
        raise RuntimeError(
            "a worker of the side-by-side runs died (killed, or out of memory); run the cell again, or turn "
            "the profile's parallel_runs off to train one run after another"
        ) from None
    except BaseException:
        close_pool()  # an interrupted pool, or one whose job failed, is not kept
        raise
