"""The pipeline of notebook 02: prompts -> generations -> the activation store at one layer.

:func:`generations_and_store` reuses what an earlier run with the same parameters made, and
:func:`ensure_store` is what later notebooks call when the store is missing: it rebuilds it at the
active profile's size with the profile's generation config (:mod:`helpers.config`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
from torch import nn
from transformers import PreTrainedTokenizerBase

from helpers.config import GenerationConfig, Profile, active_profile, paths
from helpers.data.corpus import corpus_meta, load_corpus
from helpers.data.generation import generate, generation_params, generations_frame
from helpers.data.layer_scan import load_chosen_layer, recommend_layer, save_scan, scan_layers
from helpers.data.prompts import load_prompts
from helpers.data.split import split_by_prompt
from helpers.data.store import (
    Store,
    build_store,
    drop_repeated_prompts,
    from_capture,
    load_store,
    save_store,
    store_key,
    store_meta,
)
from helpers.files import commit, params_key, save_csv, verify
from helpers.model.blocks import n_layers, validate_layer
from helpers.model.capture import capture_all_layers
from helpers.model.loading import load_model, model_name


def generations_and_store(
    model: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    prompts: pd.DataFrame,
    cfg: GenerationConfig,
    layer: int,
    *,
    progress: bool = True,
    drop_first: bool = True,
) -> tuple[pd.DataFrame, Store]:
    """``generations.csv`` and ``activations.npz`` for these prompts, parameters and layer.

    * Saved generations made with the same parameters are reused (``generations.json`` records
      them), and so is a saved store made from them at the same layer. It says so.
    * New parameters: generate, capturing the layer during generation, and save both.
    * Same generations, other layer (or no store): capture the layer from the saved texts with
      the early-stopping capture (blocks 0..layer only).
    Every file is written atomically.
    """
    layer = validate_layer(model, layer)
    p = paths()
    gen_path = p.generations
    params = generation_params(model, prompts, cfg)
    key = params_key(params)
    store_params = {"generations": key, "layer": int(layer), "drop_first": drop_first, "dedup": True}
    docs = load_generations(key)
    if docs is not None:
        print(
            f"reusing {len(docs)} generations from {gen_path.name}: same parameters (key {key}); "
            "change a parameter or delete the file to regenerate"
        )
        meta = store_meta()
        if meta and all(meta.get(k) == v for k, v in store_params.items()):
            try:
                store = load_store(model=model, layer=layer)
            except ValueError as err:
                print(f"not reusing {p.activations.name}: {err}")
            else:
                print(
                    f"reusing {p.activations.name}: {len(store):,} tokens at layer {layer}, made from these "
                    "generations"
                )
                return docs, store
        t0 = time.perf_counter()
        store = build_store(model, tokenizer, docs, layer, drop_first=drop_first, progress=progress)
        print(f"captured layer {layer} from the saved texts in {time.perf_counter() - t0:.1f} s")
    else:
        why = (
            "no saved generations"
            if not gen_path.is_file()
            else "the parameters changed or the files do not match"
        )
        print(
            f"generating {len(prompts) * cfg.samples_per_prompt} texts ({why}), capturing layer {layer} on "
            "the way ..."
        )
        t0 = time.perf_counter()
        gen = generate(model, tokenizer, prompts["prompt"].tolist(), cfg, layer=layer, progress=progress)
        seconds = time.perf_counter() - t0
        docs = with_prompt_tokens(generations_frame(prompts, gen.documents), prompts, tokenizer, cfg)
        save_generations(docs, {"key": key, "params": params, "seconds": round(seconds, 1)})
        store = from_capture(gen.capture, layer, model_name(model), drop_first)
        print(f"generated {len(docs)} texts in {seconds:.1f} s -> {gen_path.name}")
    n_all = len(store)
    store = drop_repeated_prompts(store, docs)
    save_store(store, meta=store_params, n_layers=n_layers(model))
    print(
        f"saved {p.activations.name}: {len(store):,} tokens x {store.d_model} (float32), layer {layer} "
        f"({n_all - len(store):,} repeated prompt tokens of later samples left out)"
    )
    return docs, store


def with_prompt_tokens(
    docs: pd.DataFrame, prompts: pd.DataFrame, tokenizer: PreTrainedTokenizerBase, cfg: GenerationConfig
) -> pd.DataFrame:
    """``docs`` with a ``prompt_tokens`` column: how many tokens of each document are its prompt's."""
    enc = tokenizer(prompts["prompt"].tolist(), add_special_tokens=not cfg.chat_template)["input_ids"]
    n = dict(zip(prompts["id"].astype(int), map(len, enc), strict=True))
    return docs.assign(prompt_tokens=docs["prompt_id"].map(n).astype(int))


