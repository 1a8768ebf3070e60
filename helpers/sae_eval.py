"""Does the model still work with the SAE in it? Next-token cross-entropy with the residual
stream at the SAE's layer replaced — by the SAE's reconstruction, by zeros, by its mean — and
the CE loss recovered score (CE_zero - CE_sae) / (CE_zero - CE_clean), ΔCE and the KL divergence
from the clean model's predictions.

The first token of each text (the attention sink, which the SAE never saw) is left as it is in
every intervention; only positions 1.. are replaced.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from helpers.models import check_layer, get_blocks

Patch = Callable[[torch.Tensor], torch.Tensor] | None  # [n, d] -> [n, d]; None = clean


@torch.inference_mode()
def _run(model, enc, layer: int, patch: Patch) -> torch.Tensor:
    """Log-probabilities [B, T-1, V] of each next token, with block ``layer``'s output patched."""
    handle = None
    if patch is not None:
        keep_first = enc["attention_mask"].cumsum(-1) == 1  # each row's first real token

        def hook(_m, _i, out):
            h = out[0] if isinstance(out, tuple) else out
            flat = h.reshape(-1, h.shape[-1])
            new = patch(flat).reshape(h.shape).to(h.dtype)
            new = torch.where(keep_first.unsqueeze(-1).to(h.device), h, new)
            return (new, *out[1:]) if isinstance(out, tuple) else new

        handle = get_blocks(model)[layer].register_forward_hook(hook)
    try:
        logits = model(**enc, use_cache=False).logits[:, :-1].float()
    finally:
        if handle is not None:
            handle.remove()
    return torch.log_softmax(logits, -1)


@torch.inference_mode()
def _run_fanout(model, ids: torch.Tensor, layer: int, patches: list[Patch]) -> torch.Tensor:
    """One text (``ids`` [1, T]): run blocks 0..layer once, then fan the batch out to one copy
    per patch at block ``layer``'s output, so the later blocks run on all patches together.
    Returns log-probabilities [len(patches), T-1, V]. Relies on the masks and position
    embeddings of a batch of one broadcasting over the copies (true for llama and GPT-2)."""

    def hook(_m, _i, out):
        h = out[0] if isinstance(out, tuple) else out  # [1, T, d]
        copies = []
        for patch in patches:
            if patch is None:
                copies.append(h)
            else:
                new = patch(h[0]).to(h.dtype).unsqueeze(0)
                copies.append(torch.cat([h[:, :1], new[:, 1:]], 1))  # the first token stays
        new = torch.cat(copies, 0)
        return (new, *out[1:]) if isinstance(out, tuple) else new

    handle = get_blocks(model)[layer].register_forward_hook(hook)
    try:
        logits = model(input_ids=ids, use_cache=False).logits[:, :-1].float()
    finally:
        handle.remove()
    return torch.log_softmax(logits, -1)


def ce_scores(model, tokenizer, texts: list[str], layer: int, patches: dict[str, Patch], batch_size: int = 8,
              max_length: int = 128, fanout: bool = True) -> dict[str, dict[str, float]]:
    """For each named patch (``None`` = clean): mean next-token CE over ``texts`` and the mean KL
    divergence KL(clean || patched) per token.

    With ``fanout`` (the default) each text runs blocks 0..layer once and the rest once per
    patch, in one batch; otherwise every patch is a separate padded forward pass."""
    check_layer(model, layer)
    if "clean" not in patches:
        patches = {"clean": None, **patches}
    names = list(patches)
    dev = next(model.parameters()).device
    sums = {k: [0.0, 0.0] for k in patches}
    n_tok = 0
    if fanout:
        for text in texts:
            ids = tokenizer(text, return_tensors="pt", truncation=True, max_length=max_length)["input_ids"].to(dev)
            if ids.shape[1] < 2:
                continue
            lp = _run_fanout(model, ids, layer, [patches[n] for n in names])  # [P, T-1, V]
            target = ids[0, 1:]
            clean = lp[names.index("clean")]
            p_clean = clean.exp()
            n_tok += len(target)
            for p, name in enumerate(names):
                sums[name][0] += float(-lp[p].gather(-1, target.unsqueeze(-1)).sum())
                sums[name][1] += float((p_clean * (clean - lp[p])).sum())
        return {k: {"ce": v[0] / n_tok, "kl": v[1] / n_tok} for k, v in sums.items()} | {"_tokens": {"n": n_tok}}
    old = tokenizer.padding_side
    tokenizer.padding_side = "right"
    lengths = [len(ids) for ids in tokenizer(texts, truncation=True, max_length=max_length).input_ids]
    texts = [texts[i] for i in np.argsort(lengths, kind="stable")]  # similar lengths batch together
    try:
        for i in range(0, len(texts), batch_size):
            enc = tokenizer(texts[i : i + batch_size], return_tensors="pt", padding=True, truncation=True, max_length=max_length).to(dev)
            valid = enc["attention_mask"][:, 1:].bool()
            target = enc["input_ids"][:, 1:][valid]
            clean = _run(model, enc, layer, None)[valid]  # [n_valid, V]
            p_clean = clean.exp()
            n_tok += int(valid.sum())
            for name, patch in patches.items():
                lp = clean if patch is None else _run(model, enc, layer, patch)[valid]
                sums[name][0] += float(-lp.gather(-1, target.unsqueeze(-1)).sum())
                sums[name][1] += float((p_clean * (clean - lp)).sum())
    finally:
        tokenizer.padding_side = old
    return {k: {"ce": v[0] / n_tok, "kl": v[1] / n_tok} for k, v in sums.items()} | {"_tokens": {"n": n_tok}}


def ce_loss_recovered(ce_clean: float, ce_sae: float, ce_zero: float) -> float:
    """(CE_zero - CE_sae) / (CE_zero - CE_clean): 1 = the SAE loses nothing, 0 = as bad as zeroing."""
    return float((ce_zero - ce_sae) / (ce_zero - ce_clean))


def sae_patch(sae) -> Patch:
    dev = sae.W_enc.device
    return lambda h: sae(h.to(dev).float()).to(h.device)


def const_patch(vec: np.ndarray | float) -> Patch:
    """Replace every vector by ``vec`` (zero-ablation with 0, mean-ablation with the mean)."""
    return lambda h: torch.as_tensor(vec, dtype=h.dtype, device=h.device).expand_as(h).clone()
