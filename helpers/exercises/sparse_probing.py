"""Graded exercise of notebook 07's sparse-probing section: choose the k columns a k-sparse probe reads.

``choose_columns(X_train, y_train, k)`` returns k distinct column indices. Any sensible criterion passes:
the judge fits a logistic probe on the student's columns (training split) and on the reference's
(:func:`helpers.analysis.probing.choose_columns`: the standardised class-mean difference) and compares
their AUROC on the test split. The synthetic cases are built so the usual mistakes lose clearly: dense
columns of large variance and a small relative shift (a raw mean difference picks them), informative
columns that are *lower* for the positives (a signed criterion drops them), constant columns (0 / 0 is
NaN, which a descending sort puts first) and k above the number of informative columns (a threshold
returns too few)."""

from __future__ import annotations

import numpy as np

from helpers.analysis import probing
from helpers.exercises.common import Case, Exercise, arrays, make_check

TOLERANCE = 0.05  # the student's held-out AUROC may fall this far below the reference's
TRAPS = ("variance", "sign", "constant", "extra")


def _case(rng: np.random.Generator, trap: str) -> Case:
    """Train and test rows of one synthetic task. Informative columns: spread 0.02-0.1, a shift of 1.2-1.8
    of it (each alone: AUROC ~0.8). Dense decoys: spread 10-20, a shift of 0.2 of it (a raw difference
    ~20x any informative column's, AUROC ~0.56). Constant columns, and noise. ``trap`` sets what the
    case stresses: ``variance`` (k + 2 decoys), ``sign`` (every informative column lower for
    the positives), ``constant`` (more constant columns than k), ``extra`` (k above the informative
    columns)."""
    if trap not in TRAPS:
        raise ValueError(f"trap must be one of {', '.join(TRAPS)}, got {trap!r}")
    m = 2 if trap == "extra" else int(rng.integers(2, 4))
    k = m + int(rng.integers(2, 4)) if trap == "extra" else m
    n_decoy = k + 2 if trap == "variance" else int(rng.integers(1, 3))
    n_const = k + int(rng.integers(0, 2)) if trap == "constant" else int(rng.integers(1, 3))
    n_noise = int(rng.integers(8, 20))
    d = m + n_decoy + n_const + n_noise
    kind = np.array(["info"] * m + ["decoy"] * n_decoy + ["const"] * n_const + ["noise"] * n_noise)
    kind = kind[rng.permutation(d)]
    sd = np.where(kind == "info", rng.uniform(0.02, 0.1, d), rng.uniform(0.5, 2.0, d))
    sd[kind == "decoy"] = rng.uniform(10.0, 20.0, (kind == "decoy").sum())
    effect = np.zeros(d)  # shift of the positives, in units of the column's sd
    sign = -1.0 if trap == "sign" else rng.choice([-1.0, 1.0], m)
    effect[kind == "info"] = sign * rng.uniform(1.2, 1.8, m)
    effect[kind == "decoy"] = rng.choice([-0.2, 0.2], (kind == "decoy").sum())
    const = np.round(rng.uniform(-2.0, 5.0, d) * 4) / 4 * (rng.random(d) < 0.7)  # exact; dead ones at 0
    base = rng.normal(0.0, 1.0, d) * (kind != "const")

    def rows(n: int) -> tuple[np.ndarray, np.ndarray]:
        y = rng.random(n) < rng.uniform(0.35, 0.65)
        X = base + (rng.normal(size=(n, d)) + np.outer(y, effect)) * sd
        X[:, kind == "const"] = const[kind == "const"]
        return X, y

    X_train, y_train = rows(int(rng.integers(180, 260)))
    X_test, y_test = rows(600)
    return arrays(X_train=X_train, y_train=y_train, X_test=X_test, y_test=y_test, k=k)


def _solve(case: Case) -> Case:
    return arrays(columns=probing.choose_columns(case["X_train"], case["y_train"], int(case["k"])))


