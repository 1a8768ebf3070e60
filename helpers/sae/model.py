"""Sparse autoencoders by architecture name, and their files.

One file per architecture carries its maths (:mod:`helpers.sae.l1`: Anthropic's April 2024 L1 recipe;
:mod:`helpers.sae.topk`: OpenAI's 2024 TopK with AuxK; :mod:`helpers.sae.batchtopk`,
:mod:`helpers.sae.jumprelu` and :mod:`helpers.sae.matryoshka`), on :mod:`helpers.sae.base`. This module maps
``SAEConfig.architecture`` to the class and saves and loads any of them.

All train on scaled inputs and fold the scale into the weights when saved, so a saved SAE
takes raw residual vectors. Weights go to safetensors in SAELens' layout and names
(``W_enc`` [d_in, d_sae], ``b_enc``, ``W_dec`` [d_sae, d_in], ``b_dec``, and ``threshold`` [d_sae] for
the thresholded ones) with a ``cfg.json``.
"""

from __future__ import annotations

import re
from dataclasses import asdict
from pathlib import Path

import torch

from helpers.config import SAEConfig
from helpers.files import commit, load_json, predates_process, save_json, verify, write_atomic
from helpers.sae.base import BaseSAE, sparse_decode
from helpers.sae.batchtopk import BatchTopKSAE
from helpers.sae.jumprelu import JumpReLUSAE
from helpers.sae.l1 import L1SAE
from helpers.sae.matryoshka import MatryoshkaSAE
from helpers.sae.topk import TopKSAE

__all__ = [
    "SAE_CLASSES",
    "BaseSAE",
    "BatchTopKSAE",
    "JumpReLUSAE",
    "L1SAE",
    "MatryoshkaSAE",
    "TopKSAE",
    "load_sae",
    "make_sae",
    "save_sae",
    "sparse_decode",
]


SAE_CLASSES: dict[str, type[BaseSAE]] = {
    "l1": L1SAE,
    "topk": TopKSAE,
    "batchtopk": BatchTopKSAE,
    "jumprelu": JumpReLUSAE,
    "matryoshka": MatryoshkaSAE,
}


def make_sae(cfg: SAEConfig) -> BaseSAE:
    cfg.validate()
    return SAE_CLASSES[cfg.architecture](cfg)


# --- save / load in SAELens' layout -------------------------------------------------------


def sae_lens_cfg(
    sae: BaseSAE, model_name: str, layer: int, hook_name: str | None = None, extra: dict | None = None
) -> dict:
    """The ``cfg.json`` fields SAELens reads, plus our training config under ``workbook``."""
    cfg = sae.cfg
    return {
        "architecture": sae.saelens_architecture,
        "d_in": cfg.d_in,
        "d_sae": cfg.d_sae,
        "dtype": "float32",
        "device": "cpu",
        "model_name": model_name,
        "hook_name": hook_name or f"blocks.{layer}.hook_resid_post",
        "hook_layer": layer,
        "hook_head_index": None,
        "activation_fn_str": sae.activation_fn,
        "activation_fn_kwargs": sae.activation_kwargs(),
        "apply_b_dec_to_input": sae.apply_b_dec_to_input,
        "finetuning_scaling_factor": False,
        "normalize_activations": "none",  # the input scaling is folded into the weights
        "context_size": 256,
        "dataset_path": "data/generations.csv",
        "prepend_bos": False,
        "sae_lens_training_version": None,
        "workbook": {**asdict(cfg), "d_sae": cfg.d_sae, **(extra or {})},
    }


WEIGHTS = "sae_weights.safetensors"
CFG = "cfg.json"
MARKER = "workbook_sae.json"  # written last: commits the weights + cfg.json pair


def _remove_safetensors_temps(folder: Path) -> None:
    """The ``.tmpXXXXXX`` files safetensors' ``save_file`` wrote here for an older workbook's save that was
    killed (ours: this folder holds SAE files only), older than this process."""
    for old in folder.glob(".tmp??????"):
        if re.fullmatch(r"\.tmp[A-Za-z0-9]{6}", old.name) and old.is_file() and predates_process(old):
            old.unlink(missing_ok=True)


def save_sae(sae: BaseSAE, folder: str | Path, cfg_json: dict, extra_files: dict | None = None) -> Path:
    """Write ``sae_weights.safetensors`` + ``cfg.json`` (scale folded first), then the marker
    ``workbook_sae.json`` naming both files' SHA-256 (and ``extra_files``: JSON-able objects saved
    beside them, e.g. a training log). The old marker goes first, so a kill mid-save leaves a
    folder that :func:`load_sae` refuses, never a new weights file with an old config. The weights
    are serialised in memory and written to a temp file of ours (safetensors' ``save_file`` would
    write its own ``.tmpXXXXXX``, which a kill -9 leaves behind); temps a killed save left go first."""
    from safetensors.torch import save

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    _remove_safetensors_temps(folder)
    (folder / MARKER).unlink(missing_ok=True)
    sae.fold_scale()
    data = save(sae.file_tensors())
    write_atomic(folder / WEIGHTS, lambda p: p.write_bytes(data), suffix=".safetensors")
    save_json(folder / CFG, cfg_json)
    names = [folder / WEIGHTS, folder / CFG]
    for name, obj in (extra_files or {}).items():
        save_json(folder / name, obj)
        names.append(folder / name)
    commit(folder / MARKER, names)
    return folder


