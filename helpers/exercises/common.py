"""What every graded exercise shares: its spec, the student's self-check and the grader's hidden run.

An exercise is an :class:`Exercise`: fixed **public** cases (the student's self-check, ``check_<name>``,
runs on them in the notebook), a generator of fresh **hidden** cases (the grader draws them, seeded per
run), how to run the student's answer on one case (``answer``, in the student's kernel), the reference's
outputs on a case (``solve``, the matching ``helpers`` function) and how to judge an answer's outputs
(``judge``: None when right, else a hint that names the likely mistake, never the expected value).

Cases and outputs are plain arrays (numbers or strings), so they cross between the grader and the
student's kernel as ``.npz`` files read with ``allow_pickle=False``. At grade time the kernel only runs
:func:`answer_hidden` (inputs in, outputs out); the grader judges the outputs in its own process
(``tools.grading``), so no expected value ever enters the student's kernel and nothing the kernel prints
is trusted.
"""

from __future__ import annotations

import importlib
import inspect
import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

Case = dict[str, np.ndarray]
BLOCKED = "this exercise asks for your own code"
ERROR = "__error__"  # the output key that carries the student's exception, one line


class CheckFailed(AssertionError):
    """A graded check found a wrong answer; the message says what is likely wrong."""


@dataclass(frozen=True)
class Exercise:
    """One graded exercise (see the module docstring). ``references`` are the dotted names of the
    ``helpers`` functions the student is asked to write themselves: the grader's source scan scores
    any use of them 0, and the self-check switches them off while the student's code runs."""

    name: str
    references: tuple[str, ...]
    public: Callable[[], list[Case]]
    hidden: Callable[[np.random.Generator], list[Case]]
    answer: Callable[[tuple, Case], Case]
    solve: Callable[[Case], Case]
    judge: Callable[[Case, Case], str | None]
    done: str = "right on every public case"  # the success line's detail

    @property
    def check_name(self) -> str:
        return f"check_{self.name}"


def passed(name: str, detail: str) -> None:
    print(f"PASSED {name}: {detail}")


def arrays(**values) -> Case:
    """A case or an output: every value as a numpy array (strings as unicode arrays, never objects)."""
    out = {}
    for k, v in values.items():
        a = np.asarray(v.detach().cpu().numpy() if hasattr(v, "detach") else v)
        if a.dtype == object:
            raise CheckFailed(f"{k}: expected numbers or strings, got {type(v).__name__}")
        out[k] = a
    return out


def _stub(where: str):
    """A code object that raises, for a function without closure variables."""
    msg = f"{BLOCKED}: it calls the reference {where}; write the computation yourself"
    space: dict = {}
    exec(f"def blocked(*args, **kwargs):\n    raise AssertionError({msg!r})", space)  # noqa: S102
    return space["blocked"].__code__


def resolve(dotted: str) -> Callable:
    module, _, attr = dotted.rpartition(".")
    return getattr(importlib.import_module(module), attr)


@contextmanager
def blocked(functions: Sequence[Callable]) -> Iterator[None]:
    """Switch ``functions`` off while the student's code runs (their code swapped, then restored), so a
    plain call of the reference, under any name bound to the same function object, fails in one line.
    A courtesy to the student: what grading relies on is the grader's source scan."""
    saved = []
    try:
        for f in functions:
            target = inspect.unwrap(f)
            if target.__code__.co_freevars:
                raise TypeError(f"cannot block {target.__qualname__}: it is a closure")
            saved.append((target, target.__code__))
            target.__code__ = _stub(f"helpers function {target.__module__}.{target.__qualname__}")
        yield
    finally:
        for target, code in saved:
            target.__code__ = code


def run_answer(ex: Exercise, args: tuple, case: Case) -> Case:
    """The student's outputs on one case; a missing answer or a blocked reference raises ``CheckFailed``."""
    try:
        with blocked([resolve(r) for r in ex.references]):
            return ex.answer(args, case)
    except NotImplementedError as err:
        raise CheckFailed("not answered yet: replace `raise NotImplementedError()` with your code") from err
    except AssertionError as err:
        if str(err).startswith(BLOCKED):
            raise CheckFailed(str(err)) from None
        raise


