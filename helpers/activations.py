"""Capture the residual stream of a causal LM.

The residual stream "at layer L" is the output of transformer block L (0-based): the sum of the
embeddings and of every attention and MLP output up to and including block L. It equals
``output_hidden_states[L + 1]`` of a Hugging Face model (for every block but the last, whose
hidden state HF returns after the final norm).

:func:`capture_residual` runs only blocks ``0..L``: a forward hook on block L records its output
and raises, so the blocks after it (and the unembedding) never run. Padding positions are
dropped; every kept row carries its document index, its position in the document and its token.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from helpers.models import check_layer, get_blocks


@dataclass
class Capture:
    """Residual-stream vectors, one row per non-padding token.

    ``acts`` is ``[n_tokens, d_model]`` for one layer, or ``[n_layers, n_tokens, d_model]`` from
    :func:`capture_all_layers`. ``doc_ids`` index the input texts (or the ids passed in),
    ``positions`` count tokens from 0 within each document, ``token_ids`` are the tokens.
    """

    acts: np.ndarray
    token_ids: np.ndarray
    doc_ids: np.ndarray
    positions: np.ndarray

    def __len__(self) -> int:
        return len(self.token_ids)


class _StopForward(Exception):
    """Raised by the hook on the last block we need, to end the forward pass there."""


def _block_output(output) -> torch.Tensor:
    return output[0] if isinstance(output, tuple) else output


def accepts(model: nn.Module, name: str) -> bool:
    """Whether ``model.forward`` takes the keyword ``name`` (position_ids, logits_to_keep ...)."""
    return name in inspect.signature(model.forward).parameters


def length_sorted_batches(tokenizer, texts: list[str], batch_size: int, max_length: int):
    """Yield (indices, encoding) with texts grouped by length, so batches carry little padding."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if any(not isinstance(t, str) or not t.strip() for t in texts):
        raise ValueError("every text must be a non-empty string; drop the empty rows first")
    lengths = [len(ids) for ids in tokenizer(texts, truncation=True, max_length=max_length).input_ids]
    order = np.argsort(lengths, kind="stable")
    for start in range(0, len(texts), batch_size):
        idx = order[start : start + batch_size]
        enc = tokenizer(
            [texts[i] for i in idx],
            return_tensors="pt",
            padding=True,
            truncation=True,
            max_length=max_length,
        )
        yield idx, enc


def _forward_until(model: nn.Module, enc, hooks: dict[int, callable], last: int) -> None:
    """Forward ``enc`` with ``hooks[i]`` on block i, stopping right after block ``last``."""
    blocks = get_blocks(model)
    device = next(model.parameters()).device
    mask = enc["attention_mask"].to(device)
    kwargs = {"input_ids": enc["input_ids"].to(device), "attention_mask": mask, "use_cache": False}
    if accepts(model, "position_ids"):
        # positions count real tokens only, so left padding does not shift them (GPT-2 needs it)
        kwargs["position_ids"] = (mask.long().cumsum(-1) - 1).clamp(min=0)

    def make_hook(i: int):
        def hook(_module, _inputs, output):
            if i in hooks:
                hooks[i](_block_output(output))
            if i == last:
                raise _StopForward

        return hook

    handles = [blocks[i].register_forward_hook(make_hook(i)) for i in sorted(set(hooks) | {last})]
    try:
        with torch.inference_mode():
            model(**kwargs)
    except _StopForward:
        pass
    finally:
        for h in handles:
            h.remove()


def _rows(enc, idx, doc_ids):
    """Token ids, doc ids and positions of the non-padding tokens of a batch, row-major."""
    mask = enc["attention_mask"].bool()
    pos = mask.long().cumsum(-1) - 1
    n_real = mask.sum(-1)
    doc = torch.as_tensor(np.asarray(doc_ids)[idx]).unsqueeze(1).expand_as(mask)
    return (
        enc["input_ids"][mask].numpy().astype(np.int32),
        doc[mask].numpy().astype(np.int32),
        pos[mask].numpy().astype(np.int32),
        mask,
        n_real,
    )


