"""Does the model still work with the SAE in it? Next-token cross-entropy with the residual
stream at the SAE's layer replaced — by the SAE's reconstruction, by zeros, by its mean — and
the CE loss recovered score (CE_zero - CE_sae) / (CE_zero - CE_clean), ΔCE and the KL divergence
from the clean model's predictions.

The first token of each text (the attention sink, which the SAE never saw) is left as it is in
every intervention; only positions 1.. are replaced.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from transformers import PreTrainedTokenizerBase

from helpers.model.blocks import validate_layer
from helpers.model.capture import check_lengths
from helpers.model.hooks import edit_block
from helpers.stats import Interval, bootstrap, group_bootstrap
from helpers.validate import as_count, context_length

Patch = Callable[[torch.Tensor], torch.Tensor] | None  # [n, d] -> [n, d]; None = clean


@torch.inference_mode()
def _run(model, enc, layer: int, patch: Patch) -> torch.Tensor:
    """Log-probabilities [B, T-1, V] of each next token, with block ``layer``'s output patched."""
    ctx = nullcontext()
    if patch is not None:
        keep_first = enc["attention_mask"].cumsum(-1) == 1  # each row's first real token

        def edit(h: torch.Tensor) -> torch.Tensor:
            new = patch(h.reshape(-1, h.shape[-1])).reshape(h.shape).to(h.dtype)
            return torch.where(keep_first.unsqueeze(-1).to(h.device), h, new)

        ctx = edit_block(model, layer, edit)
    with ctx:
        logits = model(**enc, use_cache=False).logits[:, :-1].float()
    return torch.log_softmax(logits, -1)


@torch.inference_mode()
def _run_fanout(model, ids: torch.Tensor, layer: int, patches: list[Patch]) -> torch.Tensor:
    """One text (``ids`` [1, T]): run blocks 0..layer once, then fan the batch out to one copy
    per patch at block ``layer``'s output, so the later blocks run on all patches together.
    Returns log-probabilities [len(patches), T-1, V]. Relies on the masks and position
    embeddings of a batch of one broadcasting over the copies (true for llama and GPT-2)."""

    def fan_out(h: torch.Tensor) -> torch.Tensor:  # h [1, T, d] -> [len(patches), T, d]
        copies = []
        for patch in patches:
            if patch is None:
                copies.append(h)
            else:
                new = patch(h[0]).to(h.dtype).unsqueeze(0)
                copies.append(torch.cat([h[:, :1], new[:, 1:]], 1))  # the first token stays
        return torch.cat(copies, 0)

    with edit_block(model, layer, fan_out):
        logits = model(input_ids=ids, use_cache=False).logits[:, :-1].float()
    return torch.log_softmax(logits, -1)


@dataclass
class CEScores:
    """Next-token cross-entropy and KL(clean || patched), summed per text for each patch, so that
    means and bootstrap intervals over texts can both be taken."""

    names: list[str]
    nll: np.ndarray  # [n_texts, n_patches]: summed next-token NLL of each text
    kl: np.ndarray  # [n_texts, n_patches]: summed KL divergence from the clean predictions
    n_tokens: np.ndarray  # [n_texts]: predictions scored in each text

    @property
    def n_total(self) -> int:
        return int(self.n_tokens.sum())

    def table(self) -> dict[str, dict[str, float]]:
        """``{patch: {"ce": mean CE per token, "kl": mean KL per token}}`` over all texts."""
        n = max(self.n_total, 1)
        return {
            k: {"ce": float(self.nll[:, j].sum() / n), "kl": float(self.kl[:, j].sum() / n)}
            for j, k in enumerate(self.names)
        }


def ce_scores(
    model: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    texts: list[str],
    layer: int,
    patches: dict[str, Patch],
    batch_size: int = 8,
    max_length: int = 256,
    fanout: bool = True,
) -> CEScores:
    """For each named patch (``None`` = clean): next-token CE over ``texts`` and the KL divergence
    KL(clean || patched), per text (texts of fewer than 2 tokens are skipped).

    A text longer than ``max_length`` tokens (the capture's default, so every text of the store
    fits) or than the model's context is refused before anything runs, never cut: a cut text would
    be scored as if whole. With ``fanout`` (the default) each text runs blocks 0..layer once and
    the rest once per patch, in one batch; otherwise every patch is a separate padded forward pass."""
    validate_layer(model, layer)
    texts = list(texts)
    if any(not isinstance(t, str) for t in texts):
        raise ValueError("every text must be a string; drop the other rows first")
    batch_size = as_count(batch_size, "batch_size")
    all_ids = tokenizer(texts).input_ids if texts else []
    check_lengths([len(x) for x in all_ids], max_length, context_length(model))
    if "clean" not in patches:
        patches = {"clean": None, **patches}
    names = list(patches)
    dev = next(model.parameters()).device
    nll, kl, n_tok = [], [], []
    if fanout:
        for text_ids in all_ids:
            if len(text_ids) < 2:
                continue
            ids = torch.tensor([text_ids], dtype=torch.long, device=dev)
            lp = _run_fanout(model, ids, layer, [patches[n] for n in names])  # [P, T-1, V]
            target = ids[0, 1:]
            clean = lp[names.index("clean")]
            p_clean = clean.exp()
            n_tok.append(len(target))
            nll.append([float(-lp[p].gather(-1, target.unsqueeze(-1)).sum()) for p in range(len(names))])
            kl.append([float((p_clean * (clean - lp[p])).sum()) for p in range(len(names))])
    else:
        old = tokenizer.padding_side
        tokenizer.padding_side = "right"
        lengths = [len(ids) for ids in all_ids]
        keep = [
            int(i) for i in np.argsort(lengths, kind="stable") if lengths[i] >= 2
        ]  # similar lengths together
        texts = [texts[i] for i in keep]
        try:
            for i in range(0, len(texts), batch_size):
                enc = tokenizer(
                    texts[i : i + batch_size],
                    return_tensors="pt",
                    padding=True,
                ).to(dev)
                valid = enc["attention_mask"][:, 1:].bool()  # [B, T-1]
                target = enc["input_ids"][:, 1:].unsqueeze(-1)
                clean = _run(model, enc, layer, None)  # [B, T-1, V]
                p_clean = clean.exp()
                n_tok.extend(valid.sum(1).tolist())
                per = []
                for patch in patches.values():
                    lp = clean if patch is None else _run(model, enc, layer, patch)
                    tok_nll = (-lp.gather(-1, target).squeeze(-1) * valid).sum(1)
                    tok_kl = ((p_clean * (clean - lp)).sum(-1) * valid).sum(1)
                    per.append((tok_nll, tok_kl))
                nll.extend(torch.stack([a for a, _ in per], 1).tolist())
                kl.extend(torch.stack([b for _, b in per], 1).tolist())
        finally:
            tokenizer.padding_side = old
        back = np.argsort(keep)  # rows in the texts' input order, as the fan-out path gives them
        nll, kl, n_tok = [nll[i] for i in back], [kl[i] for i in back], [n_tok[i] for i in back]
    shape = (len(n_tok), len(names))
    return CEScores(
        names=names,
        nll=np.asarray(nll, dtype=np.float64).reshape(shape),
        kl=np.asarray(kl, dtype=np.float64).reshape(shape),
        n_tokens=np.asarray(n_tok, dtype=np.int64),
    )


