"""MLP neurons: capture their activations (with the residual stream after the same block) and read
the direction each one writes into the residual stream.

An MLP block computes ``down_proj(act_fn(gate_proj(x)) * up_proj(x))`` (llama; GPT-2:
``c_proj(act(c_fc(x)))``). Its **neurons** are the ``d_mlp`` numbers fed to the output projection
(1,536 per token in SmolLM2-135M), and neuron ``j`` adds ``a_j`` times column ``j`` of the output
projection's weight to the residual stream: that column is what the neuron "writes", the analogue
of an SAE feature's decoder row.

:func:`capture_neurons` feeds exact token ids (never re-tokenised text), so its rows can be lined
up with rows captured earlier from the same ids (the activation store): tokenising decoded text
again can split words differently from the tokens the model generated.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from helpers.model.blocks import accepts, get_blocks, validate_layer
from helpers.model.hooks import run_until
from helpers.progress import progress_bar

# the MLP's output projection, whose input is the neuron activations, in the architectures we meet
_OUT_PROJ = ("down_proj", "c_proj", "dense_4h_to_h", "fc2")


def mlp_out_proj(model: nn.Module, layer: int) -> nn.Module:
    """Block ``layer``'s MLP output projection (llama ``mlp.down_proj``, GPT-2 ``mlp.c_proj``,
    GPT-NeoX ``mlp.dense_4h_to_h``): its input is the block's neuron activations."""
    layer = validate_layer(model, layer)
    mlp = getattr(get_blocks(model)[layer], "mlp", None)
    for name in _OUT_PROJ:
        proj = getattr(mlp, name, None)
        if isinstance(proj, nn.Module) and hasattr(proj, "weight"):
            return proj
    raise ValueError(
        f"block {layer} of {type(model).__name__} has no MLP output projection named "
        f"{' / '.join(_OUT_PROJ)}; pass a llama, GPT-2 or GPT-NeoX model"
    )


@torch.no_grad()
def neuron_directions(model: nn.Module, layer: int) -> torch.Tensor:
    """``[d_mlp, d_model]``: row ``j`` is what neuron ``j`` of block ``layer`` writes into the
    residual stream per unit of activation (column ``j`` of ``nn.Linear``'s ``[d_model, d_mlp]``
    weight; GPT-2's ``Conv1D`` stores it ``[d_mlp, d_model]`` already)."""
    proj = mlp_out_proj(model, layer)
    W = proj.weight.detach().float()
    return W.T.contiguous() if isinstance(proj, nn.Linear) else W.contiguous()


@dataclass
class NeuronCapture:
    """One row per kept token: ``neurons`` [n, d_mlp] (the MLP's hidden activations) and ``resid``
    [n, d_model] (the residual stream after the same block), with each row's sequence (``seq``,
    an index into the input sequences), ``positions`` and ``token_ids``. Rows come grouped by
    sequence in input order, then by position."""

    neurons: np.ndarray
    resid: np.ndarray
    seq: np.ndarray
    positions: np.ndarray
    token_ids: np.ndarray

    def __len__(self) -> int:
        return len(self.token_ids)


def capture_neurons(
    model: nn.Module,
    sequences: Sequence[np.ndarray],
    layer: int,
    *,
    keep: Sequence[np.ndarray] | None = None,
    batch_size: int = 16,
    dtype: type = np.float32,
    progress: bool = True,
) -> NeuronCapture:
    """The MLP neurons of block ``layer`` and the residual stream after it, for token-id
    ``sequences`` (each a 1-D array of ids, position 0 first). ``keep[i]`` (a bool mask over
    sequence ``i``'s positions) says which rows to return; default all. Runs blocks ``0..layer``
    only, sequences sorted by length into right-padded batches (padding never returned)."""
    layer = validate_layer(model, layer)
    seqs = [np.asarray(s, dtype=np.int64) for s in sequences]
    if not seqs or any(s.ndim != 1 or len(s) == 0 for s in seqs):
        raise ValueError("pass one non-empty 1-D array of token ids per sequence")
    keeps = [np.ones(len(s), bool) for s in seqs] if keep is None else [np.asarray(k, bool) for k in keep]
    if len(keeps) != len(seqs) or any(k.shape != s.shape for k, s in zip(keeps, seqs, strict=True)):
        raise ValueError("keep must hold one bool mask per sequence, as long as the sequence")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    proj = mlp_out_proj(model, layer)
    device = next(model.parameters()).device
    order = np.argsort([len(s) for s in seqs], kind="stable")
    got: dict[str, torch.Tensor] = {}
    handle = proj.register_forward_pre_hook(lambda _m, args: got.__setitem__("neurons", args[0]))
    parts: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    try:
        batches = [order[s : s + batch_size] for s in range(0, len(order), batch_size)]
        for idx in progress_bar(
            batches, desc=f"neurons of block {layer}", disable=not progress or len(batches) < 4
        ):
            width = max(len(seqs[i]) for i in idx)
            ids = torch.zeros(len(idx), width, dtype=torch.long)
            mask = torch.zeros(len(idx), width, dtype=torch.long)
            for r, i in enumerate(idx):
                ids[r, : len(seqs[i])] = torch.from_numpy(seqs[i])
                mask[r, : len(seqs[i])] = 1
            inputs = {"input_ids": ids.to(device), "attention_mask": mask.to(device), "use_cache": False}
            if accepts(model, "position_ids"):
                inputs["position_ids"] = (mask.cumsum(-1) - 1).clamp(min=0).to(device)
            run_until(model, layer, inputs, record={layer: lambda h: got.__setitem__("resid", h)})
            neu = got["neurons"].float().cpu().numpy()
            res = got["resid"].float().cpu().numpy()
            for r, i in enumerate(idx):
                k = np.flatnonzero(keeps[i])
                parts[int(i)] = (neu[r, k].astype(dtype, copy=False), res[r, k].astype(dtype, copy=False))
    finally:
        handle.remove()
    kept = [np.flatnonzero(k) for k in keeps]
    return NeuronCapture(
        neurons=np.concatenate([parts[i][0] for i in range(len(seqs))]),
        resid=np.concatenate([parts[i][1] for i in range(len(seqs))]),
        seq=np.repeat(np.arange(len(seqs)), [len(k) for k in kept]).astype(np.int32),
        positions=np.concatenate(kept).astype(np.int32),
        token_ids=np.concatenate([s[k] for s, k in zip(seqs, kept, strict=True)]).astype(np.int32),
    )
