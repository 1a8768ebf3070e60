"""Keeping students apart: the workbook's own files guarded, and the prepared outputs every student
starts from held by the grader (in memory, by content), written afresh for each student and checked
on disk after each one.

Students run one after another, as the same user: while one runs, no other student's folder exists
(each gets a fresh folder with an unguessable name, removed once its rows are in).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path

from helpers.config import ROOT

RESTORED_CODE = ("helpers", "tools")  # put back if a notebook changes them
WATCHED = ("notebooks", "data", "figures")  # reported if a notebook changes them
# committed inputs the notebooks read from the repository (part of the prepared outputs' key)
INPUTS = ("data/prompts.csv", "data/corpus_prompts.csv", "data/corpus.csv.gz")
COMPLETE = ".complete"


def fingerprint(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class FileGuard:
    """What a graded notebook changed in the workbook: ``helpers/`` and ``tools/`` sources are
    compared by content and put back; ``notebooks/``, ``data/``, ``figures/`` compared by size and
    modification time and reported."""

    def __init__(self, root: Path = ROOT):
        self.root = root
        self.code = {p: p.read_bytes() for p in self._code_files()}
        self.watched = self._stats()

    def _code_files(self) -> list[Path]:
        return sorted(p for d in RESTORED_CODE for p in (self.root / d).rglob("*.py") if p.is_file())

    def _stats(self) -> dict[Path, tuple[int, int]]:
        out = {}
        for d in WATCHED:
            for p in (self.root / d).rglob("*"):
                if p.is_file() and "__pycache__" not in p.parts and ".ipynb_checkpoints" not in p.parts:
                    st = p.stat()
                    out[p] = (st.st_size, st.st_mtime_ns)
        return out

    def changes(self) -> list[str]:
        """Changed files (relative paths, with what was done); restores code, re-baselines the rest."""
        found = []
        for p, data in self.code.items():
            try:
                same = p.is_file() and p.read_bytes() == data
            except OSError:
                same = False
            if not same:
                try:  # whatever stands in the way (a folder, an unreadable file) goes
                    if p.is_dir() and not p.is_symlink():
                        remove(p)
                    else:
                        p.unlink(missing_ok=True)
                    p.parent.mkdir(parents=True, exist_ok=True)
                    p.write_bytes(data)
                    found.append(f"{p.relative_to(self.root)} (put back)")
                except OSError as err:
                    found.append(f"{p.relative_to(self.root)} (could not be put back: {type(err).__name__})")
        for p in self._code_files():
            if p not in self.code:
                found.append(f"{p.relative_to(self.root)} (new)")
                try:
                    self.code[p] = p.read_bytes()
                except OSError:
                    pass
        now = self._stats()
        for p in sorted(set(now) | set(self.watched)):
            if now.get(p) != self.watched.get(p):
                what = "new" if p not in self.watched else "removed" if p not in now else "changed"
                found.append(f"{p.relative_to(self.root)} ({what})")
        self.watched = now
        return found


# ----------------------------------------------------------------------------------------------
# folders


def make_read_only(folder: Path) -> None:
    for p in sorted(folder.rglob("*"), key=lambda q: -len(q.parts)):
        p.chmod(0o555 if p.is_dir() else 0o444)
    folder.chmod(0o555)


def make_writable(folder: Path) -> None:
    for root, dirs, files in os.walk(folder):  # iterative: a tree of any depth
        for p in [Path(root), *(Path(root) / n for n in dirs + files)]:
            if not p.is_symlink():
                p.chmod(p.stat().st_mode | stat.S_IWUSR | (stat.S_IXUSR if p.is_dir() else 0))


def remove(folder: Path) -> None:
    """Remove ``folder`` whatever a student left in it (read-only parts, a tree too deep for Python)."""
    if not (folder.exists() or folder.is_symlink()):
        return
    try:
        if not folder.is_symlink():
            make_writable(folder)
        shutil.rmtree(folder, ignore_errors=True)
    except (OSError, RecursionError):
        pass
    if folder.exists():
        subprocess.run(["rm", "-rf", "--", str(folder)], check=False, capture_output=True)


def fresh_folder(parent: Path, prefix: str) -> Path:
    """A new, empty folder with an unguessable name (never one a student made in advance)."""
    return Path(tempfile.mkdtemp(prefix=prefix, dir=parent))


# ----------------------------------------------------------------------------------------------
# the prepared outputs


class Seed:
    """The prepared outputs, read into memory once (``{relative path: bytes}``): each student's output
    folder is written from memory, and :meth:`changed_on_disk` tells whether the cache folder was
    altered since (a student can reach it: same user); :meth:`restore` puts it back."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.complete = (folder / COMPLETE).exists()
        self.files = {
            p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*"))
            if p.is_file() and not p.is_symlink() and p.name != COMPLETE
        }

    def write_to(self, out: Path) -> None:
        out.mkdir(parents=True, exist_ok=False)
        for rel, data in self.files.items():
            target = out / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)

    def _on_disk(self) -> dict[str, bytes]:
        return {
            p.relative_to(self.folder).as_posix(): (b"<link>" if p.is_symlink() else p.read_bytes())
            for p in sorted(self.folder.rglob("*"))
            if (p.is_file() or p.is_symlink()) and p.name != COMPLETE
        }

    def changed_on_disk(self) -> bool:
        try:
            return self._on_disk() != self.files or (self.folder / COMPLETE).exists() != self.complete
        except OSError:
            return True

    def restore(self) -> None:
        remove(self.folder)
        self.write_to(self.folder)
        if self.complete:
            (self.folder / COMPLETE).write_text("restored by the grader\n")
        make_read_only(self.folder)