def _mistake_hint(case: Case, got: np.ndarray) -> str | None:
    """The hint of the usual mistake that ``got`` (k distinct valid columns, probing clearly worse than
    the reference's) looks like, if any; tested in this order because the output tells them apart."""
    X, y, k = case["X_train"], case["y_train"].astype(bool), int(case["k"])
    diff = X[y].mean(0) - X[~y].mean(0)
    n1, n0 = y.sum(), (~y).sum()
    pooled = np.sqrt((X[y].var(0) * n1 + X[~y].var(0) * n0) / (n1 + n0 - 2))
    flat = pooled == 0
    score = np.abs(diff) / np.where(flat, 1.0, pooled) * ~flat
    if flat[got].all():
        return (
            "your columns are all constant (sd 0), so they cannot separate anything: score a constant column "
            "0, not 0 / 0 = NaN (reversing an ascending sort puts NaN first), and keep the k largest scores"
        )
    if (score[got] <= np.median(score)).all():
        return "you took the k smallest scores: keep the k largest (np.argsort(-score)[:k])"
    if flat[got].any():
        return (
            "a constant column has sd 0, so its score is 0 / 0 = NaN, and reversing an ascending sort puts "
            "NaN first: give constant columns the score 0 (np.where(sd > 0, ..., 0))"
        )
    with np.errstate(divide="ignore", invalid="ignore"):
        signed = np.where(flat, -np.inf, diff / pooled)
    overlap = [
        (
            len(set(got.tolist()) & set(np.argsort(-cols, kind="stable")[:k].tolist())),
            hint,
        )
        for cols, hint in (
            (
                signed,
                "you kept the sign of the difference: a column that is lower for the positives separates "
                "them just as well; rank the columns by the absolute value",
            ),
            (
                np.abs(diff),
                "your columns' raw mean difference favours high-variance columns: divide each column's "
                "class-mean difference by its spread within the classes (pooled sd)",
            ),
        )
    ]
    n, hint = max(overlap, key=lambda o: o[0])  # a tie: the sign (a signed chooser picks decoys too)
    return hint if 2 * n >= k else None


def _judge(case: Case, out: Case) -> str | None:
    X_train, X_test, k = case["X_train"], case["X_test"], int(case["k"])
    fmt = "return the k chosen column indices as a 1-D array of whole numbers"
    try:
        got = np.asarray(out["columns"])
        if got.ndim != 1 or got.dtype.kind not in "iuf" or not np.array_equal(got, np.round(got)):
            return fmt
        got = got.astype(np.int64)
    except (KeyError, TypeError, ValueError, OverflowError):
        return fmt
    if len(got) < k:
        return (
            "return exactly k columns, even when fewer than k carry the signal: keep the k best-scoring "
            "ones rather than those above a threshold"
        )
    if len(got) > k:
        return "return exactly k columns: the probe may read no more than k"
    if len(set(got.tolist())) < k:
        return "your columns repeat an index: return k distinct columns (a column read twice adds nothing)"
    if got.min() < 0 or got.max() >= X_train.shape[1]:
        return "column indices run from 0 to X_train.shape[1] - 1"
    args = (case["X_train"], case["y_train"], X_test, case["y_test"])
    want = probing.heldout_auroc(*args, _solve(case)["columns"])
    if probing.heldout_auroc(*args, got) >= want - TOLERANCE:
        return None
    return _mistake_hint(case, got) or (
        "a probe on your columns tells the held-out rows apart clearly worse than one on the most "
        "separating columns: score each column by |mean(pos) - mean(neg)| / pooled sd and keep the k largest"
    )


CHOOSE_COLUMNS = Exercise(
    name="choose_columns",
    references=("helpers.analysis.probing.choose_columns", "helpers.analysis.probing.column_scores"),
    public=lambda: [_case(np.random.default_rng(i + 1), trap) for i, trap in enumerate(TRAPS)],
    hidden=lambda rng: [_case(rng, trap) for trap in TRAPS],
    answer=lambda args, c: arrays(columns=args[0](c["X_train"], c["y_train"], int(c["k"]))),
    solve=_solve,
    judge=_judge,
    done="your columns probe as well as the reference's on every public case",
)

EXERCISES = (CHOOSE_COLUMNS,)
check_choose_columns = make_check(CHOOSE_COLUMNS)
