import numpy as np
import pytest

from helpers import io


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