def seed_key(notebook_sources: list[str], profile: str, root: Path = ROOT) -> str:
    """Changes whenever what the reference notebooks produce could: their code, helpers, inputs."""
    h = hashlib.sha256(profile.encode())
    for source in notebook_sources:
        h.update(source.encode())
    for p in sorted((root / "helpers").rglob("*.py")):
        h.update(str(p.relative_to(root)).encode() + bytes.fromhex(fingerprint(p)))
    for rel in INPUTS:
        if (root / rel).exists():
            h.update(rel.encode() + bytes.fromhex(fingerprint(root / rel)))
    return h.hexdigest()[:16]


def store_prepared(out: Path, cache_dir: Path, key: str, profile: str) -> Path:
    """Copy ``out`` into the cache as the read-only prepared outputs for ``key``; older ones go."""
    final = cache_dir / f"{profile}-{key}"
    if (final / COMPLETE).exists():
        return final
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{profile}-{key}.", dir=cache_dir))
    shutil.copytree(out, tmp, dirs_exist_ok=True, symlinks=True)
    (tmp / COMPLETE).write_text(f"{profile} {key}\n")
    make_read_only(tmp)
    remove(final)
    tmp.rename(final)
    for old in cache_dir.glob(f"{profile}-*"):
        if old != final:
            remove(old)
    return final


def copy_seed(seed: Path | None, out: Path) -> None:
    """``out`` as a writable copy of the prepared outputs folder ``seed`` (empty if None)."""
    if seed is None:
        out.mkdir(parents=True)
        return
    shutil.copytree(seed, out, ignore=shutil.ignore_patterns(COMPLETE))
    make_writable(out)


# ----------------------------------------------------------------------------------------------
# processes a student leaves behind


def adopt_orphans() -> bool:
    """Make this process the reaper of its descendants (Linux ``PR_SET_CHILD_SUBREAPER``), so a process
    a student's code forks and detaches (``setsid``) stays ours to end; False where not supported."""
    try:
        import ctypes

        return ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def end_children() -> int:
    """Kill every process whose parent is this one (between students no kernel runs, so what is left is
    what a student started); returns how many."""
    import signal

    me, killed = str(os.getpid()), 0
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(ln.split(":", 1) for ln in status.read_text().splitlines() if ":" in ln)
            if fields["PPid"].strip() == me and not fields["State"].strip().startswith(
                "Z"
            ):  # zombies: reaped below
                os.kill(int(status.parent.name), signal.SIGKILL)
                killed += 1
        except (OSError, KeyError, ValueError):
            continue
    while True:  # reap every ended child, ours or a student's
        try:
            if os.waitpid(-1, os.WNOHANG)[0] == 0:
                break
        except ChildProcessError:
            break
    return killed