def save_generations(docs: pd.DataFrame, meta: dict) -> None:
    """``generations.csv``, then its marker ``generations.json`` (``meta`` + the csv's SHA-256)."""
    path = paths().generations
    save_csv(path, docs)
    commit(path.with_suffix(".json"), [path], meta)


def load_generations(key: str | None = None) -> pd.DataFrame | None:
    """The saved generations if the csv matches its marker (and the marker's key is ``key``)."""
    path = paths().generations
    meta = verify(path.with_suffix(".json"))
    if meta is None or (key is not None and meta.get("key") != key):
        return None
    docs = pd.read_csv(path, keep_default_na=False)
    return docs if "prompt_tokens" in docs.columns else None  # written before prompts were de-duplicated


def ensure_chosen_layer(
    model: nn.Module | None = None, tokenizer: PreTrainedTokenizerBase | None = None
) -> int:
    """The layer notebook 01 recommended; when ``layer_scan.json`` is missing, run the scan through
    ``helpers`` at the active profile's size (what notebook 01 does, ~10 s), save it and say so."""
    try:
        return load_chosen_layer()
    except FileNotFoundError:
        pass
    prof = active_profile()
    print(
        f"{paths().layer_scan.name} is missing: scanning the layers at the {prof.name} profile's size "
        f"(notebook 01) ..."
    )
    if model is None or tokenizer is None:
        model, tokenizer = load_model()
    prompts = load_prompts(per_theme=prof.scan_prompts_per_theme)
    cap = capture_all_layers(model, tokenizer, prompts["prompt"].tolist(), progress=False)
    scan = scan_layers(cap.acts, cap.positions, cap.doc_ids, prompts["theme"].to_numpy(), seed=prof.seed)
    rec = recommend_layer(scan)
    save_scan(scan, rec, model_name(model), len(prompts))
    print(f"recommended {rec.reason}")
    return rec.layer


def ensure_store(model: nn.Module | None = None, tokenizer: PreTrainedTokenizerBase | None = None) -> Store:
    """The store, rebuilt through ``helpers`` at the active profile's size if it is missing.

    Later notebooks call this: when ``activations.npz`` is absent (or does not match its marker) it
    reuses or makes the generations with the profile's generation config and the layer notebook 01
    chose (scanning the layers first if ``layer_scan.json`` is missing too), saying so.
    """
    path = paths().activations
    why = "is missing"
    if path.is_file():
        try:
            return load_store(path, model=model)
        except ValueError as err:
            why = f"cannot be used ({err})"
    prof = active_profile()
    print(f"{path.name} {why}: rebuilding it at the {prof.name} profile's size (what notebook 02 does) ...")
    if model is None or tokenizer is None:
        model, tokenizer = load_model()
    layer = ensure_chosen_layer(model, tokenizer)
    prompts = load_prompts(per_theme=prof.gen_prompts_per_theme)
    return generations_and_store(model, tokenizer, prompts, prof.generation, layer)[1]


def corpus_store(
    model: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    layer: int,
    n_docs: int | None = None,
    *,
    batch_size: int = 16,
    progress: bool = True,
) -> tuple[pd.DataFrame, Store]:
    """The training corpus's documents (its first ``n_docs``, or all) and their residual stream at
    ``layer`` (``corpus_activations.npz``, float16 on disk), captured from the committed text with
    the early-stopping capture (blocks 0..layer only). Reused when the corpus, ``n_docs`` and the
    layer are unchanged, saying so; first tokens (the attention sink) left out as in the store. The rows
    are float32 holding float16 values either way: a fresh capture is rounded as the file saves it, so a
    key that is the same on every run names the same rows."""
    layer = validate_layer(model, layer)
    docs = load_corpus(n_docs)
    path = paths().corpus_store
    want = {
        "corpus": corpus_meta()["files"][paths().corpus.name]["sha256"][:16],
        "n_docs": len(docs),
        "layer": layer,
        "drop_first": True,
    }
    meta = store_meta(path)
    if meta and all(meta.get(k) == v for k, v in want.items()):
        try:
            store = load_store(path, model=model, layer=layer)
        except ValueError as err:
            print(f"not reusing {path.name}: {err}")
        else:
            took = (
                f" (captured in {meta['capture_seconds']:.1f} s when made)"
                if "capture_seconds" in meta
                else ""
            )
            print(
                f"reusing {path.name}: {len(store):,} tokens of {len(docs):,} corpus documents at layer "
                f"{layer}{took}"
            )
            return docs, store
    t0 = time.perf_counter()
    store = build_store(model, tokenizer, docs, layer, batch_size=batch_size, progress=progress)
    seconds = time.perf_counter() - t0
    save_store(
        store,
        path,
        meta={**want, "capture_seconds": round(seconds, 1)},
        n_layers=n_layers(model),
        dtype="float16",
    )
    print(
        f"captured layer {layer} of {len(docs):,} corpus documents: {len(store):,} tokens in {seconds:.1f} s "
        f"({len(store) / seconds:,.0f} tokens/s) -> {path.name} (float16)"
    )
    store.acts = store.acts.astype(np.float16).astype(np.float32)  # as reloading the file gives them
    return docs, store


