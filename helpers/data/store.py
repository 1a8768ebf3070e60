"""The activation store ``data/activations.npz``: the residual stream at one layer, one row per
token of every generated document, for SAE training.

Contract (DESIGN.md): ``acts`` [n_tokens, d_model] float32, ``token_ids``, ``doc_ids``,
``positions`` (int32, one per row), ``layer`` and ``model`` (scalars). Loaded with
``allow_pickle=False``. The first token of each document (position 0, the attention sink) is
left out: its vector is ~100x longer than any other token's and carries no content, so it would
dominate an SAE's reconstruction loss.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from torch import nn

from helpers.config import paths
from helpers.files import commit, load_npz, save_npz, verify
from helpers.model.blocks import n_layers as n_layers_of
from helpers.model.capture import Capture, capture_residual
from helpers.model.loading import model_name
from helpers.validate import as_count, as_index

KEYS = ("acts", "token_ids", "doc_ids", "positions", "layer", "model")


@dataclass
class Store:
    acts: np.ndarray  # [n_tokens, d_model] float32
    token_ids: np.ndarray  # [n_tokens] int32
    doc_ids: np.ndarray  # [n_tokens] int32, doc_id of generations.csv
    positions: np.ndarray  # [n_tokens] int32, position in the document (0 = first token)
    layer: int
    model: str

    def __len__(self) -> int:
        return len(self.token_ids)

    @property
    def d_model(self) -> int:
        return int(self.acts.shape[1])


def build_store(
    model,
    tokenizer,
    docs: pd.DataFrame,
    layer: int,
    *,
    drop_first: bool = True,
    batch_size: int = 16,
    max_length: int = 256,
    progress: bool = True,
) -> Store:
    """Capture the residual stream after block ``layer`` for every document of ``docs``
    (``doc_id``, ``text``), padding excluded, first tokens dropped if ``drop_first``."""
    cap = capture_residual(
        model,
        tokenizer,
        docs["text"].tolist(),
        layer,
        doc_ids=docs["doc_id"].to_numpy(),
        batch_size=batch_size,
        max_length=max_length,
        progress=progress,
    )
    return from_capture(cap, layer, model_name(model), drop_first)


def _marker(path: Path) -> Path:
    return path.with_suffix(".json")


def _layer(value: object, where: str, n_layers: object = None) -> int:
    """The store's layer as an int: a block index, in 0..n_layers-1 when the model's size is known
    (:mod:`helpers.validate`'s guards: 16.0 is 16; True, 16.5, -1 and "16" are refused in one line)."""
    try:
        if n_layers is None:
            return as_count(value, "layer (a block index)", 0)
        n = as_count(n_layers, "n_layers (the model's blocks)")
        return as_index(value, "layer", n, f"a model of {n} blocks")
    except ValueError as err:
        raise ValueError(f"{where}: {err}") from None


def _validate(store: Store, where: str, n_layers: object = None) -> int:
    """Refuse a malformed store in one line; returns its layer as an int."""
    n = len(store)
    if store.acts.ndim != 2 or len(store.acts) != n:
        raise ValueError(f"{where}: acts are {store.acts.shape}, expected [{n}, d_model]")
    for name in ("doc_ids", "positions"):
        if getattr(store, name).shape != (n,):
            raise ValueError(f"{where}: {name} has shape {getattr(store, name).shape}, acts has {n} rows")
    layer = _layer(store.layer, where, n_layers)
    if n and not np.isfinite(store.acts).all():
        bad = int((~np.isfinite(store.acts).all(axis=1)).sum())
        raise ValueError(f"{where}: {bad:,} rows hold NaN or inf; rebuild the store (re-run notebook 02)")
    return layer


def save_store(
    store: Store,
    path: str | Path | None = None,
    meta: dict | None = None,
    n_layers: int | None = None,
    dtype: str = "float32",
) -> Path:
    """Write the store: the ``.npz`` (atomically), then its ``.json`` marker, which records what it
    was built from (``meta``) and the ``.npz``'s size and SHA-256, and so commits the pair: a
    store whose marker does not match is never loaded. Refuses NaN/inf rows and impossible layers."""
    path = Path(path) if path is not None else paths().activations
    layer = _validate(store, "refusing to save the store", n_layers)
    save_npz(
        path,
        acts=np.ascontiguousarray(store.acts, dtype=np.dtype(dtype)),  # float16 halves a big store on disk
        token_ids=store.token_ids.astype(np.int32),
        doc_ids=store.doc_ids.astype(np.int32),
        positions=store.positions.astype(np.int32),
        layer=np.int32(layer),
        model=np.str_(store.model),
    )
    if dtype not in ("float32", "float16"):
        raise ValueError(f"store dtype {dtype!r}: use float32 or float16")
    info = {"n_tokens": len(store), "layer": layer, "model": store.model, "dtype": dtype}
    if n_layers is not None:
        info["n_layers"] = int(n_layers)
    commit(_marker(path), [path], {**info, **(meta or {})})
    return path


def store_key(path: str | Path | None = None) -> str:
    """A key for everything trained on the store: the SHA-256 of the whole ``.npz`` (from its
    marker), so any change to any row gives a new key (a key of the first rows once let a NaN store
    reuse an SAE trained on good data)."""
    path = Path(path) if path is not None else paths().activations
    content = verify(_marker(path), hash_files=False)
    if content is None or path.name not in content["files"]:
        raise FileNotFoundError(f"{path.name} has no matching {_marker(path).name}; re-run notebook 02")
    return content["files"][path.name]["sha256"][:16]


def load_store(
    path: str | Path | None = None, *, model: nn.Module | None = None, layer: int | None = None
) -> Store:
    """Load and validate the store; with ``model``/``layer`` given, check it matches them.

    Refused with one line: a missing file, a missing or non-matching marker (an interrupted or
    mixed write), an unreadable ``.npz``, missing arrays, NaN/inf rows, an impossible layer."""
    path = Path(path) if path is not None else paths().activations
    if not path.is_file():
        raise FileNotFoundError(
            f"{path.name} not found; run notebooks/02_data_generation.ipynb first (or call "
            "helpers.data.pipeline.ensure_store())"
        )
    meta = verify(_marker(path))
    if meta is None or path.name not in meta["files"]:
        raise ValueError(
            f"{path.name} does not match its marker {_marker(path).name} (an interrupted write, or a file "
            "changed by hand); delete both and re-run notebook 02"
        )
    try:
        a = load_npz(path)
    except ValueError as err:
        raise ValueError(f"{err}; delete it and re-run notebook 02") from None
    missing = [k for k in KEYS if k not in a]
    if missing:
        raise ValueError(
            f"{path.name} lacks {', '.join(missing)}; it is not an activation store, re-run notebook 02"
        )
    acts = a["acts"]
    n = len(acts)
    if acts.ndim != 2 or any(a[k].shape != (n,) for k in ("token_ids", "doc_ids", "positions")):
        raise ValueError(
            f"{path.name} is malformed: acts {acts.shape}, token_ids {a['token_ids'].shape}, "
            f"doc_ids {a['doc_ids'].shape}, positions {a['positions'].shape}; re-run notebook 02"
        )
    store = Store(
        acts=acts.astype(np.float32, copy=False),
        token_ids=a["token_ids"].astype(np.int32),
        doc_ids=a["doc_ids"].astype(np.int32),
        positions=a["positions"].astype(np.int32),
        layer=a["layer"].item() if a["layer"].size == 1 else a["layer"].tolist(),  # checked below
        model=str(a["model"]),
    )
    n_layers = n_layers_of(model) if model is not None else meta.get("n_layers")
    store.layer = _validate(store, path.name, n_layers)
    if model is not None:
        d = int(model.config.hidden_size)
        if store.d_model != d:
            raise ValueError(
                f"{path.name} has d_model {store.d_model} but the model has {d}; re-run notebook 02 with "
                "this model"
            )
    if layer is not None and store.layer != layer:
        raise ValueError(
            f"{path.name} holds layer {store.layer}, not layer {layer}; re-run notebook 02 with LAYER = "
            f"{layer}"
        )
    return store


def store_meta(path: str | Path | None = None) -> dict:
    """What the store was built from (its marker), or ``{}`` when the pair does not match."""
    path = Path(path) if path is not None else paths().activations
    return verify(_marker(path), hash_files=False) or {}


def from_capture(cap: Capture, layer: int, model_name: str, drop_first: bool) -> Store:
    keep = cap.positions > 0 if drop_first else np.ones(len(cap.positions), bool)
    return Store(
        acts=np.ascontiguousarray(cap.acts[keep], dtype=np.float32),
        token_ids=cap.token_ids[keep],
        doc_ids=cap.doc_ids[keep],
        positions=cap.positions[keep],
        layer=int(layer),
        model=model_name,
    )


def keep_rows(store: Store, keep: np.ndarray) -> Store:
    """The store restricted to the rows where ``keep`` is True."""
    return Store(
        acts=np.ascontiguousarray(store.acts[keep]),
        token_ids=store.token_ids[keep],
        doc_ids=store.doc_ids[keep],
        positions=store.positions[keep],
        layer=store.layer,
        model=store.model,
    )


def drop_repeated_prompts(store: Store, docs: pd.DataFrame) -> Store:
    """Keep each prompt's tokens once: the samples of a prompt share its tokens and so their residual
    vectors, which the store would otherwise hold once per sample. Rows of sample 0 stay whole; later
    samples keep only their continuation (``position >= prompt_tokens``, a column of ``docs``)."""
    sample = docs.set_index("doc_id")["sample"].reindex(store.doc_ids).to_numpy()
    return keep_rows(store, (sample == 0) | continuation_rows(store, docs))


def continuation_rows(store: Store, docs: pd.DataFrame) -> np.ndarray:
    """Mask of the rows that are a document's own continuation (``position >= prompt_tokens``): the
    samples of a prompt share its tokens, so pooling over them would make the copies look alike."""
    n_prompt = docs.set_index("doc_id")["prompt_tokens"].reindex(store.doc_ids).to_numpy()
    return store.positions >= n_prompt


def tokens_per_doc(store: Store) -> pd.Series:
    """Number of stored tokens of each document, indexed by doc id."""
    return pd.Series(store.doc_ids).value_counts().sort_index().rename("tokens")
