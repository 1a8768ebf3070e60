"""The one capture engine: token ids or texts in, named sites out, one row per token.

A **site** is a place in the forward pass whose vectors we read:

- ``Site("resid", L)``: the residual stream "at layer L", the output of transformer block L (0-based):
  the sum of the embeddings and of every attention and MLP output up to and including block L. It
  equals ``output_hidden_states[L + 1]`` of a Hugging Face model (for every block but the last, whose
  hidden state HF returns after the final norm);
- ``Site("mlp_in", L)``: the input of block L's MLP (the residual stream after block L's attention,
  normalised; ``d_model`` wide);
- ``Site("neurons", L)``: block L's MLP neurons, the input of the MLP's output projection (``d_mlp``
  wide; :mod:`helpers.model.neurons` reads what each one writes).

:func:`capture` runs blocks ``0..max(L)`` only (:func:`helpers.model.hooks.run_until`, which places
every hook), so the blocks after the deepest site and the unembedding never run. One convention for
every input: texts are tokenised once, unpadded (the tokenizer's ids, special tokens included); token
ids are fed exactly as given (never decoded and re-tokenised, so rows line up with rows captured from
the same ids before). A sequence longer than ``max_length`` tokens, or than the model's context, is
refused in one line, never silently cut. Sequences are sorted by length into right-padded batches
whose position ids count real tokens from 0; padding is never returned. Rows come out grouped by
document in input order, then by position, each with its document id, position and token.

A new site is one more entry in :func:`_hook_point`, not a new loop.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np
import torch
from torch import nn
from transformers import BatchEncoding, PreTrainedTokenizerBase

from helpers.model.blocks import accepts, block_mlp, mlp_out_proj, n_layers, validate_layer
from helpers.model.hooks import run_until
from helpers.progress import progress_bar
from helpers.validate import as_count, as_indices, context_length, token_limit

SiteKind = Literal["resid", "mlp_in", "neurons"]
KINDS: tuple[str, ...] = get_args(SiteKind)


@dataclass(frozen=True)
class Site:
    """Where to read: ``kind`` ("resid", "mlp_in" or "neurons") at block ``layer`` (0-based)."""

    kind: SiteKind
    layer: int

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"site kind {self.kind!r} is not one of {', '.join(KINDS)}")

    def __str__(self) -> str:
        return f"{self.kind} {self.layer}"


@dataclass
class SiteCapture:
    """What :func:`capture` returns: ``acts[site]`` is ``[n_tokens, width]`` for each site (``cap[site]``
    reads it); ``doc_ids`` label each row's document (the input's index, or the ids passed in),
    ``positions`` count tokens from 0 within it, ``token_ids`` are the tokens (all int32)."""

    acts: dict[Site, np.ndarray]
    token_ids: np.ndarray
    doc_ids: np.ndarray
    positions: np.ndarray

    def __getitem__(self, site: Site) -> np.ndarray:
        return self.acts[site]

    def __len__(self) -> int:
        return len(self.token_ids)


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


# --- inputs --------------------------------------------------------------------------------------


def check_lengths(lengths: Sequence[int], max_length: int | None, context: int | None = None) -> None:
    """Refuse, in one line, the first text longer than ``max_length`` tokens or than the model's
    ``context`` (nothing is ever cut silently: a cut text would be scored or stored as if whole).
    ``max_length`` None: the context alone is the limit."""
    if max_length is not None:
        max_length = as_count(max_length, "max_length")
    limits = [n for n in (max_length, context) if n is not None]
    if not limits:
        return
    limit = min(limits)
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


def tokenize(
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[str],
    max_length: int | None = None,
    context: int | None = None,
) -> list[np.ndarray]:
    """Each text's token ids, unpadded (the tokenizer's own, special tokens included). An empty text,
    or one longer than ``max_length`` tokens or the model's ``context``, is refused in one line."""
    texts = list(texts)
    if any(not isinstance(t, str) or not t.strip() for t in texts):
        raise ValueError("every text must be a non-empty string; drop the empty rows first")
    seqs = [np.asarray(ids, dtype=np.int64) for ids in tokenizer(texts).input_ids] if texts else []
    check_lengths([len(s) for s in seqs], max_length, context)
    return seqs


def _token_sequences(model: nn.Module, sequences: Sequence, max_length: int | None) -> list[np.ndarray]:
    """Token-id sequences as int64 arrays: each 1-D, non-empty, ids in the model's vocabulary, none
    longer than the limit; else one line."""
    try:
        seqs = [np.asarray(s) for s in sequences]
    except (TypeError, ValueError):
        seqs = []
    if not seqs or any(s.ndim != 1 or len(s) == 0 for s in seqs):
        raise ValueError("pass one non-empty 1-D array of token ids per sequence")
    n_vocab = model.get_input_embeddings().num_embeddings
    flat = as_indices(np.concatenate(seqs), "token id", n_vocab, "the model's vocabulary")
    check_lengths([len(s) for s in seqs], max_length, context_length(model))
    return np.split(flat, np.cumsum([len(s) for s in seqs])[:-1])


