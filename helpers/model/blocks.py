"""Find a model's transformer blocks generically (llama, GPT-2, GPT-NeoX ...), their MLPs and their
MLPs' output projections, and validate layers."""

from __future__ import annotations

import inspect

from torch import nn

from helpers.validate import as_index

# the MLP's output projection, whose input is the neuron activations, in the architectures we meet
_OUT_PROJ = ("down_proj", "c_proj", "dense_4h_to_h", "fc2")


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


def block_mlp(model: nn.Module, layer: int) -> nn.Module:
    """Block ``layer``'s MLP (``mlp`` in llama, GPT-2 and GPT-NeoX), or one ``ValueError`` line."""
    layer = validate_layer(model, layer)
    mlp = getattr(get_blocks(model)[layer], "mlp", None)
    if not isinstance(mlp, nn.Module):
        raise ValueError(
            f"block {layer} of {type(model).__name__} has no submodule named mlp; pass a llama, GPT-2 or "
            "GPT-NeoX model"
        )
    return mlp


def mlp_out_proj(model: nn.Module, layer: int) -> nn.Module:
    """Block ``layer``'s MLP output projection (llama ``mlp.down_proj``, GPT-2 ``mlp.c_proj``,
    GPT-NeoX ``mlp.dense_4h_to_h``): its input is the block's neuron activations."""
    mlp = block_mlp(model, layer)
    for name in _OUT_PROJ:
        proj = getattr(mlp, name, None)
        if isinstance(proj, nn.Module) and hasattr(proj, "weight"):
            return proj
    raise ValueError(
        f"block {layer} of {type(model).__name__} has no MLP output projection named "
        f"{' / '.join(_OUT_PROJ)}; pass a llama, GPT-2 or GPT-NeoX model"
    )
