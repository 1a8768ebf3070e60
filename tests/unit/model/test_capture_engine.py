"""The one capture engine (issue 25): every site against an unpadded forward pass, and the rows of the
old capture loops (residual from texts, neurons from token ids: copied below as they were at 5e12ad9)
returned unchanged by the wrappers that replaced them."""

import numpy as np
import pytest
import torch

from helpers.model.blocks import accepts, block_mlp, get_blocks, mlp_out_proj
from helpers.model.capture import (
    Site,
    capture,
    capture_all_layers,
    capture_residual,
    length_sorted_batches,
    model_inputs,
)
from helpers.model.hooks import run_until
from helpers.model.neurons import capture_neurons
from tests.conftest import TEXTS, make_tokenizer

# --- the two loops the engine replaced, frozen -------------------------------------------------------


def old_capture_residual(model, tokenizer, texts, layers, batch_size):
    """helpers/model/capture.py::_capture at 5e12ad9 (tokenizer-padded batches, rows sorted at the end)."""
    lengths = [len(ids) for ids in tokenizer(list(texts)).input_ids]
    order = np.argsort(lengths, kind="stable")
    parts, got = [], {}
    for start in range(0, len(texts), batch_size):
        idx = order[start : start + batch_size]
        enc = tokenizer([texts[i] for i in idx], return_tensors="pt", padding=True)
        mask = enc["attention_mask"]
        inputs = {"input_ids": enc["input_ids"], "attention_mask": mask, "use_cache": False}
        if accepts(model, "position_ids"):
            inputs["position_ids"] = (mask.long().cumsum(-1) - 1).clamp(min=0)
        run_until(
            model, max(layers), inputs, record={i: (lambda h, i=i: got.__setitem__(i, h)) for i in layers}
        )
        m = mask.bool()
        acts = np.stack([got[i][m].float().numpy() for i in layers])
        doc = torch.as_tensor(idx).unsqueeze(1).expand_as(m)
        pos = mask.long().cumsum(-1) - 1
        parts.append((acts, enc["input_ids"][m].numpy(), doc[m].numpy(), pos[m].numpy()))
    acts = np.concatenate([p[0] for p in parts], axis=1)
    tok, doc, pos = (np.concatenate([p[j] for p in parts]).astype(np.int32) for j in (1, 2, 3))
    order = np.lexsort((pos, doc))
    return acts[:, order], tok[order], doc[order], pos[order]


def old_capture_neurons(model, seqs, layer, keeps, batch_size):
    """helpers/model/neurons.py::capture_neurons at 5e12ad9 (its own right padding and raw pre-hook)."""
    order = np.argsort([len(s) for s in seqs], kind="stable")
    got, parts = {}, {}
    handle = mlp_out_proj(model, layer).register_forward_pre_hook(lambda _m, a: got.__setitem__("n", a[0]))
    try:
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            width = max(len(seqs[i]) for i in idx)
            ids = torch.zeros(len(idx), width, dtype=torch.long)
            mask = torch.zeros(len(idx), width, dtype=torch.long)
            for r, i in enumerate(idx):
                ids[r, : len(seqs[i])] = torch.from_numpy(seqs[i])
                mask[r, : len(seqs[i])] = 1
            inputs = {"input_ids": ids, "attention_mask": mask, "use_cache": False}
            inputs["position_ids"] = (mask.cumsum(-1) - 1).clamp(min=0)
            run_until(model, layer, inputs, record={layer: lambda h: got.__setitem__("r", h)})
            neu, res = got["n"].float().numpy(), got["r"].float().numpy()
            for r, i in enumerate(idx):
                k = np.flatnonzero(keeps[i])
                parts[int(i)] = (neu[r, k], res[r, k])
    finally:
        handle.remove()
    return np.concatenate([parts[i][0] for i in range(len(seqs))]), np.concatenate(
        [parts[i][1] for i in range(len(seqs))]
    )


MORE = [*TEXTS, "rain", "the news of the team and the game", "water light sound tree", "a law"]


# --- the wrappers return the old rows ----------------------------------------------------------------


