"""Does the model still work with the SAE in it? Next-token cross-entropy with the residual
stream at the SAE's layer replaced — by the SAE's reconstruction, by zeros, by its mean — and
the CE loss recovered score (CE_zero - CE_sae) / (CE_zero - CE_clean), ΔCE and the KL divergence
from the clean model's predictions.

The first token of each text (the attention sink, which the SAE never saw) is left as it is in
every intervention; only positions 1.. are replaced.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from transformers import PreTrainedTokenizerBase

from helpers.model.blocks import validate_layer
from helpers.model.capture import tokenize
from helpers.model.hooks import edit_block
from helpers.stats import Interval, bootstrap, group_bootstrap
from helpers.validate import context_length

Patch = Callable[[torch.Tensor], torch.Tensor] | None  # [n, d] -> [n, d]; None = clean


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
    max_length: int = 256,
) -> CEScores:
    """For each named patch (``None`` = clean): next-token CE over ``texts`` and the KL divergence
    KL(clean || patched), one row per text, in input order.

    Each text runs blocks 0..layer once and the rest once per patch, all patches in one batch
    (:func:`_run_fanout`). Every text is scored whole or refused, in one line, before anything runs,
    as the capture refuses it (:func:`helpers.model.capture.tokenize`): an empty text, one longer than
    ``max_length`` tokens (the capture's default, so every text of the store fits) or than the
    model's context (a cut text would be scored as if whole), and one of a single token (nothing to
    predict, so no row)."""
    layer = validate_layer(model, layer)
    all_ids = tokenize(tokenizer, texts, max_length, context_length(model))
    short = [i for i, ids in enumerate(all_ids) if len(ids) < 2]
    if short:
        i, more = short[0], f"; {len(short)} texts are under 2" if len(short) > 1 else ""
        raise ValueError(
            f"text {i} of {len(all_ids)} is {len(all_ids[i])} token long{more}: a score needs 2 or more "
            "(a next token to predict); drop it"
        )
    if "clean" not in patches:
        patches = {"clean": None, **patches}
    names = list(patches)
    dev = next(model.parameters()).device
    nll, kl, n_tok = [], [], []
    for text_ids in all_ids:
        ids = torch.as_tensor(text_ids, dtype=torch.long, device=dev).unsqueeze(0)
        lp = _run_fanout(model, ids, layer, [patches[n] for n in names])  # [P, T-1, V]
        target = ids[0, 1:]
        clean = lp[names.index("clean")]
        p_clean = clean.exp()
        n_tok.append(len(target))
        nll.append([float(-lp[p].gather(-1, target.unsqueeze(-1)).sum()) for p in range(len(names))])
        kl.append([float((p_clean * (clean - lp[p])).sum()) for p in range(len(names))])
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