def config_from_file(meta: dict, where: str) -> tuple[SAEConfig, bool]:
    """The :class:`SAEConfig` a ``cfg.json`` describes and its ``apply_b_dec_to_input``: our own
    ``workbook`` section when present, else SAELens' top-level fields (``standard`` = ReLU/L1,
    ``topk`` with its k). Anything else is refused in one line rather than loaded as a TopK."""
    arch = meta.get("architecture")
    if "workbook" in meta:
        wb = {k: v for k, v in meta["workbook"].items() if k in SAEConfig.__dataclass_fields__}
        cfg = SAEConfig(**wb)
        cls = SAE_CLASSES.get(cfg.architecture)
        want = cls.saelens_architecture if cls is not None else None
        if arch is not None and arch != want:
            raise ValueError(
                f"{where}: cfg.json says architecture {arch!r} but its workbook section {cfg.architecture!r}"
            )
        return cfg, meta.get("apply_b_dec_to_input", cls is not None and cls.apply_b_dec_to_input)
    if arch not in ("standard", "topk"):
        raise ValueError(
            f"{where}: architecture {arch!r} is not one this workbook runs (SAELens 'standard' or 'topk'); "
            "load it with SAELens instead"
        )
    if meta.get("normalize_activations", "none") not in ("none", None):
        raise ValueError(f"{where}: normalize_activations {meta['normalize_activations']!r} is not supported")
    d_in, d_sae = int(meta["d_in"]), int(meta["d_sae"])
    if d_sae % d_in:
        raise ValueError(f"{where}: d_sae {d_sae} is not a multiple of d_in {d_in}")
    if arch == "topk":
        k = meta.get("k", (meta.get("activation_fn_kwargs") or {}).get("k"))
        if k is None:
            raise ValueError(f"{where}: a topk SAE whose cfg.json gives no k")
        cfg = SAEConfig(architecture="topk", d_in=d_in, expansion=d_sae // d_in, k=int(k))
    else:
        cfg = SAEConfig(architecture="l1", d_in=d_in, expansion=d_sae // d_in)
    return cfg, bool(meta.get("apply_b_dec_to_input", arch == "topk"))


def load_sae(folder: str | Path, d_in: int | None = None) -> tuple[BaseSAE, dict]:
    """Load an SAE saved by :func:`save_sae` (or a SAELens ``standard`` / ``topk`` folder); with
    ``d_in`` given, check it matches. Refused with one line: a missing file, a pair that does not
    match its marker, an unreadable or truncated weights file, missing/extra/misshapen tensors,
    NaN or inf weights, an architecture this workbook does not run."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    folder = Path(folder)
    wpath, cpath = folder / WEIGHTS, folder / CFG
    if not (wpath.is_file() and cpath.is_file()):
        raise FileNotFoundError(
            f"no SAE in {folder} (need {CFG} and {WEIGHTS}); run notebooks/03_sae_training.ipynb first"
        )
    meta = load_json(cpath)
    if not isinstance(meta, dict):
        raise ValueError(f"{cpath} is not an SAE config; re-run notebook 03")
    if "workbook" in meta and verify(folder / MARKER) is None:
        raise ValueError(
            f"the SAE in {folder} does not match its marker {MARKER} (an interrupted save, or a file changed "
            "by hand); re-run notebook 03"
        )
    cfg, b_dec_in = config_from_file(meta, str(folder))
    if d_in is not None and cfg.d_in != d_in:
        raise ValueError(
            f"the SAE in {folder} reads d_in = {cfg.d_in} but the activations have {d_in}; retrain it "
            "(notebook 03) on these activations"
        )
    try:
        tensors = load_file(str(wpath))
    except (SafetensorError, OSError, ValueError) as err:
        raise ValueError(f"{wpath.name} in {folder} is unreadable ({err}); re-run notebook 03") from None
    sae = make_sae(cfg)
    sae.apply_b_dec_to_input = b_dec_in
    wanted = sae.file_tensors()
    if set(tensors) != set(wanted):
        missing, extra = sorted(set(wanted) - set(tensors)), sorted(set(tensors) - set(wanted))
        raise ValueError(
            f"{wpath.name} in {folder}: missing {missing}, unexpected {extra}; re-run notebook 03"
        )
    with torch.no_grad():
        for k, v in tensors.items():
            want = wanted[k]
            if v.shape != want.shape:
                raise ValueError(
                    f"{wpath.name}: {k} is {tuple(v.shape)}, the config implies {tuple(want.shape)}"
                )
            if not torch.isfinite(v).all():
                raise ValueError(f"{wpath.name} in {folder}: {k} holds NaN or inf; re-run notebook 03")
            sae.set_file_tensor(k, v)
    return sae.eval().requires_grad_(False), meta
