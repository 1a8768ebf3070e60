"""The activation store ``data/activations.npz``: the residual stream at one layer, one row per
token of every generated document, for SAE training.

Contract (DESIGN.md): ``acts`` [n_tokens, d_model] float32, ``token_ids``, ``doc_ids``,
``positions`` (int32, one per row), ``layer`` and ``model`` (scalars). Loaded with
``allow_pickle=False``. The first token of each document (position 0, the attention sink) is
left out: its vector is ~100x longer than any other token's and carries no content, so it would
dominate an SAE's reconstruction loss.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from helpers.config import paths
from helpers.io import load_json, load_npz, save_csv, save_json, save_npz

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


def build_store(model, tokenizer, docs: pd.DataFrame, layer: int, *, drop_first: bool = True,
                batch_size: int = 16, max_length: int = 256, progress: bool = True) -> Store:
    """Capture the residual stream after block ``layer`` for every document of ``docs``
    (``doc_id``, ``text``), padding excluded, first tokens dropped if ``drop_first``."""
    from helpers.activations import capture_residual
    from helpers.models import model_name

    cap = capture_residual(model, tokenizer, docs["text"].tolist(), layer, doc_ids=docs["doc_id"].to_numpy(),
                           batch_size=batch_size, max_length=max_length, progress=progress)
    return _from_capture(cap, layer, model_name(model), drop_first)


def save_store(store: Store, path: str | Path | None = None, meta: dict | None = None) -> Path:
    """Write the store atomically; ``meta`` (what it was built from) goes to a ``.json`` beside it."""
    path = Path(path) if path is not None else paths().activations
    n = len(store)
    for name in ("doc_ids", "positions"):
        if len(getattr(store, name)) != n:
            raise ValueError(f"store field {name} has {len(getattr(store, name))} rows, acts has {n}")
    save_npz(path, acts=store.acts.astype(np.float32, copy=False), token_ids=store.token_ids.astype(np.int32),
             doc_ids=store.doc_ids.astype(np.int32), positions=store.positions.astype(np.int32),
             layer=np.int32(store.layer), model=np.str_(store.model))
    save_json(path.with_suffix(".json"), {"n_tokens": n, "layer": store.layer, "model": store.model, **(meta or {})})
    return path


def load_store(path: str | Path | None = None, *, model=None, layer: int | None = None) -> Store:
    """Load and validate the store; with ``model``/``layer`` given, check it matches them."""
    path = Path(path) if path is not None else paths().activations
    if not path.is_file():
        raise FileNotFoundError(f"{path.name} not found; run notebooks/02_data_generation.ipynb first (or call helpers.store.ensure_store())")
    try:
        a = load_npz(path)
    except (ValueError, OSError) as err:
        raise ValueError(f"{path.name} is not a readable store ({err}); delete it and re-run notebook 02") from err
    missing = [k for k in KEYS if k not in a]
    if missing:
        raise ValueError(f"{path.name} lacks {', '.join(missing)}; it is not an activation store, re-run notebook 02")
    acts = a["acts"]
    n = len(acts)
    if acts.ndim != 2 or any(a[k].shape != (n,) for k in ("token_ids", "doc_ids", "positions")):
        raise ValueError(f"{path.name} is malformed: acts {acts.shape}, token_ids {a['token_ids'].shape}, "
                         f"doc_ids {a['doc_ids'].shape}, positions {a['positions'].shape}; re-run notebook 02")
    store = Store(acts=acts.astype(np.float32, copy=False), token_ids=a["token_ids"].astype(np.int32),
                  doc_ids=a["doc_ids"].astype(np.int32), positions=a["positions"].astype(np.int32),
                  layer=int(a["layer"]), model=str(a["model"]))
    if model is not None:
        d = int(model.config.hidden_size)
        if store.d_model != d:
            raise ValueError(f"{path.name} has d_model {store.d_model} but the model has {d}; re-run notebook 02 with this model")
    if layer is not None and store.layer != layer:
        raise ValueError(f"{path.name} holds layer {store.layer}, not layer {layer}; re-run notebook 02 with LAYER = {layer}")
    return store


def store_meta(path: str | Path | None = None) -> dict:
    """What the store was built from (its ``.json`` sidecar), or ``{}``."""
    path = (Path(path) if path is not None else paths().activations).with_suffix(".json")
    return load_json(path) if path.is_file() else {}


def params_key(params: dict) -> str:
    """A short stable hash of a parameter dict, to tell whether saved work can be reused."""
    return hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _from_capture(cap, layer: int, model_name: str, drop_first: bool) -> Store:
    keep = cap.positions > 0 if drop_first else np.ones(len(cap.positions), bool)
    return Store(acts=np.ascontiguousarray(cap.acts[keep], dtype=np.float32), token_ids=cap.token_ids[keep],
                 doc_ids=cap.doc_ids[keep], positions=cap.positions[keep], layer=int(layer), model=model_name)


def generations_and_store(model, tokenizer, prompts: pd.DataFrame, cfg, layer: int, *, progress: bool = True,
                          drop_first: bool = True) -> tuple[pd.DataFrame, Store]:
    """``generations.csv`` and ``activations.npz`` for these prompts, parameters and layer.

    * Saved generations made with the same parameters are reused (``generations.json`` records
      them), and so is a saved store made from them at the same layer. It says so.
    * New parameters: generate, capturing the layer during generation, and save both.
    * Same generations, other layer (or no store): capture the layer from the saved texts with
      the early-stopping capture (blocks 0..layer only).
    Every file is written atomically.
    """
    from helpers.generation import generate, generation_params, generations_frame
    from helpers.models import check_layer, model_name

    check_layer(model, layer)
    p = paths()
    gen_path, gen_meta = p.generations, p.generations.with_suffix(".json")
    key = params_key(generation_params(model, prompts, cfg))
    store_params = {"generations": key, "layer": int(layer), "drop_first": drop_first}
    if gen_path.is_file() and gen_meta.is_file() and load_json(gen_meta).get("key") == key:
        docs = pd.read_csv(gen_path, keep_default_na=False)
        print(f"reusing {len(docs)} generations from {gen_path.name}: same parameters (key {key}); "
              "change a parameter or delete the file to regenerate")
        meta = store_meta()
        if p.activations.is_file() and all(meta.get(k) == v for k, v in store_params.items()):
            store = load_store(model=model, layer=layer)
            print(f"reusing {p.activations.name}: {len(store):,} tokens at layer {layer}, made from these generations")
            return docs, store
        t0 = time.perf_counter()
        store = build_store(model, tokenizer, docs, layer, drop_first=drop_first, progress=progress)
        print(f"captured layer {layer} from the saved texts in {time.perf_counter() - t0:.1f} s")
    else:
        why = "no saved generations" if not gen_path.is_file() else "the parameters changed"
        print(f"generating {len(prompts) * cfg.samples_per_prompt} texts ({why}), capturing layer {layer} on the way ...")
        t0 = time.perf_counter()
        gen = generate(model, tokenizer, prompts["prompt"].tolist(), cfg, layer=layer, progress=progress)
        seconds = time.perf_counter() - t0
        docs = generations_frame(prompts, gen.documents)
        save_csv(gen_path, docs)
        save_json(gen_meta, {"key": key, "params": generation_params(model, prompts, cfg), "seconds": round(seconds, 1)})
        store = _from_capture(gen.capture, layer, model_name(model), drop_first)
        print(f"generated {len(docs)} texts in {seconds:.1f} s -> {gen_path.name}")
    save_store(store, meta=store_params)
    print(f"saved {p.activations.name}: {len(store):,} tokens x {store.d_model} (float32), layer {layer}")
    return docs, store


def ensure_store(model=None, tokenizer=None) -> Store:
    """The store, rebuilt through ``helpers`` at the active profile's size if it is missing.

    Later notebooks call this: when ``activations.npz`` is absent it reuses or makes the
    generations with notebook 02's default parameters and the layer notebook 01 chose, saying so.
    """
    path = paths().activations
    if path.is_file():
        return load_store(path, model=model)
    from helpers.config import active_profile
    from helpers.generation import GenerationConfig
    from helpers.layer_scan import load_chosen_layer
    from helpers.models import load_model
    from helpers.prompts import load_prompts

    prof = active_profile()
    print(f"{path.name} is missing: rebuilding it at the {prof.name} profile's size (what notebook 02 does) ...")
    try:
        layer = load_chosen_layer()
    except FileNotFoundError as err:
        raise FileNotFoundError(f"{err}; the store needs the layer notebook 01 chooses") from None
    if model is None or tokenizer is None:
        model, tokenizer = load_model()
    prompts = load_prompts(per_theme=prof.gen_prompts_per_theme)
    cfg = GenerationConfig(samples_per_prompt=prof.samples_per_prompt, max_new_tokens=prof.max_new_tokens, seed=prof.seed)
    return generations_and_store(model, tokenizer, prompts, cfg, layer)[1]


def tokens_per_doc(store: Store) -> pd.Series:
    """Number of stored tokens of each document, indexed by doc id."""
    return pd.Series(store.doc_ids).value_counts().sort_index().rename("tokens")


def plot_store_overview(store: Store, docs: pd.DataFrame):
    """Tokens per theme, and the distribution of token norms per theme."""
    import matplotlib.pyplot as plt

    from helpers.figures import theme_color

    theme_of = docs.set_index("doc_id")["theme"]
    themes = theme_of.reindex(store.doc_ids).to_numpy()
    norms = np.linalg.norm(store.acts, axis=1)
    order = list(dict.fromkeys(docs["theme"]))
    fig, (a, b) = plt.subplots(1, 2, figsize=(13, 3.8), gridspec_kw={"width_ratios": [1, 1.6]})
    counts = pd.Series(themes).value_counts().reindex(order)
    a.barh(order[::-1], counts.to_numpy()[::-1], color=[theme_color(t) for t in order[::-1]])
    a.set_xlabel("tokens in the store"); a.set_title(f"{len(store):,} tokens, {len(np.unique(store.doc_ids))} documents")
    bins = np.linspace(0, np.percentile(norms, 99.9), 80)
    for t in order:
        b.hist(norms[themes == t], bins=bins, histtype="step", lw=1.5, color=theme_color(t), label=t)
    b.set_yscale("log"); b.set_xlabel("token norm ||x||"); b.set_ylabel("tokens")
    b.set_title(f"layer {store.layer}: norm of each token's residual vector"); b.legend(fontsize=7)
    fig.tight_layout()
    return fig


def split_by_prompt(store: Store, docs: pd.DataFrame, eval_frac: float = 0.2, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Boolean masks (train, eval) over the store's rows, keeping every sample of a prompt on
    the same side: samples of one prompt share its tokens, whose residuals are identical, so a
    split by document would put training rows into the evaluation. ``eval_frac`` of each
    theme's prompts (at least one) go to eval, picked with ``seed``."""
    if not 0 < eval_frac < 1:
        raise ValueError(f"eval_frac must lie strictly between 0 and 1, got {eval_frac}")
    rng = np.random.default_rng(seed)
    eval_prompts = []
    for _, sub in docs.groupby("theme", sort=False):
        ids = np.unique(sub["prompt_id"])
        if len(ids) < 2:
            raise ValueError("each theme needs at least 2 prompts to split train/eval by prompt")
        n = min(len(ids) - 1, max(1, int(round(eval_frac * len(ids)))))
        eval_prompts.extend(rng.choice(ids, n, replace=False).tolist())
    eval_docs = docs.loc[docs["prompt_id"].isin(eval_prompts), "doc_id"].to_numpy()
    ev = np.isin(store.doc_ids, eval_docs)
    return ~ev, ev