@pytest.mark.parametrize("batch_size", [1, 3])
def test_residual_rows_are_the_old_rows(tiny_model, batch_size):
    tok = make_tokenizer("right")  # the side SmolLM2's tokenizer pads: bit for bit
    acts, tokens, docs, pos = old_capture_residual(tiny_model, tok, MORE, [0, 2], batch_size)
    for j, layer in enumerate([0, 2]):
        cap = capture_residual(tiny_model, tok, MORE, layer, batch_size=batch_size, progress=False)
        np.testing.assert_array_equal(cap.acts, acts[j])
        for got, want in ((cap.token_ids, tokens), (cap.doc_ids, docs), (cap.positions, pos)):
            np.testing.assert_array_equal(got, want)
            assert got.dtype == np.int32
    allc = capture_all_layers(tiny_model, tok, MORE, batch_size=batch_size, progress=False)
    np.testing.assert_array_equal(allc.acts[[0, 2]], acts)


def test_left_padding_tokenizer_gives_the_same_rows(tiny_model):
    # the old loop padded on the tokenizer's side; the engine always pads right: float rounding only
    tok = make_tokenizer("left")
    acts, tokens, _, pos = old_capture_residual(tiny_model, tok, MORE, [1], 3)
    cap = capture_residual(tiny_model, tok, MORE, 1, batch_size=3, progress=False)
    np.testing.assert_allclose(cap.acts, acts[0], atol=1e-5, rtol=1e-5)
    np.testing.assert_array_equal(cap.token_ids, tokens)
    np.testing.assert_array_equal(cap.positions, pos)


@pytest.mark.parametrize("layer", [0, 2])
def test_neuron_rows_are_the_old_rows(tiny_model, tokenizer, layer):
    seqs = [np.array(tokenizer(t).input_ids) for t in MORE]
    keeps = [np.arange(len(s)) % 3 != 1 for s in seqs]
    neu, res = old_capture_neurons(tiny_model, seqs, layer, keeps, 3)
    cap = capture_neurons(tiny_model, seqs, layer, keep=keeps, batch_size=3, progress=False)
    np.testing.assert_array_equal(cap.neurons, neu)
    np.testing.assert_array_equal(cap.resid, res)
    np.testing.assert_array_equal(cap.seq, np.repeat(np.arange(len(seqs)), [k.sum() for k in keeps]))
    assert cap.seq.dtype == cap.positions.dtype == cap.token_ids.dtype == np.int32


# --- the engine ----------------------------------------------------------------------------------------


def unpadded(model, ids, layer):
    """mlp_in, neurons and resid of block ``layer`` for one unpadded sequence."""
    got = {}
    hooks = [
        block_mlp(model, layer).register_forward_pre_hook(lambda m, a: got.__setitem__("mlp_in", a[0])),
        mlp_out_proj(model, layer).register_forward_pre_hook(lambda m, a: got.__setitem__("neurons", a[0])),
    ]
    try:
        with torch.inference_mode():
            out = model(input_ids=torch.as_tensor(ids)[None], output_hidden_states=True)
    finally:
        for h in hooks:
            h.remove()
    return {
        "mlp_in": got["mlp_in"][0].numpy(),
        "neurons": got["neurons"][0].numpy(),
        "resid": out.hidden_states[layer + 1][0].numpy(),
    }


def test_every_site_from_texts_or_ids_equals_an_unpadded_forward(tiny_model, tokenizer):
    sites = [Site("resid", 2), Site("mlp_in", 1), Site("neurons", 0), Site("resid", 0)]
    seqs = [np.array(tokenizer(t).input_ids) for t in MORE]
    by_text = capture(tiny_model, sites, texts=MORE, tokenizer=tokenizer, batch_size=3, progress=False)
    by_ids = capture(
        tiny_model, sites, token_ids=seqs, doc_ids=np.arange(len(seqs)) + 100, batch_size=3, progress=False
    )
    for site in sites:
        np.testing.assert_array_equal(by_text[site], by_ids[site])
    np.testing.assert_array_equal(by_ids.doc_ids, by_text.doc_ids + 100)
    for doc, s in enumerate(seqs):
        want = {k: unpadded(tiny_model, s, layer) for k, layer in {"r2": 2, "l1": 1, "l0": 0}.items()}
        rows = by_text.doc_ids == doc
        np.testing.assert_array_equal(by_text.positions[rows], np.arange(len(s)))
        np.testing.assert_array_equal(by_text.token_ids[rows], s)
        for site, ref in zip(
            sites,
            (want["r2"]["resid"], want["l1"]["mlp_in"], want["l0"]["neurons"], want["l0"]["resid"]),
            strict=True,
        ):
            np.testing.assert_allclose(by_text[site][rows], ref, atol=1e-4, rtol=1e-4)
    d_mlp = 64 if tiny_model.config.model_type == "llama" else 128  # GPT-2: 4 x d_model
    assert [by_text[s].shape[1] for s in sites] == [32, 32, d_mlp, 32]


