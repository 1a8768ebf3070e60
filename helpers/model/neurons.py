"""MLP neurons: capture their activations (with the residual stream after the same block) and read
the direction each one writes into the residual stream.

An MLP block computes ``down_proj(act_fn(gate_proj(x)) * up_proj(x))`` (llama; GPT-2:
``c_proj(act(c_fc(x)))``). Its **neurons** are the ``d_mlp`` numbers fed to the output projection
(1,536 per token in SmolLM2-135M), and neuron ``j`` adds ``a_j`` times column ``j`` of the output
projection's weight to the residual stream: that column is what the neuron "writes", the analogue
of an SAE feature's decoder row.

:func:`capture_neurons` is the capture engine (:func:`helpers.model.capture.capture`) at the sites
``Site("neurons", L)`` and ``Site("resid", L)``, fed exact token ids (never re-tokenised text), so
its rows can be lined up with rows captured earlier from the same ids (the activation store):
tokenising decoded text again can split words differently from the tokens the model generated.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from helpers.model.blocks import mlp_out_proj, validate_layer
from helpers.model.capture import Site, capture

__all__ = ["NeuronCapture", "capture_neurons", "mlp_out_proj", "neuron_directions"]


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
    neurons, resid = Site("neurons", layer), Site("resid", layer)
    cap = capture(
        model,
        [neurons, resid],
        token_ids=sequences,
        keep=keep,
        batch_size=batch_size,
        dtype=dtype,
        progress=progress,
    )
    return NeuronCapture(
        neurons=cap[neurons],
        resid=cap[resid],
        seq=cap.doc_ids,
        positions=cap.positions,
        token_ids=cap.token_ids,
    )
