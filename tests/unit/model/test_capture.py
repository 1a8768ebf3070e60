import numpy as np
import pytest
import torch

from helpers.model.blocks import get_blocks
from helpers.model.capture import capture_all_layers, capture_residual
from tests.conftest import TEXTS, make_tokenizer


def reference(model, tokenizer, text, layer):
    """hidden_states[L + 1] of one unpadded text (the residual stream after block L)."""
    enc = tokenizer(text, return_tensors="pt")
    with torch.inference_mode():
        out = model(**enc, output_hidden_states=True)
    return out.hidden_states[layer + 1][0].numpy()


@pytest.mark.parametrize("side", ["left", "right"])
@pytest.mark.parametrize("layer", [0, 1, 2])
def test_capture_equals_hidden_states_with_padding(tiny_model, side, layer):
    tok = make_tokenizer(side)
    cap = capture_residual(tiny_model, tok, TEXTS, layer, batch_size=4, progress=False)
    for doc, text in enumerate(TEXTS):
        rows = cap.doc_ids == doc
        want = reference(tiny_model, tok, text, layer)
        assert cap.acts[rows].shape == want.shape  # no padding row leaked in
        np.testing.assert_allclose(cap.acts[rows], want, atol=1e-4, rtol=1e-4)
        np.testing.assert_array_equal(cap.positions[rows], np.arange(len(want)))
        np.testing.assert_array_equal(cap.token_ids[rows], tok(text).input_ids)


def test_batch_size_does_not_change_capture(tiny_model, tokenizer):
    a = capture_residual(tiny_model, tokenizer, TEXTS, 1, batch_size=1, progress=False)
    b = capture_residual(tiny_model, tokenizer, TEXTS, 1, batch_size=3, progress=False)
    np.testing.assert_array_equal(a.doc_ids, b.doc_ids)
    np.testing.assert_allclose(a.acts, b.acts, atol=1e-5)


def test_blocks_after_layer_do_not_run(tiny_model, tokenizer):
    blocks = get_blocks(tiny_model)
    calls = [0] * len(blocks)
    handles = [
        b.register_forward_pre_hook(lambda m, a, i=i: calls.__setitem__(i, calls[i] + 1))
        for i, b in enumerate(blocks)
    ]
    try:
        capture_residual(tiny_model, tokenizer, TEXTS, 1, batch_size=2, progress=False)
    finally:
        for h in handles:
            h.remove()
    assert calls[:2] == [2, 2]  # two batches through blocks 0 and 1
    assert calls[2:] == [0] * (len(blocks) - 2)


def test_hooks_removed_after_capture(tiny_model, tokenizer):
    capture_residual(tiny_model, tokenizer, TEXTS, 0, progress=False)
    assert all(not b._forward_hooks for b in get_blocks(tiny_model))


@pytest.mark.parametrize("layer", [-1, 4, 99])
def test_layer_out_of_range_names_valid_range(tiny_model, tokenizer, layer):
    with pytest.raises(ValueError, match=r"layers 0\.\.3"):
        capture_residual(tiny_model, tokenizer, TEXTS, layer, progress=False)


def test_all_layers_match_single_layer(tiny_model, tokenizer):
    allc = capture_all_layers(tiny_model, tokenizer, TEXTS, batch_size=3, progress=False)
    assert allc.acts.shape[0] == len(get_blocks(tiny_model))
    for layer in range(allc.acts.shape[0]):
        one = capture_residual(tiny_model, tokenizer, TEXTS, layer, batch_size=2, progress=False)
        np.testing.assert_array_equal(one.doc_ids, allc.doc_ids)
        np.testing.assert_allclose(one.acts, allc.acts[layer], atol=1e-5)


def test_empty_text_is_refused(tiny_model, tokenizer):
    with pytest.raises(ValueError, match="non-empty"):
        capture_residual(tiny_model, tokenizer, ["the city", "  "], 0, progress=False)


def test_custom_doc_ids_label_rows(tiny_model, tokenizer):
    cap = capture_residual(tiny_model, tokenizer, TEXTS[:2], 0, doc_ids=[10, 7], progress=False)
    assert list(dict.fromkeys(cap.doc_ids.tolist())) == [10, 7]


def test_a_text_past_the_context_is_refused_even_with_a_larger_max_length(tiny_model, tokenizer):
    # issue 28: max_length above the model's context (64 tokens for the tiny models) let a longer text run
    # past it: llama silently, GPT-2 with a raw IndexError
    calls = []
    tiny_model.register_forward_pre_hook(lambda m, a: calls.append(1))
    texts = ["solar heat", " ".join(["rain"] * 65)]
    with pytest.raises(
        ValueError,
        match=r"^text 1 of 2 \(the model's context is 64 tokens\) is 65 tokens long; "
        r"the limit is 64: shorten it$",
    ):
        capture_residual(tiny_model, tokenizer, texts, 0, max_length=1000, progress=False)
    with pytest.raises(ValueError, match=r"^text 1 of 2 \(the model's context is 64"):
        capture_all_layers(tiny_model, tokenizer, texts, max_length=1000, progress=False)
    assert calls == []  # refused before any forward pass
    with pytest.raises(
        ValueError, match=r"^text 0 of 4 \(max_length = 4; 2 texts are over it\) is 5 tokens long"
    ):
        capture_residual(tiny_model, tokenizer, TEXTS, 0, max_length=4, progress=False)
    with pytest.raises(
        ValueError, match="batch_size = 0 must be a whole number >= 1"
    ):  # was ZeroDivisionError
        capture_residual(tiny_model, tokenizer, TEXTS, 0, batch_size=0, progress=False)
