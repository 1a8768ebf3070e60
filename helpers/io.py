"""Atomic file writing: write to a temp file in the same folder, then ``os.replace``.

An interrupted cell (or an exception half-way) therefore never leaves half a file behind: the
previous version stays until the new one is complete.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd


@contextmanager
def atomic_path(path: str | Path, suffix: str = ""):
    """Yield a temp path beside ``path``; on success it replaces ``path``, on error it is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix or ".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_atomic(path: str | Path, write: Callable[[Path], None], suffix: str = "") -> Path:
    """Call ``write(tmp_path)`` and move the result onto ``path`` atomically."""
    with atomic_path(path, suffix) as tmp:
        write(tmp)
    return Path(path)


def save_json(path: str | Path, obj) -> Path:
    return write_atomic(path, lambda p: p.write_text(json.dumps(obj, indent=2) + "\n"))


def load_json(path: str | Path):
    return json.loads(Path(path).read_text())


def save_csv(path: str | Path, df: pd.DataFrame) -> Path:
    return write_atomic(path, lambda p: df.to_csv(p, index=False))


def save_npz(path: str | Path, **arrays: np.ndarray) -> Path:
    """``np.savez`` atomically; object arrays are refused (they would need pickle to load)."""
    for name, arr in arrays.items():
        if np.asarray(arr).dtype == object:
            raise TypeError(f"array {name!r} has dtype object; store numbers or fixed-width strings")
    return write_atomic(path, lambda p: np.savez(p, **arrays), suffix=".npz")


def load_npz(path: str | Path) -> dict[str, np.ndarray]:
    """Load every array of an ``.npz`` file, never unpickling."""
    with np.load(path, allow_pickle=False) as f:
        return {k: f[k] for k in f.files}