def _keep_masks(seqs: list[np.ndarray], keep: Sequence | None) -> list[np.ndarray] | None:
    """Each sequence's kept positions (``keep[i]``: a bool mask over sequence i), or None for all."""
    if keep is None:
        return None
    keeps = [np.asarray(k, bool) for k in keep]
    if len(keeps) != len(seqs) or any(k.shape != s.shape for k, s in zip(keeps, seqs, strict=True)):
        raise ValueError("keep must hold one bool mask per sequence, as long as the sequence")
    return [np.flatnonzero(k) for k in keeps]


def _doc_ids(n: int, doc_ids: Sequence[int] | np.ndarray | None) -> np.ndarray:
    ids = np.arange(n) if doc_ids is None else np.asarray(doc_ids, dtype=np.int64)
    if len(ids) != n or len(set(ids.tolist())) != len(ids) or (len(ids) and ids.min() < 0):
        raise ValueError("doc_ids must be unique non-negative integers, one per text")
    return ids


def _sites(model: nn.Module, sites: Sequence[Site]) -> list[Site]:
    """The sites, each checked against the model (layer in range), repeats dropped."""
    sites = list(sites)
    if not sites or any(not isinstance(s, Site) for s in sites):
        raise ValueError('pass a list of sites to capture, e.g. [Site("resid", 16)]')
    return list(dict.fromkeys(Site(s.kind, validate_layer(model, s.layer)) for s in sites))


# --- batches -------------------------------------------------------------------------------------


def padded_batches(
    seqs: Sequence[np.ndarray], batch_size: int
) -> Iterator[tuple[np.ndarray, torch.Tensor, torch.Tensor]]:
    """``(indices, ids, mask)`` per batch: sequences sorted by length (stably) so batches carry little
    padding, right-padded with id 0 (``mask`` 0 there)."""
    batch_size = as_count(batch_size, "batch_size")
    lengths = np.array([len(s) for s in seqs])
    order = np.argsort(lengths, kind="stable")
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        ids = torch.zeros(len(idx), int(lengths[idx].max()), dtype=torch.long)
        mask = torch.zeros_like(ids)
        for r, i in enumerate(idx):
            ids[r, : lengths[i]] = torch.from_numpy(seqs[i])
            mask[r, : lengths[i]] = 1
        yield idx, ids, mask