@dataclass(frozen=True)
class TrainingRows:
    """What an SAE of notebook 03 trains and is judged on: both stores split by prompt.

    ``X_train`` is the corpus's training rows then the analysis set's, ``train_docs`` their document
    ids in one id space (corpus ids + 1,000,000); ``X_eval`` the held-out analysis rows (the headline
    numbers), ``X_eval_corpus`` the held-out corpus rows, ``eval_docs`` the held-out analysis
    documents. Rows are float32; corpus rows are rounded to float16 as the corpus store saves them,
    also on the run that captures it, so a key always names the same rows. ``data_key`` names the data
    in :func:`helpers.sae.train.train_or_load`'s cache: the same stores and split give the same key,
    so saved runs are reused."""

    store: Store  # the analysis set (notebooks 04-06 read it)
    docs: pd.DataFrame  # its generations
    corpus: Store  # the training corpus's store
    corpus_docs: pd.DataFrame
    train_mask: np.ndarray  # over store rows
    eval_mask: np.ndarray
    corpus_train: np.ndarray  # over corpus rows
    corpus_eval: np.ndarray
    X_train: np.ndarray
    train_docs: np.ndarray
    X_eval: np.ndarray
    X_eval_corpus: np.ndarray
    eval_docs: np.ndarray
    data_key: str


def training_rows(
    model: nn.Module, tokenizer: PreTrainedTokenizerBase, profile: Profile, *, progress: bool = True
) -> TrainingRows:
    """The training and held-out rows of notebook 03, for ``profile``'s sizes and split.

    The analysis store (rebuilt if missing, :func:`ensure_store`) and the corpus store (its first
    ``profile.corpus_docs`` documents, :func:`corpus_store`) are each split by prompt
    (``profile.eval_frac`` of each theme's prompts, ``profile.corpus_eval_frac`` of each domain's,
    drawn with ``profile.seed``). One definition for notebook 03, the later notebooks that train
    beside its SAE, and the bench, so they all train on the same rows under the same cache key."""
    store = ensure_store(model, tokenizer)
    docs = load_generations()
    if docs is None:
        raise ValueError(
            f"{paths().generations.name} is missing or does not match its marker; re-run notebook 02"
        )
    corpus_docs, corpus = corpus_store(model, tokenizer, store.layer, profile.corpus_docs, progress=progress)
    seed, eval_frac, corpus_frac = profile.seed, profile.eval_frac, profile.corpus_eval_frac
    train_mask, eval_mask = split_by_prompt(store, docs, eval_frac, seed=seed)
    c_train, c_eval = split_by_prompt(corpus, corpus_docs, corpus_frac, seed=seed)
    # the corpus rows hold float16 values (corpus_store rounds a fresh capture as the file saves it)
    X_train = np.concatenate([corpus.acts[c_train], store.acts[train_mask]]).astype(np.float32, copy=False)
    train_docs = np.concatenate([corpus.doc_ids[c_train] + 1_000_000, store.doc_ids[train_mask]])
    data_key = f"{store_key()}+{store_key(paths().corpus_store)}|split{seed}-{eval_frac}-{corpus_frac}"
    return TrainingRows(
        store=store,
        docs=docs,
        corpus=corpus,
        corpus_docs=corpus_docs,
        train_mask=train_mask,
        eval_mask=eval_mask,
        corpus_train=c_train,
        corpus_eval=c_eval,
        X_train=X_train,
        train_docs=train_docs,
        X_eval=store.acts[eval_mask],
        X_eval_corpus=corpus.acts[c_eval].astype(np.float32, copy=False),
        eval_docs=np.unique(store.doc_ids[eval_mask]),
        data_key=data_key,
    )
