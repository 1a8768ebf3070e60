"""Find a model's transformer blocks generically (llama, GPT-2, GPT-NeoX ...) and validate layers."""

from __future__ import annotations

import inspect

from torch import nn

from helpers.validate import as_index


def get_blocks(model: nn.Module) -> nn.ModuleList:
    """The list of transformer blocks, found generically.

    Looks for the ``nn.ModuleList`` whose length is the config's number of layers
    (``model.model.layers`` in llama, ``model.transformer.h`` in GPT-2,
    ``model.gpt_neox.layers`` in GPT-NeoX ...), preferring the shallowest one.
    """
    cfg = getattr(model, "config", None)
    n_layers = None
    for key in ("num_hidden_layers", "n_layer", "num_layers"):
        n_layers = getattr(cfg, key, None) if cfg is not None else None
        if n_layers:
            break
    candidates = [
        (name.count("."), name, module)
        for name, module in model.named_modules()
        if isinstance(module, nn.ModuleList)
        and len(module) > 0
        and (n_layers is None or len(module) == n_layers)
    ]
    if not candidates:
        raise ValueError(
            f"cannot find the transformer blocks of {type(model).__name__}: no nn.ModuleList "
            f"of {n_layers} layers; pass a Hugging Face causal LM"
        )
    candidates.sort(key=lambda c: (c[0], -len(c[2])))
    return candidates[0][2]


def n_layers(model: nn.Module) -> int:
    """Number of transformer blocks."""
    return len(get_blocks(model))


def validate_layer(model: nn.Module, layer: object) -> int:
    """``layer`` as an int if it names a block of ``model``; else one ``ValueError`` line."""
    return as_index(layer, "layer", n_layers(model), "this model")


def accepts(model: nn.Module, name: str) -> bool:
    """Whether ``model.forward`` takes the keyword ``name`` (position_ids, logits_to_keep ...)."""
    return name in inspect.signature(model.forward).parameters