def _resample(stat, scores: CEScores, n_boot: int, seed: int, groups: np.ndarray | None) -> Interval:
    if groups is None:
        return bootstrap(stat, len(scores.n_tokens), n_boot=n_boot, seed=seed)
    if len(groups) != len(scores.n_tokens):
        raise ValueError(f"{len(groups)} group labels for {len(scores.n_tokens)} texts; pass one per text")
    return group_bootstrap(stat, groups, n_boot=n_boot, seed=seed)


def ce_recovered_interval(
    scores: CEScores,
    patch: str,
    baseline: str,
    n_boot: int = 2000,
    seed: int = 0,
    groups: np.ndarray | None = None,
) -> Interval:
    """CE loss recovered by ``patch`` against ``baseline`` ("zero" or "mean" ablation) with a
    bootstrap 95% interval (each resample re-sums CE over the drawn texts). With ``groups`` (each text's
    prompt) whole prompts are resampled — the samples of one prompt are not independent — and ``n`` is the
    number of prompts; without, the texts."""
    j = {name: scores.names.index(name) for name in ("clean", patch, baseline)}

    def stat(idx: np.ndarray) -> float:
        nll = scores.nll[idx].sum(0) / scores.n_tokens[idx].sum()
        return ce_loss_recovered(nll[j["clean"]], nll[j[patch]], nll[j[baseline]])

    return _resample(stat, scores, n_boot, seed, groups)


def ce_delta_interval(
    scores: CEScores, patch: str, n_boot: int = 2000, seed: int = 0, groups: np.ndarray | None = None
) -> Interval:
    """ΔCE = CE with ``patch`` - clean CE (nats per predicted token) with a bootstrap 95% interval over
    the texts, or over whole ``groups`` (each text's prompt)."""
    j, c = scores.names.index(patch), scores.names.index("clean")

    def stat(idx: np.ndarray) -> float:
        return float((scores.nll[idx, j].sum() - scores.nll[idx, c].sum()) / scores.n_tokens[idx].sum())

    return _resample(stat, scores, n_boot, seed, groups)


def ce_recovered_difference(
    scores: CEScores,
    a: str,
    b: str,
    baseline: str,
    n_boot: int = 2000,
    seed: int = 0,
    groups: np.ndarray | None = None,
) -> Interval:
    """CE loss recovered by patch ``a`` minus that of ``b`` (same texts, paired), with a bootstrap
    95% interval over the texts, or over whole ``groups`` (each text's prompt): "a beats b" only when the
    interval excludes 0."""
    j = {name: scores.names.index(name) for name in ("clean", a, b, baseline)}

    def stat(idx: np.ndarray) -> float:
        nll = scores.nll[idx].sum(0) / scores.n_tokens[idx].sum()
        rec = {x: ce_loss_recovered(nll[j["clean"]], nll[j[x]], nll[j[baseline]]) for x in (a, b)}
        return rec[a] - rec[b]

    return _resample(stat, scores, n_boot, seed, groups)


def ce_loss_recovered(ce_clean: float, ce_sae: float, ce_ablated: float) -> float:
    """(CE_ablated - CE_sae) / (CE_ablated - CE_clean): 1 = the SAE loses nothing, 0 = as bad as the
    ablation (replacing the whole residual stream at the layer by zeros, or by its mean)."""
    return float((ce_ablated - ce_sae) / (ce_ablated - ce_clean))


def sae_patch(sae) -> Patch:
    dev = sae.W_enc.device
    return lambda h: sae(h.to(dev).float()).to(h.device)


def const_patch(vec: np.ndarray | float) -> Patch:
    """Replace every vector by ``vec`` (zero-ablation with 0, mean-ablation with the mean)."""
    return lambda h: torch.as_tensor(vec, dtype=h.dtype, device=h.device).expand_as(h).clone()
