"""A key/value cache written into buffers allocated once, for the generation loop.

transformers' default ``DynamicCache`` grows every layer by ``torch.cat`` at each decoding step: a
copy of the whole cache per new token. :class:`BufferLayer` is a cache layer of our own on the
public ``transformers.CacheLayerMixin`` API: it allocates room for every token it will hold on its
first update, writes each step's keys and values into the next columns and hands the model views
of the columns in use, so a step copies one column. ``transformers.StaticCache`` also preallocates,
but its layers always present their full length (attention then runs over every empty column, and
the mask is built that wide) and it cannot drop finished rows from the batch; this one can.

:func:`buffer_cache` builds one for a model whose own cache would be all plain full-attention
layers, and returns None for any other (sliding-window, linear-attention, shared-KV ...): those
keep the cache the model makes itself.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import Cache, CacheLayerMixin, DynamicCache, DynamicLayer


class BufferLayer(CacheLayerMixin):
    """One layer's keys and values [batch, heads, capacity, head_dim]; ``keys``/``values`` are
    views of the ``length`` columns written so far."""

    is_sliding = False

    def __init__(self, capacity: int):
        super().__init__()
        self.capacity = capacity
        self.length = 0

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        self.dtype, self.device = key_states.dtype, key_states.device
        self._k = key_states.new_empty(*key_states.shape[:-2], self.capacity, key_states.shape[-1])
        self._v = value_states.new_empty(*value_states.shape[:-2], self.capacity, value_states.shape[-1])
        self.is_initialized = True
        self._views()

    def _views(self) -> None:
        self.keys, self.values = self._k[..., : self.length, :], self._v[..., : self.length, :]

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        end = self.length + key_states.shape[-2]
        if end > self.capacity:
            raise RuntimeError(f"the KV cache holds {self.capacity} tokens; {end} were written")
        self._k[..., self.length : end, :] = key_states
        self._v[..., self.length : end, :] = value_states
        self.length = end
        self._views()
        return self.keys, self.values

    def get_mask_sizes(self, query_length: int) -> tuple[int, int]:
        return self.length + query_length, 0

    def get_seq_length(self) -> int:
        return self.length

    def get_max_length(self) -> int:
        return self.capacity

    def reset(self) -> None:
        self.length = 0
        if self.is_initialized:
            self._views()

    def batch_repeat_interleave(self, repeats: int) -> None:
        if self.is_initialized:
            self._k = self._k.repeat_interleave(repeats, dim=0)
            self._v = self._v.repeat_interleave(repeats, dim=0)
            self._views()

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        """Keep the batch rows ``indices`` (a copy of their written columns only)."""
        if self.is_initialized:
            self._k = _select_rows(self._k, indices, self.length)
            self._v = _select_rows(self._v, indices, self.length)
            self._views()

    def reorder_cache(self, beam_idx: torch.LongTensor) -> None:
        self.batch_select_indices(beam_idx)


def _select_rows(buf: torch.Tensor, indices: torch.Tensor, length: int) -> torch.Tensor:
    out = buf.new_empty(len(indices), *buf.shape[1:])
    out[..., :length, :] = buf[..., :length, :].index_select(0, indices.to(buf.device))
    return out


def buffer_cache(model: nn.Module, capacity: int) -> Cache | None:
    """A cache of :class:`BufferLayer` with room for ``capacity`` tokens per row, one layer per layer
    of the cache the model would make itself, if those are all plain ``DynamicLayer`` (full
    attention); None otherwise."""
    try:
        layers = DynamicCache(config=model.config).layers
    except (AttributeError, KeyError, TypeError, ValueError):
        return None
    if not layers or any(type(layer) is not DynamicLayer for layer in layers):
        return None
    return Cache(layers=[BufferLayer(capacity) for _ in layers])
