from pathlib import Path

import numpy as np
import pytest

from helpers import files as io


def test_atomic_write_keeps_previous_file_on_error(tmp_path):
    path = tmp_path / "a.json"
    io.save_json(path, {"v": 1})

    def boom(p):
        p.write_text('{"v": 2, "half": ')
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        io.write_atomic(path, boom)
    assert io.load_json(path) == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]  # no temp file left behind


def test_npz_round_trip_without_pickle(tmp_path):
    path = tmp_path / "x.npz"
    io.save_npz(path, a=np.arange(3, dtype=np.int32), b=np.array("name"))
    got = io.load_npz(path)
    assert got["a"].tolist() == [0, 1, 2] and str(got["b"]) == "name"


def test_npz_refuses_object_arrays(tmp_path):
    with pytest.raises(TypeError, match="dtype object"):
        io.save_npz(tmp_path / "x.npz", a=np.array([{"k": 1}], dtype=object))


def test_files_follow_the_umask(tmp_path):
    import os
    import stat

    old = os.umask(0o022)
    try:
        p = io.save_json(tmp_path / "a.json", {"a": 1})
    finally:
        os.umask(old)
    assert stat.S_IMODE(p.stat().st_mode) == 0o644  # mkstemp alone gives 0600


def test_temp_files_of_a_killed_writer_are_cleaned_and_ignored(tmp_path):
    import subprocess

    stale = tmp_path / ".activations.npz.abc123.tmp.npz"  # what a kill -9 mid-write leaves
    stale.write_bytes(b"x" * 100)
    io.save_npz(tmp_path / "activations.npz", a=np.zeros(3))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["activations.npz"]
    root = Path(__file__).resolve().parents[2]
    ignored = subprocess.run(["git", "check-ignore", "-q", "data/.generations.csv.k2j.tmp"], cwd=root)
    assert ignored.returncode == 0, "temp files under data/ must be git-ignored"


def test_commit_and_verify_a_pair(tmp_path):
    a, b = tmp_path / "w.bin", tmp_path / "cfg.json"
    a.write_bytes(b"weights"), b.write_text("{}")
    io.commit(tmp_path / "done.json", [a, b], {"k": 1})
    assert io.verify(tmp_path / "done.json")["k"] == 1
    a.write_bytes(b"weightz")  # same size, other bytes
    assert io.verify(tmp_path / "done.json") is None
    assert io.verify(tmp_path / "done.json", hash_files=False) is not None  # size only
    b.unlink()
    assert io.verify(tmp_path / "done.json", hash_files=False) is None


def test_temps_of_a_live_writer_are_kept_and_of_a_dead_one_removed(tmp_path):
    """Temps carry their writer's pid: the next write removes those whose writer is gone, never one a
    running process is still writing (which would make its os.replace fail)."""
    import os
    import subprocess
    import sys

    dead = int(
        subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True).stdout
    )
    gone = tmp_path / f".a.json.p{dead}.x1y2.tmp"
    live = tmp_path / f".a.json.p{os.getppid()}.z3w4.tmp"
    other = tmp_path / ".b.json.p1.q5r6.tmp"  # another file's temp
    for p in (gone, live, other):
        p.write_text("half")
    io.save_json(tmp_path / "a.json", {"v": 1})
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["a.json", live.name, other.name])


def test_atomic_dir_replaces_a_folder_whole_and_cleans_after_a_killed_writer(tmp_path):
    import subprocess
    import sys

    target = tmp_path / "cache"
    with io.atomic_dir(target) as tmp:
        (tmp / "w.bin").write_bytes(b"1")
    assert (target / "w.bin").read_bytes() == b"1"
    with pytest.raises(RuntimeError), io.atomic_dir(target) as tmp:
        (tmp / "w.bin").write_bytes(b"half")
        raise RuntimeError("interrupted")
    assert (target / "w.bin").read_bytes() == b"1"  # the old folder stays whole
    dead = int(
        subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True).stdout
    )
    killed = tmp_path / f".cache.p{dead}.k2j9.tmp"  # what kill -9 mid-write leaves
    (killed / "sub").mkdir(parents=True)
    (killed / "sub" / "w.bin").write_bytes(b"x" * 1000)
    with io.atomic_dir(target) as tmp:
        (tmp / "w.bin").write_bytes(b"2")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache"]
    assert (target / "w.bin").read_bytes() == b"2"
    assert oct(target.stat().st_mode & 0o777) == oct(0o777 & ~_mask())


def _mask():
    import os

    m = os.umask(0)
    os.umask(m)
    return m
