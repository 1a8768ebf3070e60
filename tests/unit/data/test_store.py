import numpy as np
import pandas as pd
import pytest

from helpers import config
from helpers import files as io
from helpers.config import GenerationConfig
from helpers.data import pipeline
from helpers.data import store as st
from tests.conftest import TEXTS, tiny_llama


@pytest.fixture
def tmp_root(tmp_path, monkeypatch):
    """Point every produced file of the active (full) profile at a temp folder."""
    monkeypatch.setattr(config, "ROOT", tmp_path)
    monkeypatch.setenv("WORKBOOK_PROFILE", "full")
    return tmp_path


def small_store(n=10, d=8, layer=1):
    rng = np.random.default_rng(0)
    return st.Store(
        acts=rng.normal(size=(n, d)).astype(np.float32),
        token_ids=np.arange(3, 3 + n, dtype=np.int32),
        doc_ids=np.repeat([0, 1], [4, n - 4]).astype(np.int32),
        positions=np.concatenate([np.arange(1, 5), np.arange(1, n - 3)]).astype(np.int32),
        layer=layer,
        model="tiny",
    )


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
    io.commit(tmp_path / "b.json", [tmp_path / "b.npz"])
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
    docs, s = pipeline.generations_and_store(model, tokenizer, prompts, cfg, layer=1, progress=False)
    assert "generating 6 texts" in capsys.readouterr().out
    assert list(docs.columns) == ["doc_id", "prompt_id", "theme", "sample", "text", "prompt_tokens"]
    assert len(docs) == 6
    assert (s.positions > 0).all() and set(s.doc_ids) == set(range(6))  # first tokens dropped
    # each prompt's tokens once: sample 1 keeps only its continuation (the sample-0 copy has the prompt)
    n_prompt = docs.set_index("doc_id")["prompt_tokens"]
    for d in (1, 3, 5):
        assert (s.positions[s.doc_ids == d] >= n_prompt[d]).all()
    for d in (0, 2, 4):
        assert (s.positions[s.doc_ids == d] < n_prompt[d]).sum() == n_prompt[d] - 1  # all but the first token
    rows = {tuple(np.round(r, 5)) for r in s.acts}
    assert len(rows) == len(s)  # no residual vector stored twice
    docs2, s2 = pipeline.generations_and_store(model, tokenizer, prompts, cfg, layer=1, progress=False)
    out = capsys.readouterr().out
    assert "reusing 6 generations" in out and "reusing activations.npz" in out
    pd.testing.assert_frame_equal(docs, docs2)
    np.testing.assert_array_equal(s.acts, s2.acts)
    _, s3 = pipeline.generations_and_store(model, tokenizer, prompts, cfg, layer=2, progress=False)
    out = capsys.readouterr().out
    assert "reusing 6 generations" in out and "captured layer 2 from the saved texts" in out
    assert s3.layer == 2 and st.load_store().layer == 2
    pipeline.generations_and_store(
        model,
        tokenizer,
        prompts,
        GenerationConfig(samples_per_prompt=2, max_new_tokens=4, min_new_tokens=4, seed=1),
        layer=2,
        progress=False,
    )
    assert "the parameters changed" in capsys.readouterr().out


def test_a_store_with_nan_rows_is_refused_on_save_and_load(tmp_path):
    bad = small_store()
    bad.acts[3, 2] = np.nan
    with pytest.raises(ValueError, match="1 rows hold NaN or inf"):
        st.save_store(bad, tmp_path / "a.npz")
    # a NaN written behind the workbook's back (marker made to match) is still refused on load
    path = st.save_store(small_store(), tmp_path / "a.npz")
    arrays = io.load_npz(path)
    arrays["acts"][0, 0] = np.inf
    io.save_npz(path, **arrays)
    io.commit(tmp_path / "a.json", [path], {"layer": 1})
    with pytest.raises(ValueError, match="NaN or inf"):
        st.load_store(path)


@pytest.mark.parametrize("layer", [-31, -1, 30])
def test_impossible_layers_are_refused(tmp_path, layer):
    with pytest.raises(
        ValueError,
        match=rf"^refusing to save the store: layer {layer} is out of range: a model of 30 blocks has "
        r"layers 0\.\.29$",
    ):
        st.save_store(small_store(layer=layer), tmp_path / "a.npz", n_layers=30)
    if layer < 0:
        with pytest.raises(
            ValueError, match=rf"layer \(a block index\) = {layer} must be a whole number >= 0$"
        ):
            st.save_store(small_store(layer=layer), tmp_path / "a.npz")