def _assemble(parts: list[tuple], n_docs_order) -> Capture:
    """Concatenate per-batch parts, then reorder rows by document (input order)."""
    acts = np.concatenate([p[0] for p in parts], axis=-2)
    tok = np.concatenate([p[1] for p in parts])
    doc = np.concatenate([p[2] for p in parts])
    pos = np.concatenate([p[3] for p in parts])
    order = np.lexsort((pos, n_docs_order[doc]))
    return Capture(acts=acts[..., order, :], token_ids=tok[order], doc_ids=doc[order], positions=pos[order])


def _doc_rank(doc_ids) -> np.ndarray:
    ids = np.asarray(doc_ids, dtype=np.int64)
    rank = np.zeros(ids.max() + 1 if len(ids) else 1, dtype=np.int64)
    rank[ids] = np.arange(len(ids))
    return rank


def capture_residual(
    model: nn.Module,
    tokenizer,
    texts: list[str],
    layer: int,
    *,
    batch_size: int = 16,
    max_length: int = 256,
    doc_ids=None,
    dtype=np.float32,
    progress: bool = True,
) -> Capture:
    """Residual stream after block ``layer`` for every non-padding token of ``texts``.

    Runs blocks ``0..layer`` only. Rows come out grouped by document in input order, then by
    position. ``doc_ids`` (default ``0..len(texts)-1``) label the rows.
    """
    check_layer(model, layer)
    texts = list(texts)
    doc_ids = np.arange(len(texts)) if doc_ids is None else np.asarray(doc_ids)
    if len(doc_ids) != len(texts) or len(set(doc_ids.tolist())) != len(doc_ids):
        raise ValueError("doc_ids must be unique and one per text")
    parts = []
    n_batches = -(-len(texts) // batch_size)
    for idx, enc in tqdm(
        length_sorted_batches(tokenizer, texts, batch_size, max_length),
        total=n_batches, desc=f"capture layer {layer}", disable=not progress or n_batches < 4,
    ):
        got: list[torch.Tensor] = []
        _forward_until(model, enc, {layer: got.append}, last=layer)
        tok, doc, pos, mask, _ = _rows(enc, idx, doc_ids)
        acts = got[0][mask.to(got[0].device)].float().cpu().numpy().astype(dtype, copy=False)
        parts.append((acts, tok, doc, pos))
    return _assemble(parts, _doc_rank(doc_ids))


def capture_all_layers(
    model: nn.Module,
    tokenizer,
    texts: list[str],
    *,
    batch_size: int = 16,
    max_length: int = 256,
    dtype=np.float32,
    progress: bool = True,
) -> Capture:
    """Residual stream after every block at once: ``acts`` is ``[n_layers, n_tokens, d_model]``.

    Every block's output is taken from the same forward pass (which stops after the last block,
    so the final norm and the unembedding do not run).
    """
    n = len(get_blocks(model))
    texts = list(texts)
    doc_ids = np.arange(len(texts))
    parts = []
    n_batches = -(-len(texts) // batch_size)
    for idx, enc in tqdm(
        length_sorted_batches(tokenizer, texts, batch_size, max_length),
        total=n_batches, desc="capture all layers", disable=not progress or n_batches < 4,
    ):
        got: dict[int, torch.Tensor] = {}
        hooks = {i: (lambda out, i=i, got=got: got.__setitem__(i, out)) for i in range(n)}
        _forward_until(model, enc, hooks, last=n - 1)
        tok, doc, pos, mask, _ = _rows(enc, idx, doc_ids)
        m = mask.to(got[0].device)
        acts = np.stack([got[i][m].float().cpu().numpy().astype(dtype, copy=False) for i in range(n)])
        parts.append((acts, tok, doc, pos))
    return _assemble(parts, _doc_rank(doc_ids))
