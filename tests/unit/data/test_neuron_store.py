"""Neurons lined up with the activation store: rebuilt documents re-fed, checked by the residual."""

import copy

import numpy as np
import pandas as pd
import pytest
import torch

from helpers import config
from helpers.config import GenerationConfig
from helpers.data import pipeline
from helpers.data.neuron_store import document_tokens, first_tokens_of, store_neurons, store_sequences
from helpers.data.store import Store
from tests.conftest import TEXTS, tiny_llama


@pytest.fixture
def made(tmp_path, monkeypatch, tokenizer):
    monkeypatch.setattr(config, "ROOT", tmp_path)
    monkeypatch.setenv("WORKBOOK_PROFILE", "full")
    model = tiny_llama()
    prompts = pd.DataFrame({"id": [0, 1, 2], "theme": ["a", "b", "a"], "prompt": TEXTS[:3]})
    cfg = GenerationConfig(samples_per_prompt=2, max_new_tokens=4, min_new_tokens=4)
    docs, store = pipeline.generations_and_store(model, tokenizer, prompts, cfg, layer=1, progress=False)
    return model, docs, store


def test_neurons_line_up_with_the_store(made, tokenizer):
    model, docs, store = made
    out = store_neurons(model, tokenizer, store, docs, batch_size=2, progress=False)
    assert out.neurons.shape == (len(store), 64) and out.layer == 1
    assert out.resid_error < 1e-4  # the residual re-captured with them equals the store's


def test_sequences_rebuild_later_samples_from_their_prompt(made, tokenizer):
    _, docs, store = made
    ids, seqs, keeps = store_sequences(store, docs, first_tokens_of(docs, tokenizer))
    by = docs.set_index("doc_id")
    for d, s, k in zip(ids, seqs, keeps, strict=True):
        np.testing.assert_array_equal(s[k], store.token_ids[store.doc_ids == d])
        n_prompt = by.loc[d, "prompt_tokens"]
        assert s[:n_prompt].tolist() == tokenizer(TEXTS[by.loc[d, "prompt_id"]]).input_ids
        assert not k[0] and (by.loc[d, "sample"] == 0 or not k[1:n_prompt].any())


def test_document_tokens_put_each_stored_row_at_its_own_position(made, tokenizer):
    """06's ablation read a later sample's rows as if they started at position 1: the token at a stored
    position must be that row's token, for the first and the later samples alike."""
    _, docs, store = made
    full = document_tokens(store, docs, tokenizer)
    assert set(full) == set(np.unique(store.doc_ids).tolist())
    for row in range(len(store)):
        assert full[int(store.doc_ids[row])][int(store.positions[row])] == store.token_ids[row]
    later = docs.loc[docs["sample"] > 0, "doc_id"].iloc[0]
    naive = store.token_ids[store.doc_ids == later]
    pos = store.positions[store.doc_ids == later]
    assert pos[0] > 1 and len(naive) < pos[-1] + 1, "the naive [first] + rows is shorter than the text"


def test_a_store_from_other_documents_is_refused(made, tokenizer):
    model, docs, store = made
    other = Store(store.acts + 1.0, store.token_ids, store.doc_ids, store.positions, store.layer, store.model)
    with pytest.raises(ValueError, match="re-run notebook 02"):
        store_neurons(model, tokenizer, other, docs, progress=False)
    keep = ~((store.doc_ids == 0) & (store.positions == 2))  # a prompt token nobody else stores
    gap = Store(
        store.acts[keep], store.token_ids[keep], store.doc_ids[keep], store.positions[keep], 1, "tiny"
    )
    with pytest.raises(ValueError, match="position 2"):
        store_neurons(model, tokenizer, gap, docs, progress=False)


def test_store_residual_gives_the_store_rows_of_another_model(made, tokenizer):
    from helpers.data.neuron_store import store_residual
    from helpers.model.random_init import random_like

    model, docs, store = made
    same = store_residual(model, tokenizer, store, docs, batch_size=2, progress=False)
    assert np.array_equal(same.token_ids, store.token_ids) and np.array_equal(same.positions, store.positions)
    assert np.allclose(same.acts, store.acts, atol=1e-4 * float(np.abs(store.acts).max()))
    other = store_residual(random_like(model, seed=3), tokenizer, store, docs, progress=False)
    assert np.array_equal(other.doc_ids, store.doc_ids) and not np.allclose(other.acts, store.acts)


def test_neurons_are_saved_and_reused_only_for_the_same_store_and_model(made, tokenizer, monkeypatch):
    """Notebooks 04 and 07 read the same neurons: the second reads data/neurons.npz instead of ~40 s."""
    from helpers.data import neuron_store as N

    model, docs, store = made
    first = store_neurons(model, tokenizer, store, docs, progress=False)
    path = config.paths().data / "neurons.npz"
    assert path.is_file()
    real = N._capture_neurons
    calls = []
    monkeypatch.setattr(N, "_capture_neurons", lambda *a: calls.append(1) or real(*a))
    again = store_neurons(model, tokenizer, store, docs, progress=False)
    assert calls == [] and np.array_equal(again.neurons, first.neurons)
    assert again.resid_error == first.resid_error
    other = copy.deepcopy(model)  # one weight edited: not served from the file (and refused here)
    with torch.no_grad():
        other.model.layers[0].mlp.up_proj.weight[-1, -1] += 1.0
    with pytest.raises(ValueError, match="re-run notebook 02"):
        store_neurons(other, tokenizer, store, docs, progress=False)
    assert calls == [1]
    path.write_bytes(b"not a zip")  # a corrupt file (a crash mid-copy): captured again and replaced
    fixed = store_neurons(model, tokenizer, store, docs, progress=False)
    assert calls == [1, 1] and np.array_equal(fixed.neurons, first.neurons)
    assert store_neurons(model, tokenizer, store, docs, progress=False, cache=None) is not None
    assert calls == [1, 1, 1]  # cache=None never reads the file
