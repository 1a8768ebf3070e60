"""MLP neuron capture: the hidden activations fed to the MLP's output projection, padding-free."""

import numpy as np
import pytest
import torch

from helpers.model.blocks import get_blocks
from helpers.model.neurons import capture_neurons, mlp_out_proj, neuron_directions
from tests.conftest import TEXTS


def reference(model, ids, layer):
    """Neurons and residual after block ``layer`` of one unpadded sequence."""
    got = {}
    h = mlp_out_proj(model, layer).register_forward_pre_hook(lambda m, a: got.__setitem__("n", a[0]))
    try:
        with torch.inference_mode():
            out = model(input_ids=torch.as_tensor(ids)[None], output_hidden_states=True)
    finally:
        h.remove()
    return got["n"][0].numpy(), out.hidden_states[layer + 1][0].numpy()


@pytest.mark.parametrize("layer", [0, 2])
def test_capture_equals_unpadded_forward(tiny_model, tokenizer, layer):
    seqs = [np.array(tokenizer(t).input_ids) for t in TEXTS]
    keep = [np.arange(len(s)) % 2 == 1 for s in seqs]  # every other position
    hooks = [len(b._forward_hooks) for b in get_blocks(tiny_model)]
    cap = capture_neurons(tiny_model, seqs, layer, keep=keep, batch_size=3, progress=False)
    assert [len(b._forward_hooks) for b in get_blocks(tiny_model)] == hooks  # hooks removed
    assert not mlp_out_proj(tiny_model, layer)._forward_pre_hooks
    d_mlp = 64 if tiny_model.config.model_type == "llama" else 128  # GPT-2: 4 x d_model
    assert cap.neurons.shape == (sum(k.sum() for k in keep), d_mlp)
    for i, s in enumerate(seqs):
        neu, res = reference(tiny_model, s, layer)
        rows = cap.seq == i
        np.testing.assert_allclose(cap.neurons[rows], neu[keep[i]], atol=1e-4, rtol=1e-4)
        np.testing.assert_allclose(cap.resid[rows], res[keep[i]], atol=1e-4, rtol=1e-4)
        np.testing.assert_array_equal(cap.positions[rows], np.flatnonzero(keep[i]))
        np.testing.assert_array_equal(cap.token_ids[rows], s[keep[i]])


def test_directions_are_what_each_neuron_writes(tiny_model, tokenizer):
    proj = mlp_out_proj(tiny_model, 1)
    got = {}
    h = proj.register_forward_hook(lambda m, a, out: got.update(x=a[0], y=out))
    try:
        with torch.inference_mode():
            tiny_model(input_ids=torch.as_tensor(tokenizer(TEXTS[0]).input_ids)[None])
    finally:
        h.remove()
    W = neuron_directions(tiny_model, 1)
    assert W.shape == (64 if tiny_model.config.model_type == "llama" else 128, 32)
    bias = getattr(proj, "bias", None)
    want = got["x"][0] @ W + (bias if bias is not None else 0)
    torch.testing.assert_close(got["y"][0], want, atol=1e-4, rtol=1e-4)


def test_bad_input_is_one_line(tiny_model):
    with pytest.raises(ValueError, match="non-empty"):
        capture_neurons(tiny_model, [np.array([], int)], 0, progress=False)
    with pytest.raises(ValueError, match="one bool mask"):
        capture_neurons(tiny_model, [np.array([3, 4])], 0, keep=[np.ones(3, bool)], progress=False)
    with pytest.raises(ValueError, match="layer"):
        capture_neurons(tiny_model, [np.array([3, 4])], 9, progress=False)
