"""The MLP neurons of the store's layer, one row per row of the activation store.

The store (:mod:`helpers.data.store`) holds each prompt's tokens once: sample 0 of a prompt keeps
all its rows, later samples keep only their continuation, and every document's first token
(position 0) is left out. To capture another quantity for exactly those rows we rebuild each
document's token ids — its own rows, its prompt's tokens from the rows of its prompt's other
samples, and the first token from the tokenizer — feed them to the model unchanged
(:func:`helpers.model.neurons.capture_neurons`), keep the stored positions, and check that the
residual stream captured on the way equals the store's: if it does, every row lines up.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn
from transformers import PreTrainedTokenizerBase

from helpers.config import paths
from helpers.data.store import Store
from helpers.files import load_npz, save_npz
from helpers.model.capture import Site, capture
from helpers.model.loading import model_name
from helpers.model.neurons import capture_neurons

DEFAULT = "default"  # store_neurons' cache: data/neurons.npz of the active profile


@dataclass
class StoreNeurons:
    """``neurons`` [store rows, d_mlp]: the MLP's hidden activations of block ``layer`` at each row
    of the store; ``resid_error``: the largest difference between the residual re-captured with
    them and the store's, over the rows' typical norm (float rounding only: ~1e-5)."""

    neurons: np.ndarray
    layer: int
    resid_error: float


def store_sequences(
    store: Store, docs: pd.DataFrame, first_tokens: dict[int, int]
) -> tuple[list[int], list[np.ndarray], list[np.ndarray]]:
    """For each document of the store (in store order): its doc id, its full token ids (position 0
    from ``first_tokens[prompt_id]``, the prompt's positions from any stored sample of the prompt)
    and the mask of its positions that are store rows. One ``ValueError`` line for a gap."""
    prompt_of = docs.set_index("doc_id")["prompt_id"]
    change = np.flatnonzero(np.diff(store.doc_ids)) + 1
    starts, ends = np.concatenate([[0], change]), np.concatenate([change, [len(store)]])
    doc_list = store.doc_ids[starts].astype(int)
    prompt = prompt_of.reindex(store.doc_ids).to_numpy()
    if np.isnan(prompt.astype(float)).any():
        raise ValueError("the store holds documents that docs (generations.csv) lacks; re-run notebook 02")
    known: dict[tuple[int, int], int] = {}  # (prompt, position) -> token, from every stored row
    for p, pos, t in zip(prompt.astype(int), store.positions, store.token_ids, strict=True):
        known.setdefault((int(p), int(pos)), int(t))
    ids, seqs, keeps = [], [], []
    for d, a, b in zip(doc_list, starts, ends, strict=True):
        p = int(prompt_of[d])
        pos = store.positions[a:b]
        tok = np.full(int(pos.max()) + 1, -1, dtype=np.int64)
        tok[pos] = store.token_ids[a:b]
        if p not in first_tokens:
            raise ValueError(f"no first token for prompt {p}; pass one per prompt of the store")
        tok[0] = first_tokens[p]
        for q in np.flatnonzero(tok < 0):
            tok[q] = known.get((p, int(q)), -1)
        if (tok < 0).any():
            q = int(np.flatnonzero(tok < 0)[0])
            raise ValueError(
                f"document {d}: position {q} is in no stored row of its prompt, so its tokens cannot be "
                "rebuilt; rebuild the store (notebook 02)"
            )
        keep = np.zeros(len(tok), bool)
        keep[pos] = True
        ids.append(int(d))
        seqs.append(tok)
        keeps.append(keep)
    return ids, seqs, keeps


def first_tokens_of(docs: pd.DataFrame, tokenizer: PreTrainedTokenizerBase) -> dict[int, int]:
    """Each prompt's position-0 token (the store leaves it out): the first token of its sample-0
    document's text, tokenised as the prompts were (:func:`helpers.data.generation.generate`,
    without a chat template). The residual check of :func:`store_neurons` catches a mismatch."""
    first = docs.sort_values("sample").drop_duplicates("prompt_id")
    enc = tokenizer([t[:200] for t in first["text"]])["input_ids"]
    return {int(p): int(e[0]) for p, e in zip(first["prompt_id"], enc, strict=True)}


def document_tokens(
    store: Store, docs: pd.DataFrame, tokenizer: PreTrainedTokenizerBase
) -> dict[int, np.ndarray]:
    """Each stored document's full token ids, position 0 first (doc id -> ids), so that ``ids[p]`` is the
    token at stored position ``p``. A store keeps a prompt's tokens once (its later samples keep only
    their continuation) and no document's first token, so the stored rows of a document alone are not
    its sequence: indexing them by position reads the wrong token (notebook 06 once did)."""
    ids, seqs, _ = store_sequences(store, docs, first_tokens_of(docs, tokenizer))
    return dict(zip(ids, seqs, strict=True))


def store_neurons(
    model: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    store: Store,
    docs: pd.DataFrame,
    *,
    batch_size: int = 64,
    tolerance: float = 1e-3,
    progress: bool = True,
    cache: Path | str | None = DEFAULT,
) -> StoreNeurons:
    """The MLP neurons of block ``store.layer`` at every row of ``store`` (row for row), by re-feeding
    each document's exact token ids. Refused with one line when the residual captured on the way
    differs from the store's by more than ``tolerance`` of a typical row norm (the store was made
    from other documents, another model or another layer). Batches of 64 documents: on 2 cores they
    ran ~30% faster than batches of 16 (larger matrix products).

    Saved to ``cache`` (default ``data/neurons.npz``; None: not saved) with a key of the store's rows and
    the model, and reused from it while both are the same (notebooks 04 and 07 read the same neurons:
    ~40 s each on 2 cores); an unreadable or stale file is captured again and replaced."""
    path = paths().data / "neurons.npz" if cache is DEFAULT else (Path(cache) if cache is not None else None)
    key = _neurons_key(model, store)
    if path is not None and path.is_file():
        try:
            saved = load_npz(path)
            if str(saved["key"]) == key and saved["neurons"].shape[0] == len(store):
                return StoreNeurons(saved["neurons"], store.layer, float(saved["resid_error"]))
        except (ValueError, KeyError):
            pass  # unreadable or from older code: captured again below
    out = _capture_neurons(model, tokenizer, store, docs, batch_size, tolerance, progress)
    if path is not None:
        save_npz(path, neurons=out.neurons, resid_error=np.float64(out.resid_error), key=np.str_(key))
    return out


def _neurons_key(model: nn.Module, store: Store) -> str:
    """What the neurons depend on: the model's weights (name and a digest of them) and the store's rows."""
    h = hashlib.sha256()
    for arr in (store.acts, store.token_ids, store.doc_ids, store.positions):
        h.update(np.ascontiguousarray(arr).tobytes())
    with torch.no_grad():  # a fingerprint of every weight (a random-init copy, an edited weight differ)
        for name, p in model.named_parameters():
            w = p.detach().double()
            h.update(f"{name}{tuple(p.shape)}{float(w.sum())!r}{float(w.abs().sum())!r}".encode())
    h.update(f"{model_name(model)}|{store.layer}".encode())
    return h.hexdigest()[:16]


def _capture_neurons(model, tokenizer, store, docs, batch_size, tolerance, progress) -> StoreNeurons:
    doc_ids, seqs, keeps = store_sequences(store, docs, first_tokens_of(docs, tokenizer))
    cap = capture_neurons(model, seqs, store.layer, keep=keeps, batch_size=batch_size, progress=progress)
    # capture rows run document by document in store order, positions ascending: the store's order
    if len(cap) != len(store) or not np.array_equal(cap.token_ids, store.token_ids):
        raise ValueError(
            "the rebuilt documents do not give the store's rows; rebuild the store (notebook 02)"
        )
    scale = float(np.median(np.linalg.norm(store.acts[:: max(1, len(store) // 2000)], axis=1)))
    err = float(np.abs(cap.resid - store.acts).max()) / scale
    if err > tolerance:
        raise ValueError(
            f"the re-captured residual stream differs from the store's by {err:.2g} of a row's norm: the "
            f"store was not made from these documents with this model at layer {store.layer}; re-run "
            "notebook 02"
        )
    return StoreNeurons(neurons=cap.neurons, layer=store.layer, resid_error=err)


def store_residual(
    model: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    store: Store,
    docs: pd.DataFrame,
    *,
    batch_size: int = 64,
    progress: bool = True,
) -> Store:
    """The residual stream after block ``store.layer`` of *another* model (a randomly initialised copy,
    say) at every row of ``store``, row for row: each document's exact token ids re-fed as
    :func:`store_neurons` does, so the two stores share token ids, documents and positions. Re-tokenising
    the texts instead would not give the same rows: a generated text does not always tokenise back into
    the ids the model generated."""
    doc_ids, seqs, keeps = store_sequences(store, docs, first_tokens_of(docs, tokenizer))
    site = Site("resid", store.layer)
    cap = capture(model, [site], token_ids=seqs, keep=keeps, batch_size=batch_size, progress=progress)
    if len(cap) != len(store) or not np.array_equal(cap.token_ids, store.token_ids):
        raise ValueError(
            "the rebuilt documents do not give the store's rows; rebuild the store (notebook 02)"
        )
    return Store(
        acts=cap[site],
        token_ids=store.token_ids,
        doc_ids=store.doc_ids,
        positions=store.positions,
        layer=store.layer,
        model=model_name(model),
    )