@pytest.mark.parametrize("layer", [True, 1.5, "1", None])
def test_a_layer_that_is_not_a_whole_number_is_refused(tmp_path, layer):
    # issue 25: the store had its own rule (np.int64 yes, 1.0 no, a stored 1.5 loaded as 1): now validate's
    with pytest.raises(ValueError, match=r"^refusing to save the store: layer .* is not a whole number"):
        st.save_store(small_store(layer=layer), tmp_path / "a.npz", n_layers=30)


def test_an_integral_layer_is_stored_and_loaded_as_an_int(tmp_path):
    path = st.save_store(small_store(layer=np.float64(1.0)), tmp_path / "a.npz")
    layer = st.load_store(path).layer
    assert layer == 1 and type(layer) is int


def test_load_checks_the_layer_against_the_model(tmp_path):
    path = st.save_store(small_store(d=32, layer=7), tmp_path / "a.npz")  # saved without n_layers
    with pytest.raises(
        ValueError, match=r"^a.npz: layer 7 is out of range: a model of 4 blocks has layers 0\.\.3$"
    ):
        st.load_store(path, model=tiny_llama())


def test_a_split_pair_is_never_reused(tmp_path):
    """kill -9 between the .npz and its marker: the new .npz with the old marker is refused, not reused."""
    path = st.save_store(small_store(), tmp_path / "activations.npz", meta={"generations": "old"})
    marker = (tmp_path / "activations.json").read_bytes()
    st.save_store(small_store(n=12), path, meta={"generations": "new"})
    (tmp_path / "activations.json").write_bytes(marker)  # as if killed before the marker was replaced
    with pytest.raises(ValueError, match="does not match its marker"):
        st.load_store(path)
    assert st.store_meta(path) == {}
    (tmp_path / "activations.json").unlink()
    with pytest.raises(ValueError, match="does not match its marker"):
        st.load_store(path)


@pytest.mark.parametrize("damage", ["truncate", "empty", "garbage"])
def test_unreadable_npz_is_one_line(tmp_path, damage):
    path = st.save_store(small_store(), tmp_path / "a.npz")
    data = path.read_bytes()
    path.write_bytes({"truncate": data[: len(data) // 2], "empty": b"", "garbage": b"x" * len(data)}[damage])
    with pytest.raises(ValueError) as err:
        st.load_store(path)
    assert "\n" not in str(err.value) and "a.npz" in str(err.value) and "notebook 02" in str(err.value)
    # without a marker in the way, the reader itself still names the file in one line
    with pytest.raises(ValueError, match="a.npz is unreadable"):
        io.load_npz(path)


def test_store_key_covers_every_row(tmp_path):
    a = small_store(n=200)
    path = st.save_store(a, tmp_path / "a.npz")
    key = st.store_key(path)
    a.acts[150, 0] += 1.0  # a row far past the first 64 (the old key hashed rows 0-63 only)
    st.save_store(a, path)
    assert st.store_key(path) != key


@pytest.mark.parametrize("profile", ["full", "ci"])
def test_a_downstream_notebook_alone_rebuilds_scan_and_store(
    tmp_path, monkeypatch, tokenizer, capsys, profile
):
    """Notebook 03 (or 04-06) run alone: no layer_scan.json, no store. ensure_store scans the layers and
    builds the store at the profile's size (the ci profile once raised on min_new_tokens 32 > max 24, and a
    missing layer_scan.json stopped every downstream notebook)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from helpers.config import active_profile
    from helpers.data.prompts import THEMES
    from tests.conftest import VOCAB

    monkeypatch.setattr(config, "ROOT", tmp_path)
    monkeypatch.setenv("WORKBOOK_PROFILE", profile)
    (tmp_path / "data").mkdir()
    rows = [f'{i},{t},"{TEXTS[i % len(TEXTS)]}"' for i, t in enumerate(t for t in THEMES for _ in range(3))]
    (tmp_path / "data" / "prompts.csv").write_text("id,theme,prompt\n" + "\n".join(rows) + "\n")
    cfg = LlamaConfig(
        vocab_size=VOCAB,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        pad_token_id=0,
    )
    model = LlamaForCausalLM(cfg).eval()
    tokenizer.eos_token = "<eos>"
    store = pipeline.ensure_store(model, tokenizer)
    out = capsys.readouterr().out
    assert "layer_scan.json is missing: scanning" in out and "activations.npz is missing: rebuilding" in out
    assert config.paths().layer_scan.is_file() and len(store) > 0
    gen = active_profile().generation
    n_docs = 15 * gen.samples_per_prompt
    assert len(np.unique(store.doc_ids)) == n_docs
    assert st.load_store().layer == store.layer  # saved, with its marker