def _forward_inputs(model: nn.Module, ids: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
    device = next(model.parameters()).device
    mask = mask.to(device)
    inputs = {"input_ids": ids.to(device), "attention_mask": mask, "use_cache": False}
    if accepts(model, "position_ids"):
        inputs["position_ids"] = (mask.long().cumsum(-1) - 1).clamp(min=0)
    return inputs


def model_inputs(model: nn.Module, enc: BatchEncoding) -> dict[str, torch.Tensor]:
    """Inputs of a padded batch on the model's device; positions count real tokens only, so left
    padding does not shift them (GPT-2 needs it)."""
    return _forward_inputs(model, enc["input_ids"], enc["attention_mask"])


def length_sorted_batches(
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[str],
    batch_size: int,
    max_length: int,
    context: int | None = None,
) -> Iterator[tuple[np.ndarray, BatchEncoding]]:
    """Yield (indices, encoding) with texts grouped by length, so batches carry little padding: the
    batches :func:`capture` runs (right-padded). A text of more than ``max_length`` tokens (or than the
    model's ``context``) is refused with one line (nothing is cut)."""
    batch_size = as_count(batch_size, "batch_size")
    seqs = tokenize(tokenizer, texts, max_length, context)
    for idx, ids, mask in padded_batches(seqs, batch_size):
        yield idx, BatchEncoding({"input_ids": ids, "attention_mask": mask})


# --- the engine ----------------------------------------------------------------------------------


def _hook_point(model: nn.Module, site: Site) -> tuple[int | None, nn.Module | None]:
    """Where a site is read: a block's output (its index) or a module's input (the module)."""
    if site.kind == "resid":
        return site.layer, None
    if site.kind == "mlp_in":
        return None, block_mlp(model, site.layer)
    return None, mlp_out_proj(model, site.layer)  # "neurons"


def capture(
    model: nn.Module,
    sites: Sequence[Site],
    *,
    texts: Sequence[str] | None = None,
    tokenizer: PreTrainedTokenizerBase | None = None,
    token_ids: Sequence[np.ndarray] | None = None,
    keep: Sequence[np.ndarray] | None = None,
    doc_ids: Sequence[int] | np.ndarray | None = None,
    batch_size: int = 16,
    max_length: int | None = None,
    dtype: type = np.float32,
    progress: bool = True,
) -> SiteCapture:
    """Every site's vectors for every token of ``texts`` (with their ``tokenizer``) or of ``token_ids``
    (one 1-D array of ids per sequence, position 0 first): ``cap[site]`` is ``[n_tokens, width]``.

    Runs blocks ``0..max(site.layer)`` only. ``keep[i]`` (a bool mask over sequence i's positions)
    says which rows to return (default all); ``doc_ids`` (default ``0..n-1``) label the rows. A
    sequence longer than ``max_length`` (default: no limit but the model's context) is refused."""
    sites = _sites(model, sites)
    if (texts is None) == (token_ids is None):
        raise ValueError("pass either texts (with their tokenizer) or token_ids")
    if texts is not None:
        if tokenizer is None:
            raise ValueError("texts need the tokenizer that goes with the model: pass tokenizer=")
        texts = list(texts)
        if not texts:
            raise ValueError("no texts to capture")
        seqs = tokenize(tokenizer, texts, max_length, context_length(model))
    else:
        seqs = _token_sequences(model, token_ids, max_length)
    ids = _doc_ids(len(seqs), doc_ids)
    batch_size = as_count(batch_size, "batch_size")
    return _run(model, seqs, sites, _keep_masks(seqs, keep), ids, batch_size, dtype, progress)


def _run(
    model: nn.Module,
    seqs: list[np.ndarray],
    sites: list[Site],
    kept: list[np.ndarray] | None,
    doc_ids: np.ndarray,
    batch_size: int,
    dtype: type,
    progress: bool,
) -> SiteCapture:
    """The one capture loop. Each sequence's rows are written straight to their final place (its
    documents in input order), so nothing is concatenated or reordered afterwards."""
    lengths = np.array([len(s) for s in seqs])
    counts = lengths if kept is None else np.array([len(k) for k in kept])
    ends = np.cumsum(counts)
    starts, n = ends - counts, int(ends[-1])
    got: dict[Site, torch.Tensor] = {}
    record, record_inputs = {}, []  # block index -> reader of its output; (module, reader of its input)
    for site in sites:  # distinct, so at most one "resid" site per block
        block, module = _hook_point(model, site)
        fn = lambda h, site=site: got.__setitem__(site, h)  # noqa: E731
        if module is None:
            record[block] = fn
        else:
            record_inputs.append((module, fn))
    last = max(s.layer for s in sites)
    out: dict[Site, np.ndarray] = {}
    n_batches = -(-len(seqs) // batch_size)
    desc = f"capture {', '.join(map(str, sites))}" if len(sites) <= 2 else f"capture {len(sites)} sites"
    batches = padded_batches(seqs, batch_size)
    for idx, ids, mask in progress_bar(
        batches, total=n_batches, desc=desc, disable=not progress or n_batches < 4
    ):
        run_until(model, last, _forward_inputs(model, ids, mask), record, record_inputs)
        for site in sites:
            h = got.pop(site).float().cpu().numpy()
            if site not in out:
                out[site] = np.empty((n, h.shape[-1]), dtype=dtype)
            dst = out[site]
            for r, i in enumerate(idx):
                dst[starts[i] : ends[i]] = h[r, : lengths[i]] if kept is None else h[r, kept[i]]
    positions = np.concatenate([np.arange(m) for m in lengths] if kept is None else kept)
    tokens = np.concatenate(seqs if kept is None else [s[k] for s, k in zip(seqs, kept, strict=True)])
    return SiteCapture(
        acts=out,
        token_ids=tokens.astype(np.int32),
        doc_ids=np.repeat(doc_ids, counts).astype(np.int32),
        positions=positions.astype(np.int32),
    )


# --- the residual stream, as the notebooks ask for it ------------------------------------------------


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
    """Residual stream after block ``layer`` for every non-padding token of ``texts``
    (:func:`capture` of ``Site("resid", layer)``).

    Runs blocks ``0..layer`` only. Rows come out grouped by document in input order, then by
    position. ``doc_ids`` (default ``0..len(texts)-1``) label the rows.
    """
    site = Site("resid", validate_layer(model, layer))
    cap = capture(
        model,
        [site],
        texts=texts,
        tokenizer=tokenizer,
        doc_ids=doc_ids,
        batch_size=batch_size,
        max_length=max_length,
        dtype=dtype,
        progress=progress,
    )
    return Capture(acts=cap[site], token_ids=cap.token_ids, doc_ids=cap.doc_ids, positions=cap.positions)


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
    sites = [Site("resid", i) for i in range(n_layers(model))]
    cap = capture(
        model,
        sites,
        texts=texts,
        tokenizer=tokenizer,
        batch_size=batch_size,
        max_length=max_length,
        dtype=dtype,
        progress=progress,
    )
    acts = np.stack([cap[s] for s in sites])
    return Capture(acts=acts, token_ids=cap.token_ids, doc_ids=cap.doc_ids, positions=cap.positions)
