import types

import pytest
import torch
from transformers import DynamicCache, MistralConfig

from helpers.model.kv_cache import BufferLayer, buffer_cache
from tests.conftest import VOCAB, tiny_neox


def _decode(model, cache, ids: torch.Tensor, steps: int) -> list[torch.Tensor]:
    """Logits of a prompt, then of ``steps`` greedy tokens fed one by one, with the samples
    repeated x2 after the prompt and the second row dropped halfway (as the generation loop does)."""
    out = model(input_ids=ids, past_key_values=cache, use_cache=True)
    cache, logits = out.past_key_values, out.logits[:, -1]
    cache.batch_repeat_interleave(2)
    logits = logits.repeat_interleave(2, 0)
    seen = [logits]
    for t in range(steps):
        if t == steps // 2:
            keep = torch.tensor([0, 2])
            cache.batch_select_indices(keep)
            logits = logits[keep]
        out = model(input_ids=logits.argmax(-1, keepdim=True), past_key_values=cache, use_cache=True)
        cache, logits = out.past_key_values, out.logits[:, -1]
        seen.append(logits)
    return seen


@torch.inference_mode()
def test_buffer_cache_decodes_as_the_models_own_cache(tiny_model):
    ids = torch.randint(3, VOCAB, (2, 5))
    cache = buffer_cache(tiny_model, 5 + 6)
    assert cache is not None and all(isinstance(layer, BufferLayer) for layer in cache.layers)
    ours = _decode(tiny_model, cache, ids, 6)
    theirs = _decode(tiny_model, DynamicCache(config=tiny_model.config), ids, 6)
    for a, b in zip(ours, theirs, strict=True):
        torch.testing.assert_close(a, b)
    assert cache.get_seq_length() == 11 and cache.layers[0].keys.shape[0] == 2


@torch.inference_mode()
def test_a_full_buffer_refuses_more_tokens(tiny_model):
    cache = buffer_cache(tiny_model, 4)
    tiny_model(input_ids=torch.randint(3, VOCAB, (1, 4)), past_key_values=cache, use_cache=True)
    with pytest.raises(RuntimeError, match="holds 4 tokens; 5 were written"):
        tiny_model(input_ids=torch.tensor([[3]]), past_key_values=cache, use_cache=True)


def test_other_caches_are_left_to_the_model():
    # sliding-window layers (and linear-attention, shared-KV ...) keep the model's own cache
    sliding = MistralConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, sliding_window=8)
    assert buffer_cache(types.SimpleNamespace(config=sliding), 16) is None
    assert buffer_cache(tiny_neox(), 16) is not None  # another full-attention architecture
