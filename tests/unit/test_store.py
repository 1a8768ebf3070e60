import numpy as np
import pandas as pd
import pytest

from helpers import config, io
from helpers import store as st
from helpers.generation import GenerationConfig
from tests.conftest import TEXTS, tiny_llama


@pytest.fixture
def tmp_root(tmp_path, monkeypatch):
    """Point every produced file of the active (full) profile at a temp folder."""
    monkeypatch.setattr(config, "ROOT", tmp_path)
    monkeypatch.setenv("WORKBOOK_PROFILE", "full")
    return tmp_path


def small_store(n=10, d=8, layer=1):
    rng = np.random.default_rng(0)
    return st.Store(acts=rng.normal(size=(n, d)).astype(np.float32), token_ids=np.arange(3, 3 + n, dtype=np.int32),
                    doc_ids=np.repeat([0, 1], [4, n - 4]).astype(np.int32),
                    positions=np.concatenate([np.arange(1, 5), np.arange(1, n - 3)]).astype(np.int32),
                    layer=layer, model="tiny")


def test_store_round_trip_follows_the_contract(tmp_path):
    s = small_store()
    path = st.save_store(s, tmp_path / "activations.npz", meta={"layer": 1})
    raw = np.load(path, allow_pickle=False)
    assert sorted(raw.files) == sorted(st.KEYS)
    assert raw["acts"].dtype == np.float32 and raw["token_ids"].dtype == np.int32
    assert raw["layer"].shape == () and str(raw["model"]) == "tiny"
    back = st.load_store(path)
    np.testing.assert_array_equal(back.acts, s.acts)
    np.testing.assert_array_equal(back.positions, s.positions)
    assert (back.layer, back.model) == (1, "tiny")


def test_store_errors_say_what_to_do(tmp_path):
    with pytest.raises(FileNotFoundError, match="02_data_generation"):
        st.load_store(tmp_path / "none.npz")
    path = st.save_store(small_store(d=8, layer=1), tmp_path / "a.npz")
    model = tiny_llama()  # d_model 32
    with pytest.raises(ValueError, match="d_model 8 but the model has 32"):
        st.load_store(path, model=model)
    with pytest.raises(ValueError, match="holds layer 1, not layer 2"):
        st.load_store(path, layer=2)
    io.save_npz(tmp_path / "b.npz", acts=np.zeros((2, 3), np.float32))
    with pytest.raises(ValueError, match="lacks token_ids"):
        st.load_store(tmp_path / "b.npz")


def test_interrupted_store_write_keeps_the_previous_store(tmp_path, monkeypatch):
    path = st.save_store(small_store(), tmp_path / "activations.npz")
    before = path.read_bytes()

    def boom(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez", boom)
    with pytest.raises(KeyboardInterrupt):
        st.save_store(small_store(n=12), path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["activations.json", "activations.npz"]


def test_generations_and_store_reuse_and_regenerate(tmp_root, tokenizer, capsys):
    model = tiny_llama()
    prompts = pd.DataFrame({"id": [0, 1, 2], "theme": ["a", "b", "a"], "prompt": TEXTS[:3]})
    cfg = GenerationConfig(samples_per_prompt=2, max_new_tokens=4, min_new_tokens=4)
    docs, s = st.generations_and_store(model, tokenizer, prompts, cfg, layer=1, progress=False)
    assert "generating 6 texts" in capsys.readouterr().out
    assert list(docs.columns) == ["doc_id", "prompt_id", "theme", "sample", "text"] and len(docs) == 6
    assert (s.positions > 0).all() and set(s.doc_ids) == set(range(6))  # first tokens dropped
    docs2, s2 = st.generations_and_store(model, tokenizer, prompts, cfg, layer=1, progress=False)
    out = capsys.readouterr().out
    assert "reusing 6 generations" in out and "reusing activations.npz" in out
    pd.testing.assert_frame_equal(docs, docs2)
    np.testing.assert_array_equal(s.acts, s2.acts)
    _, s3 = st.generations_and_store(model, tokenizer, prompts, cfg, layer=2, progress=False)
    out = capsys.readouterr().out
    assert "reusing 6 generations" in out and "captured layer 2 from the saved texts" in out
    assert s3.layer == 2 and st.load_store().layer == 2
    st.generations_and_store(model, tokenizer, prompts, GenerationConfig(samples_per_prompt=2, max_new_tokens=4, min_new_tokens=4, seed=1),
                             layer=2, progress=False)
    assert "the parameters changed" in capsys.readouterr().out
