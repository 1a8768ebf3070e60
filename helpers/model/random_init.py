"""A randomly initialised copy of a model: the control of Heap et al. (2025), "Sparse Autoencoders Can
Interpret Randomly Initialized Transformers" (arXiv 2501.17727).

They trained SAEs on the residual stream of transformers whose weights were drawn at random (never
trained on text) and found the latents about as interpretable, by an automatic-interpretability
pipeline, as those of SAEs on the trained model, with similar SAE quality metrics. So a readability
score that an SAE on a *random* model also reaches says little about what the trained model has
learned: it may come from the tokens and the architecture alone (a random network still maps the same
token to a similar vector in a similar context). The control this module serves asks: trained on the
same texts, with the same recipe and budget, how much more readable are the trained model's SAE
features than a random model's?

The tokenizer is unchanged: the random model reads the same token ids.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

RANDOM_PREFIX = "random-init"  # the start of a random copy's name (its config's name_or_path)


def _check_model(model: object) -> nn.Module:
    """``model`` as a transformers model built from a config, or one ``ValueError`` line."""
    cls = type(model)
    if not isinstance(model, nn.Module) or not hasattr(model, "config"):
        raise ValueError(
            f"random_like takes a transformers model (load_model()[0]), got {cls.__name__}; pass the model"
        )
    if not cls.__module__.startswith("transformers."):
        raise ValueError(
            f"{cls.__name__} comes from {cls.__module__}, not from transformers: random_like builds only "
            "transformers' own classes (never remote code); load a model transformers knows"
        )
    return model


def random_like(model: nn.Module, seed: int = 0, keep_embeddings: bool = False) -> nn.Module:
    """A new model of ``model``'s class and config with freshly initialised weights, as transformers
    initialises a model built from its config (normal with std ``config.initializer_range``, norms at 1,
    biases at 0), drawn from ``seed`` (the same seed gives the same weights; the global torch RNG is left
    as it was). In eval mode, with ``model``'s dtype and device.

    ``keep_embeddings=True`` copies the trained token embeddings (and so the LM head where it is tied to
    them, as in SmolLM2 and GPT-2): the blocks are random but tokens start from their trained vectors.
    Position embeddings (GPT-2) and an untied LM head stay random. The copy's ``name_or_path`` is
    ``random-init-seed<seed>[-trained-embeddings]``, so a store captured from it, and an SAE trained on
    that store, name a model other than the trained one (``check_match`` then refuses to mix them)."""
    model = _check_model(model)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a whole number >= 0, got {seed!r}")
    param = next(model.parameters())
    config = copy.deepcopy(model.config)
    config._name_or_path = f"{RANDOM_PREFIX}-seed{seed}" + ("-trained-embeddings" if keep_embeddings else "")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        fresh = type(model)(config)
    if keep_embeddings:
        with torch.no_grad():
            fresh.get_input_embeddings().weight.copy_(model.get_input_embeddings().weight.to(torch.float32))
    fresh.to(device=param.device, dtype=param.dtype)
    return fresh.eval()


def is_random_copy(model: nn.Module) -> bool:
    """Whether ``model`` was made by :func:`random_like` (its name says so)."""
    return str(getattr(model.config, "_name_or_path", "")).startswith(RANDOM_PREFIX)