def self_check(ex: Exercise, *args) -> None:
    """The check a student runs in the notebook: the answer on the public cases, judged here."""
    cases = ex.public()
    for case in cases:
        hint = ex.judge(case, run_answer(ex, args, case))
        if hint:
            raise CheckFailed(hint)
    passed(ex.name, f"{ex.done} ({len(cases)})")


def make_check(ex: Exercise) -> Callable:
    def check(*args) -> None:
        self_check(ex, *args)

    check.__name__ = check.__qualname__ = ex.check_name
    check.__doc__ = f"Self-check of the {ex.name!r} exercise on its public cases."
    return check


# ----------------------------------------------------------------------------------------------
# cases and outputs as files (no pickles)


def write_cases(path: Path, cases: list[Case]) -> None:
    """``cases`` as one ``.npz`` (keys ``<i>/<name>``), written atomically."""
    flat = {f"{i}/{k}": np.asarray(v) for i, case in enumerate(cases) for k, v in case.items()}
    flat["n"] = np.asarray(len(cases))
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp.npz", dir=path.parent)
    os.close(fd)
    try:
        np.savez(tmp, **flat)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def read_cases(path: Path, expect: int | None = None) -> list[Case]:
    """The cases (or outputs) in ``path``; ``expect``: how many there must be (a forged count is refused
    before anything is built from it)."""
    with np.load(path, allow_pickle=False) as z:
        n = int(z["n"])
        if (expect is not None and n != expect) or not 0 <= n <= 10_000:
            raise ValueError(f"{path.name}: holds {n} cases, expected {expect}")
        cases: list[Case] = [{} for _ in range(n)]
        for key in z.files:
            if key == "n":
                continue
            i, _, name = key.partition("/")
            if not i.isdigit() or int(i) >= n or not name:
                raise ValueError(f"{path.name}: unexpected entry {key!r}")
            cases[int(i)][name] = z[key]
    return cases


def _one_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0][:200]}" if text else type(err).__name__


def answer_hidden(ex: Exercise, args: tuple, inputs: str, outputs: str) -> None:
    """What the grader runs in the student's kernel in place of a graded cell: the student's answer on
    the hidden cases in ``inputs``, their outputs (or the one-line error) written to ``outputs``."""
    results = []
    for case in read_cases(Path(inputs)):
        try:
            results.append(run_answer(ex, args, case))
        except Exception as err:  # the student's error becomes the row's failure, one line
            results.append({ERROR: np.asarray(str(err) if isinstance(err, CheckFailed) else _one_line(err))})
    write_cases(Path(outputs), results)


def judge_all(ex: Exercise, cases: list[Case], outputs: list[Case]) -> str | None:
    """None when every hidden case is right, else the first failure's hint (in the grader's process)."""
    if len(outputs) != len(cases):
        return f"the answer gave {len(outputs)} results for {len(cases)} cases"
    for case, got in zip(cases, outputs, strict=True):
        if ERROR in got:
            return str(got[ERROR])
        try:
            hint = ex.judge(case, got)
        except Exception as err:  # malformed outputs: missing keys, wrong types
            return f"the answer's output could not be read ({_one_line(err)})"
        if hint:
            return hint
    return None


# ----------------------------------------------------------------------------------------------
# comparisons the judges share


def close(a, b, rtol: float = 1e-4) -> bool:
    try:
        a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
        return a.shape == b.shape and bool(np.allclose(a, b, rtol=rtol, atol=1e-8))
    except (TypeError, ValueError):
        return False


def first_match(got, variants: Sequence[tuple[object, str]], rtol: float = 1e-4) -> str | None:
    """The hint of the first wrong ``(value, hint)`` variant that ``got`` equals, if any."""
    for value, hint in variants:
        if close(got, value, rtol):
            return hint
    return None


def scalar(out: Case, key: str = "value") -> float:
    """A scalar output, or NaN when it is missing or not one number."""
    try:
        a = np.asarray(out[key], dtype=np.float64)
        return float(a) if a.size == 1 else float("nan")
    except (KeyError, TypeError, ValueError):
        return float("nan")


def exercise_of(module, check_name: str) -> Exercise:
    """The exercise whose self-check is ``check_name`` in an exercise module (its ``EXERCISES``)."""
    for ex in getattr(module, "EXERCISES", ()):
        if ex.check_name == check_name:
            return ex
    raise LookupError(f"{module.__name__} has no exercise checked by {check_name}")
