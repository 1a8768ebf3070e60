"""Capture the residual stream of a causal LM.

The residual stream "at layer L" is the output of transformer block L (0-based): the sum of the
embeddings and of every attention and MLP output up to and including block L. It equals
``output_hidden_states[L + 1]`` of a Hugging Face model (for every block but the last, whose
hidden state HF returns after the final norm).

:func:`capture_residual` runs only blocks ``0..L`` (:func:`helpers.model.hooks.run_until`), so the
blocks after it and the unembedding never run. Padding positions are dropped; every kept row
carries its document index, its position in the document and its token. A text longer than
``max_length`` tokens, or than the model's context, is refused, never silently cut.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from transformers import BatchEncoding, PreTrainedTokenizerBase

from helpers.model.blocks import accepts, n_layers, validate_layer
from helpers.model.hooks import run_until
from helpers.progress import progress_bar
from helpers.validate import as_count, context_length, token_limit


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


def check_lengths(lengths: Sequence[int], max_length: int, context: int | None = None) -> None:
    """Refuse, in one line, the first text longer than ``max_length`` tokens or than the model's
    ``context`` (nothing is ever cut silently: a cut text would be scored or stored as if whole)."""
    max_length = as_count(max_length, "max_length")
    limit = max_length if context is None else min(max_length, context)
    too_long = [i for i, n in enumerate(lengths) if n > limit]
    if too_long:
        i, k = too_long[0], len(too_long)
        why = (
            f"max_length = {max_length:,}"
            if limit == max_length
            else f"the model's context is {context:,} tokens"
        )
        more = f"; {k} texts are over it" if k > 1 else ""
        token_limit(lengths[i], limit, f"text {i} of {len(lengths)} ({why}{more})")


def length_sorted_batches(
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[str],
    batch_size: int,
    max_length: int,
    context: int | None = None,
) -> Iterator[tuple[np.ndarray, BatchEncoding]]:
    """Yield (indices, encoding) with texts grouped by length, so batches carry little padding.
    A text of more than ``max_length`` tokens (or than the model's ``context``) is refused with one
    line (nothing is cut)."""
    batch_size = as_count(batch_size, "batch_size")
    if any(not isinstance(t, str) or not t.strip() for t in texts):
        raise ValueError("every text must be a non-empty string; drop the empty rows first")
    lengths = [len(ids) for ids in tokenizer(list(texts)).input_ids]
    check_lengths(lengths, max_length, context)
    order = np.argsort(lengths, kind="stable")
    for start in range(0, len(texts), batch_size):
        idx = order[start : start + batch_size]
        enc = tokenizer([texts[i] for i in idx], return_tensors="pt", padding=True)
        yield idx, enc


def model_inputs(model: nn.Module, enc: BatchEncoding) -> dict[str, torch.Tensor]:
    """Inputs of a padded batch on the model's device; positions count real tokens only, so left
    padding does not shift them (GPT-2 needs it)."""
    device = next(model.parameters()).device
    mask = enc["attention_mask"].to(device)
    inputs = {"input_ids": enc["input_ids"].to(device), "attention_mask": mask, "use_cache": False}
    if accepts(model, "position_ids"):
        inputs["position_ids"] = (mask.long().cumsum(-1) - 1).clamp(min=0)
    return inputs


def _capture(
    model: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[str],
    layers: list[int],
    doc_ids: np.ndarray,
    batch_size: int,
    max_length: int,
    dtype: type,
    desc: str,
    progress: bool,
) -> Capture:
    """The one capture loop: blocks 0..max(layers) per batch, rows of ``layers`` stacked
    ``[len(layers), n_tokens, d]``, grouped by document in input order, then by position."""
    parts = []
    batch_size = as_count(batch_size, "batch_size")
    n_batches = -(-len(texts) // batch_size)
    batches = length_sorted_batches(tokenizer, texts, batch_size, max_length, context_length(model))
    for idx, enc in progress_bar(batches, total=n_batches, desc=desc, disable=not progress or n_batches < 4):
        got: dict[int, torch.Tensor] = {}
        run_until(
            model,
            max(layers),
            model_inputs(model, enc),
            record={i: (lambda h, i=i, got=got: got.__setitem__(i, h)) for i in layers},
        )
        mask = enc["attention_mask"].bool()
        m = mask.to(got[layers[0]].device)
        acts = np.stack([got[i][m].float().cpu().numpy().astype(dtype, copy=False) for i in layers])
        doc = torch.as_tensor(doc_ids[idx]).unsqueeze(1).expand_as(mask)
        pos = mask.long().cumsum(-1) - 1
        parts.append((acts, enc["input_ids"][mask].numpy(), doc[mask].numpy(), pos[mask].numpy()))
    acts = np.concatenate([p[0] for p in parts], axis=1)
    tok, doc, pos = (np.concatenate([p[j] for p in parts]).astype(np.int32) for j in (1, 2, 3))
    rank = np.zeros(int(doc_ids.max()) + 1, dtype=np.int64)
    rank[doc_ids] = np.arange(len(doc_ids))
    order = np.lexsort((pos, rank[doc]))
    return Capture(acts=acts[:, order], token_ids=tok[order], doc_ids=doc[order], positions=pos[order])


def _doc_ids(texts: Sequence[str], doc_ids: Sequence[int] | np.ndarray | None) -> np.ndarray:
    ids = np.arange(len(texts)) if doc_ids is None else np.asarray(doc_ids, dtype=np.int64)
    if len(ids) != len(texts) or len(set(ids.tolist())) != len(ids) or (len(ids) and ids.min() < 0):
        raise ValueError("doc_ids must be unique non-negative integers, one per text")
    if not len(ids):
        raise ValueError("no texts to capture")
    return ids


def capture_residual(
    model: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[str],
    layer: int,
    *,
    batch_size: int = 16,
    max_length: int = 256,
    doc_ids: Sequence[int] | np.ndarray | None = None,
    dtype: type = np.float32,
    progress: bool = True,
) -> Capture:
    """Residual stream after block ``layer`` for every non-padding token of ``texts``.

    Runs blocks ``0..layer`` only. Rows come out grouped by document in input order, then by
    position. ``doc_ids`` (default ``0..len(texts)-1``) label the rows.
    """
    layer = validate_layer(model, layer)
    texts = list(texts)
    cap = _capture(
        model,
        tokenizer,
        texts,
        [layer],
        _doc_ids(texts, doc_ids),
        batch_size,
        max_length,
        dtype,
        f"capture layer {layer}",
        progress,
    )
    cap.acts = cap.acts[0]
    return cap


def capture_all_layers(
    model: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[str],
    *,
    batch_size: int = 16,
    max_length: int = 256,
    dtype: type = np.float32,
    progress: bool = True,
) -> Capture:
    """Residual stream after every block at once: ``acts`` is ``[n_layers, n_tokens, d_model]``.

    Every block's output is taken from the same forward pass (which stops after the last block,
    so the final norm and the unembedding do not run).
    """
    texts = list(texts)
    return _capture(
        model,
        tokenizer,
        texts,
        list(range(n_layers(model))),
        _doc_ids(texts, None),
        batch_size,
        max_length,
        dtype,
        "capture all layers",
        progress,
    )
