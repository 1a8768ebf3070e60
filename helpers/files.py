"""Files: atomic writing (never half a file), artifacts of several files committed together,
loading without pickles, and parameter keys.

* Atomic writing: write to a temp file in the same folder, then ``os.replace``. An interrupted cell
  never leaves half a file behind: the previous version stays until the new one is complete. Temp
  files are named ``.<name>.p<pid>.<random>.tmp<suffix>`` (git-ignored); one left by a killed process
  (kill -9 skips every ``finally``) is removed by the next write of the same file, never one whose
  writer still runs. :func:`atomic_dir` does the same for a folder (the model cache). New files get
  the user's umask, not 0600.
* Artifacts: a store (``.npz`` + its ``.json``), the generations (``.csv`` + ``.json``) and an SAE
  (weights + ``cfg.json``) are each several files. :func:`commit` writes, last, a marker naming every
  file's size and SHA-256; :func:`verify` reuses the artifact only when every file still matches, so
  a kill between two writes never pairs a new file with an old one.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from glob import escape as glob_escape
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

TMP_TAG = ".tmp"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_STARTED = time.time()  # this process had loaded helpers by then: older temps are no write of its own


def predates_process(path: Path) -> bool:
    """Whether ``path`` was last modified before this process loaded helpers (so no write of its own)."""
    try:
        return path.lstat().st_mtime < _STARTED
    except OSError:
        return False


def _temp_prefix(path: Path) -> str:
    """How our temps of ``path`` start: ``.<name>.p<pid>.`` (the pid tells whether the writer still runs)."""
    return f".{path.name}.p{os.getpid()}."


def _pid_alive(pid: int) -> bool:
    if os.name == "nt":  # os.kill would terminate the process there: never tell, never clean
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # alive, another user's
        return True
    return True


def _is_stale(tmp: Path, prefix: str) -> bool:
    """Whether ``tmp`` (a temp of ours: its name starts with ``prefix``) was left by a writer that is
    gone: its name carries the writer's pid and that process has ended (or is this one, which is not
    writing it now), or it carries no pid (written by an older workbook, which removed them all)."""
    m = re.match(r"p(\d+)\.", tmp.name[len(prefix) :])
    return m is None or int(m.group(1)) == os.getpid() or not _pid_alive(int(m.group(1)))


def remove_stale_temps(path: str | Path) -> list[Path]:
    """Remove the temps (files or folders named ``.<name>.*.tmp*``) of ``path`` that a killed writer
    left, never one whose writer still runs; returns what it removed. Errors are ignored (a temp that
    cannot be removed stays, as before)."""
    path = Path(path)
    prefix = f".{path.name}."
    removed = []
    for old in path.parent.glob(f"{glob_escape(prefix)}*{TMP_TAG}*"):
        if not _is_stale(old, prefix):
            continue
        try:
            if old.is_dir() and not old.is_symlink():
                shutil.rmtree(old)
            else:
                old.unlink()
            removed.append(old)
        except OSError:
            pass
    return removed


@contextmanager
def atomic_path(path: str | Path, suffix: str = "") -> Iterator[Path]:
    """Yield a temp path beside ``path``; on success it replaces ``path``, on error it is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(path)
    fd, tmp = tempfile.mkstemp(prefix=_temp_prefix(path), suffix=TMP_TAG + suffix, dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; a normal file follows the umask
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


@contextmanager
def atomic_dir(folder: str | Path) -> Iterator[Path]:
    """Yield a new empty temp folder beside ``folder`` (``.<name>.p<pid>.<random>.tmp``, ours to fill);
    on success it takes the place of ``folder`` (the old one is first moved aside under a temp name,
    then removed), on error it is removed. Temp folders a killed writer left are removed first."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(folder)
    tmp = Path(tempfile.mkdtemp(prefix=_temp_prefix(folder), suffix=TMP_TAG, dir=folder.parent))
    aside = None
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes 0700; a normal folder follows the umask
        if folder.exists():
            aside = tmp.with_name(tmp.name[: -len(TMP_TAG)] + ".old" + TMP_TAG)
            os.rename(folder, aside)
        os.replace(tmp, folder)
    except BaseException:
        if aside is not None and aside.exists() and not folder.exists():
            os.rename(aside, folder)  # put the old one back
            aside = None
        raise
    finally:
        for left in (tmp, aside):
            if left is not None and left.exists():
                shutil.rmtree(left, ignore_errors=True)


def write_atomic(path: str | Path, write: Callable[[Path], None], suffix: str = "") -> Path:
    """Call ``write(tmp_path)`` and move the result onto ``path`` atomically."""
    with atomic_path(path, suffix) as tmp:
        write(tmp)
    return Path(path)


def save_json(path: str | Path, obj: Any) -> Path:
    return write_atomic(path, lambda p: p.write_text(json.dumps(obj, indent=2) + "\n"))


def load_json(path: str | Path) -> Any:
    """A JSON file's content; an unreadable file is one ``ValueError`` line naming it."""
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as err:
        raise ValueError(
            f"{path.name} is not valid JSON ({err}); delete it and re-run what writes it"
        ) from None


def save_csv(path: str | Path, df: pd.DataFrame) -> Path:
    return write_atomic(path, lambda p: df.to_csv(p, index=False))


def save_npz(path: str | Path, **arrays: np.ndarray) -> Path:
    """``np.savez`` atomically; object arrays are refused (they would need pickle to load)."""
    for name, arr in arrays.items():
        if np.asarray(arr).dtype == object:
            raise TypeError(f"array {name!r} has dtype object; store numbers or fixed-width strings")
    return write_atomic(path, lambda p: np.savez(p, **arrays), suffix=".npz")


def load_npz(path: str | Path) -> dict[str, np.ndarray]:
    """Load every array of an ``.npz`` file, never unpickling. A truncated, empty or otherwise
    unreadable file is one ``ValueError`` line naming it."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as f:
            return {k: f[k] for k in f.files}
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, KeyError) as err:
        raise ValueError(f"{path.name} is unreadable ({type(err).__name__}: {err})") from None


def params_key(params: dict) -> str:
    """A short stable hash of a parameter dict, to tell whether saved work can be reused."""
    return hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode()).hexdigest()[:16]


# --- artifacts: several files committed by one marker written last ----------------------------------


def file_digest(path: str | Path) -> str:
    """SHA-256 of a file's bytes (read in 4 MiB blocks)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 22):
            h.update(block)
    return h.hexdigest()


def _entry(path: Path) -> dict:
    return {"size": path.stat().st_size, "sha256": file_digest(path)}


def commit(marker: str | Path, files: list[str | Path], meta: dict | None = None) -> dict:
    """Write ``marker`` (JSON, atomically, last): ``meta`` plus the size and SHA-256 of each of
    ``files`` (which must sit in the marker's folder). Returns what it wrote."""
    marker = Path(marker)
    entries = {}
    for f in map(Path, files):
        if f.parent.resolve() != marker.parent.resolve():
            raise ValueError(f"{f} is not beside its marker {marker.name}")
        entries[f.name] = _entry(f)
    content = {**(meta or {}), "files": entries}
    save_json(marker, content)
    return content


def verify(marker: str | Path, hash_files: bool = True) -> dict | None:
    """The marker's content if it exists and every file it names is present with its recorded size
    (and, with ``hash_files``, its SHA-256); else None: the artifact is incomplete or changed."""
    marker = Path(marker)
    try:
        content = load_json(marker)
    except (OSError, ValueError):
        return None
    files = content.get("files") if isinstance(content, dict) else None
    if not isinstance(files, dict) or not files:
        return None
    for name, want in files.items():
        f = marker.parent / name
        try:
            if f.stat().st_size != want.get("size"):
                return None
        except OSError:
            return None
        if hash_files and file_digest(f) != want.get("sha256"):
            return None
    return content