def test_stops_after_the_deepest_site_and_removes_every_hook(tiny_model, tokenizer):
    blocks = get_blocks(tiny_model)
    calls = [0] * len(blocks)
    handles = [
        b.register_forward_pre_hook(lambda m, a, i=i: calls.__setitem__(i, calls[i] + 1))
        for i, b in enumerate(blocks)
    ]
    try:
        capture(
            tiny_model,
            [Site("neurons", 1), Site("mlp_in", 0)],
            texts=TEXTS,
            tokenizer=tokenizer,
            batch_size=2,
            progress=False,
        )
    finally:
        for h in handles:
            h.remove()
    assert calls == [2, 2, 0, 0]  # two batches through blocks 0 and 1, none further
    for b in blocks:
        assert not b._forward_hooks and not b._forward_pre_hooks
        assert all(not m._forward_pre_hooks and not m._forward_hooks for m in b.modules())


def test_dtype_and_keep(tiny_model, tokenizer):
    keep = [np.arange(len(tokenizer(t).input_ids)) >= 1 for t in TEXTS]  # drop position 0
    cap = capture(
        tiny_model,
        [Site("resid", 1)],
        texts=TEXTS,
        tokenizer=tokenizer,
        keep=keep,
        dtype=np.float16,
        progress=False,
    )
    full = capture(tiny_model, [Site("resid", 1)], texts=TEXTS, tokenizer=tokenizer, progress=False)
    assert cap[Site("resid", 1)].dtype == np.float16 and cap.positions.min() == 1
    np.testing.assert_array_equal(
        cap[Site("resid", 1)], full[Site("resid", 1)][full.positions >= 1].astype(np.float16)
    )


def test_bad_input_is_one_line(tiny_model, tokenizer):
    with pytest.raises(ValueError, match="site kind 'attn' is not one of resid, mlp_in, neurons"):
        Site("attn", 0)
    with pytest.raises(ValueError, match=r"layer 4 is out of range: this model has layers 0\.\.3"):
        capture(tiny_model, [Site("resid", 4)], texts=TEXTS, tokenizer=tokenizer)
    with pytest.raises(ValueError, match="pass a list of sites"):
        capture(tiny_model, [], texts=TEXTS, tokenizer=tokenizer)
    with pytest.raises(ValueError, match="either texts"):
        capture(tiny_model, [Site("resid", 0)], texts=TEXTS, token_ids=[np.array([3])], tokenizer=tokenizer)
    with pytest.raises(ValueError, match="pass tokenizer="):
        capture(tiny_model, [Site("resid", 0)], texts=TEXTS)
    with pytest.raises(
        ValueError, match=r"^token id 999 is out of range: the model's vocabulary has token ids"
    ):
        capture(tiny_model, [Site("resid", 0)], token_ids=[np.array([3, 999])])
    with pytest.raises(ValueError, match=r"^token id 3\.5 is not a whole number"):
        capture(tiny_model, [Site("resid", 0)], token_ids=[np.array([3, 3.5])])
    with pytest.raises(
        ValueError, match=r"^text 0 of 1 \(the model's context is 64 tokens\) is 65 tokens long"
    ):
        capture(tiny_model, [Site("resid", 0)], token_ids=[np.full(65, 3)])
    with pytest.raises(ValueError, match=r"^text 1 of 2 \(max_length = 4\) is 5 tokens long"):
        capture(tiny_model, [Site("resid", 0)], token_ids=[np.full(3, 3), np.full(5, 3)], max_length=4)


def test_batch_helpers_still_serve_their_callers(tiny_model, tokenizer):
    # bench.py's full forward pass runs the engine's batches through model_inputs
    seen = []
    for idx, enc in length_sorted_batches(tokenizer, TEXTS, 3, 256):
        inputs = model_inputs(tiny_model, enc)
        assert (inputs["attention_mask"][:, 0] == 1).all()  # right-padded
        seen.extend(idx.tolist())
    assert sorted(seen) == list(range(len(TEXTS)))
