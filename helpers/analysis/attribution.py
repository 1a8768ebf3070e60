"""Which SAE features made this prediction: attribution by activation × gradient, checked by ablation.

The SAE is spliced into the model at block ``layer``: its output h becomes x̂(f) + e, with
f = sae.encode(h), x̂(f) = sae.decode(f) and the error e = h − x̂(f) held fixed (a constant, no
gradient through it). The spliced model computes exactly what the model computes (x̂ + h − x̂ = h),
but now the prediction is a function of the feature activations f, made a leaf tensor that
requires grad. For a metric m (a next-token logit at the last position, or the difference of
two logits) the attribution of feature i is

    a_i = Σ_t f_{t,i} · ∂m/∂f_{t,i}

(activation × gradient, summed over positions): the first-order Taylor estimate of how much m
falls when f_i is set to 0 at every position, m(f) − m(f with f_i = 0) ≈ a_i. One backward pass
gives it for every feature at once; :func:`ablation_effects` measures the real drop, one batch
row per ablated feature, to check it.

What is held fixed, and why it matters: the error term e (so the SAE's misses stay in the
stream, and the metric is unchanged by the splice) and, for a TopK SAE, the set of active
latents: f is the leaf *after* the top-k selection, so the gradient never sees the selection,
and an ablation zeroes f_i without re-running it (no other latent moves up into the top k). The
first token is left out by default (``skip_first``): its residual is the attention sink, many
times larger than the others, and the SAE was trained without it (the store drops it).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import nn

from helpers.model.blocks import accepts, validate_layer
from helpers.model.hooks import edit_block
from helpers.sae.model import BaseSAE
from helpers.stats import Interval, bootstrap, group_bootstrap
from helpers.validate import as_count, as_finite, as_index, context_length, token_limit


def attribute(f: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    """Per-feature attribution [d_sae] from activations ``f`` and gradients ``grad`` [T, d_sae]:
    Σ over positions of f · ∂m/∂f (the first-order estimate of m's drop when the feature is removed)."""
    return (f * grad).sum(0)


@dataclass(frozen=True)
class Attribution:
    """One prompt's attribution. ``scores`` [d_sae] is a_i; ``acts`` [d_sae] is Σ_t f_{t,i} and
    ``fires`` [d_sae] the number of spliced positions where feature i is active; ``error`` is the
    error term's own attribution Σ_t e_t · ∂m/∂e_t (what the SAE leaves unexplained)."""

    prompt: str
    input_ids: tuple[int, ...]
    target: int
    target_text: str
    contrast: int | None
    contrast_text: str | None
    metric: float  # logit of target (minus logit of contrast) at the last position, clean model
    scores: np.ndarray
    acts: np.ndarray
    fires: np.ndarray
    error: float
    layer: int
    skip_first: bool

    def top(self, n: int = 10) -> pd.DataFrame:
        """The ``n`` features with the largest |attribution| (active features only), largest first."""
        n = as_count(n, "n")
        active = np.flatnonzero(self.fires > 0)
        order = active[np.argsort(-np.abs(self.scores[active]), kind="stable")][:n]
        return pd.DataFrame(
            {
                "feature": order,
                "attribution": self.scores[order],
                "activation": self.acts[order],
                "positions": self.fires[order],
            }
        )

    @property
    def metric_name(self) -> str:
        if self.contrast is None:
            return f"logit of {self.target_text!r}"
        return f"logit {self.target_text!r} − logit {self.contrast_text!r}"


# --- inputs --------------------------------------------------------------------------------------


def vocab_size(model: nn.Module) -> int:
    return int(model.get_output_embeddings().weight.shape[0])


# Attribution keeps every block's activations for its backward pass, so its memory grows with the prompt:
# measured on SmolLM2-135M's architecture (CPU, float32, SAE at layer 16) the peak above the model grows
# linearly, ~1.3 MiB per token (0.34 GiB at 256 tokens, 1.3 at 1,024, 2.6 at 2,048, 5.3 at 4,096, which took
# 60 s on 2 busy cores). 11,006 tokens would need ~14 GiB on top of the model and the notebook's data, and
# failed to allocate on a 24 GB machine; the model's whole 8,192-token context would need ~10.5 GiB. 2,048
# tokens (a page and a half of text) keeps one prompt under ~3 GiB and ~30 s, with room for the rest.
MAX_ATTRIBUTION_TOKENS = 2048
_PER_TOKEN = "attribution's backward pass holds ~1.3 MiB per token"


def prompt_limit(model: nn.Module, backward: bool = True) -> tuple[int | None, str]:
    """The most tokens a prompt may have, and why: the model's context, and for attribution (a
    backward pass) at most :data:`MAX_ATTRIBUTION_TOKENS`, what fits in memory."""
    context = context_length(model)
    if backward and (context is None or MAX_ATTRIBUTION_TOKENS < context):
        return MAX_ATTRIBUTION_TOKENS, _PER_TOKEN
    return context, "" if context is None else f"the model's context is {context:,} tokens"


def encode_prompt(
    tokenizer, prompt: object, skip_first: bool = True, limit: tuple[int | None, str] = (None, "")
) -> list[int]:
    """The prompt's token ids, refusing an empty prompt (or a one-token prompt when the first token
    is not spliced: nothing would be left to attribute), or one longer than ``limit`` (tokens, why:
    :func:`prompt_limit`), before anything runs."""
    if not isinstance(prompt, str) or not prompt.strip():
        raise ValueError(f"the prompt must be non-empty text, got {prompt!r}; type a sentence to continue")
    ids = list(tokenizer(prompt)["input_ids"])
    if len(ids) < 1 + int(skip_first):
        raise ValueError(
            f"the prompt {prompt!r} is {len(ids)} token(s); the first token is not spliced (attention sink), "
            "so give at least two tokens"
        )
    max_tokens, why = limit
    if max_tokens is not None:
        token_limit(len(ids), max_tokens, f"the prompt ({why})" if why else "the prompt")
    return ids


def token_id(tokenizer, token: object, n_vocab: int) -> int:
    """``token`` as one vocabulary id: an id (0..n_vocab-1) or a text that is exactly one token
    (with its leading space, e.g. " Paris"), else one ``ValueError`` line."""
    if isinstance(token, str):
        ids = tokenizer(token, add_special_tokens=False)["input_ids"]
        unk = getattr(tokenizer, "unk_token_id", None)
        if not token or len(ids) != 1 or (ids[0] == unk and token.strip() != tokenizer.unk_token):
            raise ValueError(
                f"{token!r} is not one token of the vocabulary (it encodes to {len(ids)} token(s)"
                f"{', the unknown token' if ids == [unk] else ''}); pick one of the model's top next tokens, "
                "or give a token id"
            )
        return int(ids[0])
    return as_index(token, "token id", n_vocab, "the model's vocabulary")


def text_prefixes(tokenizer, texts: Sequence[str], n_tokens: Sequence[int] | int) -> list[str]:
    """Each text cut after its first ``n_tokens`` tokens (one number, or one per text): a prompt that
    stops mid-text, so the model's next token is a word of the text rather than a line break."""
    texts = list(texts)
    ns = [n_tokens] * len(texts) if np.ndim(n_tokens) == 0 else list(n_tokens)  # each checked below
    if len(ns) != len(texts):
        raise ValueError(f"got {len(texts)} texts but {len(ns)} cut lengths; give one per text")
    out = []
    for text, n in zip(texts, ns, strict=True):
        n = as_count(n, "n_tokens")
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        out.append(tokenizer.decode(ids[:n], skip_special_tokens=True))
    return out


def _decode(tokenizer, i: int) -> str:
    return tokenizer.decode([int(i)])


def _check_sae(model: nn.Module, sae: BaseSAE) -> None:
    d = int(model.get_input_embeddings().weight.shape[1])
    if sae.cfg.d_in != d:
        raise ValueError(f"the SAE reads d_in = {sae.cfg.d_in} but the model's residual has {d}; use its SAE")


def _forward_last(model: nn.Module, ids: torch.Tensor) -> torch.Tensor:
    """Logits at the last position [B, vocab] (only the last position unembedded when possible)."""
    kw = {"logits_to_keep": 1} if accepts(model, "logits_to_keep") else {}
    return model(input_ids=ids, use_cache=False, **kw).logits[:, -1].float()


def _metric(logits: torch.Tensor, target: int, contrast: int | None) -> torch.Tensor:
    m = logits[..., target]
    return m if contrast is None else m - logits[..., contrast]


# --- attribution ----------------------------------------------------------------------------------


@torch.no_grad()
def top_next_tokens(model: nn.Module, tokenizer, prompt: str, n: int = 5) -> list[tuple[int, str, float]]:
    """The model's ``n`` most likely next tokens after ``prompt``: (id, text, probability)."""
    n = as_count(n, "n")
    ids = encode_prompt(tokenizer, prompt, skip_first=False, limit=prompt_limit(model, backward=False))
    dev = next(model.parameters()).device
    p = torch.softmax(_forward_last(model, torch.tensor([ids], device=dev))[0], -1)
    top = torch.topk(p, min(n, p.numel()))
    return [
        (int(i), _decode(tokenizer, int(i)), float(v)) for v, i in zip(top.values, top.indices, strict=True)
    ]


def attribute_features(
    model: nn.Module,
    tokenizer,
    sae: BaseSAE,
    layer: int,
    prompt: str,
    target: int | str | None = None,
    contrast: int | str | None = None,
    skip_first: bool = True,
) -> Attribution:
    """Attribute the next-token logit of ``target`` (default: the model's top next token), or the
    logit difference target − ``contrast``, at the last position of ``prompt`` to the SAE's
    features at block ``layer`` (activation × gradient through the splice, error held fixed)."""
    layer = validate_layer(model, layer)
    _check_sae(model, sae)
    ids = encode_prompt(tokenizer, prompt, skip_first, prompt_limit(model))
    n_vocab = vocab_size(model)
    tgt = None if target is None else token_id(tokenizer, target, n_vocab)
    con = None if contrast is None else token_id(tokenizer, contrast, n_vocab)
    if con is not None and con == tgt:
        raise ValueError("target and contrast are the same token; their logit difference is always 0")
    s = int(skip_first)
    leaves: dict[str, torch.Tensor] = {}

    def splice(h: torch.Tensor) -> torch.Tensor:
        x = h[0, s:].float()
        with torch.no_grad():
            f0 = sae.encode(x)
        f = f0.detach().requires_grad_(True)  # the leaf: the top-k selection is already made
        x_hat = sae.decode(f)
        e = (x - x_hat).detach().requires_grad_(True)  # fixed: no path back into h or f
        leaves.update(f=f, e=e)
        return torch.cat([h[:, :s], (x_hat + e).unsqueeze(0).to(h.dtype)], dim=1)

    dev = next(model.parameters()).device
    with edit_block(model, layer, splice), torch.enable_grad():
        logits = _forward_last(model, torch.tensor([ids], device=dev))[0]
        if tgt is None:
            tgt = int(logits.argmax())
        metric = _metric(logits, tgt, con)
        g_f, g_e = torch.autograd.grad(metric, [leaves["f"], leaves["e"]])
    f, e = leaves["f"].detach(), leaves["e"].detach()
    return Attribution(
        prompt=prompt,
        input_ids=tuple(int(i) for i in ids),
        target=tgt,
        target_text=_decode(tokenizer, tgt),
        contrast=con,
        contrast_text=None if con is None else _decode(tokenizer, con),
        metric=float(metric.detach()),
        scores=attribute(f, g_f).double().cpu().numpy(),
        acts=f.sum(0).double().cpu().numpy(),
        fires=(f > 0).sum(0).cpu().numpy(),
        error=float((e * g_e).sum()),
        layer=layer,
        skip_first=skip_first,
    )


@torch.no_grad()
def ablation_effects(
    model: nn.Module,
    sae: BaseSAE,
    result: Attribution,
    features: Sequence[int] | None = None,
    n: int = 10,
    factor: float | Sequence[float] = 0.0,
    batch_size: int = 16,
) -> np.ndarray:
    """The measured drop of ``result``'s metric, m(clean) − m(edited), when each feature (default:
    the ``n`` top features of ``result``) is multiplied by ``factor`` (0: ablated; one number, or one
    per feature) at every spliced position, error term and every other latent unchanged. One batch
    row per feature plus a clean row, so a whole list costs one forward pass per ``batch_size``
    features; blocks 0..``layer`` run once, for a single row, and the batch widens at the splice."""
    feats = result.top(n)["feature"].tolist() if features is None else [sae.feature_id(i) for i in features]
    batch_size = as_count(batch_size, "batch_size")
    if np.ndim(factor) == 0:
        factors = [as_finite(factor, "factor")] * len(feats)
    else:
        factors = [as_finite(x, "factor") for x in factor]
        if len(factors) != len(feats):
            raise ValueError(f"{len(feats)} features but {len(factors)} factors; give one factor per feature")
    if not feats:
        return np.zeros(0)
    s = int(result.skip_first)
    dev = next(model.parameters()).device
    ids = torch.tensor([list(result.input_ids)], device=dev)
    out = []
    for b in range(0, len(feats), batch_size):
        chunk = torch.tensor(feats[b : b + batch_size], device=dev)
        keep = torch.tensor(factors[b : b + batch_size], device=dev, dtype=torch.float32)

        def edit(h: torch.Tensor, chunk: torch.Tensor = chunk, keep: torch.Tensor = keep) -> torch.Tensor:
            # h is one row [1, T, d]: blocks 0..layer ran once; from here on the batch has one clean
            # row and one row per feature (the blocks broadcast their position embeddings and mask)
            x = h[0, s:].float()
            f = sae.encode(x)[:, chunk]  # [T - s, features]
            w = sae.W_dec[chunk] / sae.scale  # [features, d]
            new = h.float().expand(len(chunk) + 1, -1, -1).clone()
            new[1:, s:] -= ((1.0 - keep).unsqueeze(-1) * f.T).unsqueeze(-1) * w.unsqueeze(1)
            return new.to(h.dtype)

        with edit_block(model, result.layer, edit):
            m = _metric(_forward_last(model, ids), result.target, result.contrast)
        if m.shape[0] != len(chunk) + 1:
            raise RuntimeError(
                f"{type(model).__name__} did not carry the widened batch past block {result.layer}"
            )
        out.append((m[0] - m[1:]).double().cpu().numpy())
    return np.concatenate(out)


def ablation_path(
    model: nn.Module, sae: BaseSAE, result: Attribution, feature: int, removed: Sequence[float]
) -> np.ndarray:
    """The measured drop of ``result``'s metric when ``feature`` is scaled down by each fraction of
    ``removed`` (0: untouched, 1: ablated) at every spliced position, in one batch: the real curve that
    activation × gradient replaces by its tangent at 0 removed (drop ≈ fraction × attribution). A
    *saturated* feature's curve is flat near 0 and drops late; an overshooting one bends the other way."""
    fr = [as_finite(x, "removed fraction") for x in removed]
    if not fr:
        raise ValueError("give at least one fraction to remove (0..1)")
    return ablation_effects(
        model, sae, result, [feature] * len(fr), factor=[1.0 - x for x in fr], batch_size=len(fr)
    )


# --- attribution against ablation, over many prompts -----------------------------------------------


def _ranks(x: np.ndarray) -> np.ndarray:
    """Ranks 1..n, ties sharing their average rank (as Spearman's correlation needs)."""
    _, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
    return (np.cumsum(counts) - (counts - 1) / 2)[inverse]


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    x, y = x - x.mean(), y - y.mean()
    den = np.sqrt((x * x).sum() * (y * y).sum())
    return float((x * y).sum() / den) if den > 0 else float("nan")


def correlations(attributed: np.ndarray, measured: np.ndarray) -> tuple[float, float]:
    """Pearson and Spearman correlation of two equal-length arrays (NaN when either is constant)."""
    a, m = np.asarray(attributed, dtype=np.float64), np.asarray(measured, dtype=np.float64)
    if a.shape != m.shape or a.ndim != 1:
        raise ValueError(f"need two 1-d arrays of the same length, got shapes {a.shape} and {m.shape}")
    if len(a) < 2:
        raise ValueError(f"a correlation needs at least 2 pairs, got {len(a)}")
    return _pearson(a, m), _pearson(_ranks(a), _ranks(m))


@dataclass(frozen=True)
class AttributionCheck:
    """Attributed against measured drops, one row per (prompt, ablated feature) in ``pairs`` (columns
    prompt_id, prompt, target, kind, rank, feature, activation, attributed, measured): ``kind`` "top"
    for the prompt's features of largest |attribution|, "random" for active features drawn uniformly
    among the rest (the baseline). ``pearson`` and ``spearman`` are over the top pairs."""

    pairs: pd.DataFrame
    pearson: float
    spearman: float
    seconds: float

    def _kind(self, kind: str | None) -> pd.DataFrame:
        if kind is None:
            return self.pairs
        sub = self.pairs[self.pairs["kind"] == kind]
        if sub.empty:
            raise ValueError(f"no pairs of kind {kind!r}; the kinds are {sorted(set(self.pairs['kind']))}")
        return sub

    def intervals(self, n_boot: int = 2000, seed: int = 0, kind: str | None = "top") -> dict[str, Interval]:
        """Bootstrap 95% intervals of both correlations over the pairs of ``kind`` (None: all),
        resampling whole prompts (a prompt's features share one forward pass, so they are not
        independent units)."""
        pairs = self._kind(kind)
        pid = pairs["prompt_id"].to_numpy()
        groups = [np.flatnonzero(pid == u) for u in np.unique(pid)]
        a, m = pairs["attributed"].to_numpy(), pairs["measured"].to_numpy()

        def stat(k: int):
            def f(idx: np.ndarray) -> float:
                rows = np.concatenate([groups[i] for i in idx])
                x, y = a[rows], m[rows]
                return _pearson(x, y) if k == 0 else _pearson(_ranks(x), _ranks(y))

            return f

        return {
            name: bootstrap(stat(k), len(groups), n_boot=n_boot, seed=seed)
            for k, name in enumerate(("pearson", "spearman"))
        }

    def by_kind(self, n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
        """One row per kind of ablated feature (top by |attribution|, random active): pairs, prompts,
        Pearson and Spearman r, the share with the sign right, the median |measured| / |attributed|,
        and the mean |measured drop| with a bootstrap 95% interval over prompts (how much ablating
        such a feature moves the metric: attribution is worth its cost only if its top features move
        it more than random ones)."""
        rows = []
        for kind in dict.fromkeys(self.pairs["kind"]):
            pairs = self._kind(kind)
            ci = self.intervals(n_boot, seed, kind) if pairs["prompt_id"].nunique() >= 2 else None
            att, mea = pairs["attributed"].to_numpy(), pairs["measured"].to_numpy()
            size = np.abs(mea)
            iv = (
                group_bootstrap(
                    lambda i, size=size: float(size[i].mean()),
                    pairs["prompt_id"].to_numpy(),
                    n_boot,
                    seed=seed,
                )
                if pairs["prompt_id"].nunique() >= 2
                else None
            )
            with np.errstate(divide="ignore", invalid="ignore"):
                ratio = np.abs(mea) / np.abs(att)
            rows.append(
                {"kind": kind, "pairs": len(pairs), "prompts": pairs["prompt_id"].nunique()}
                | {"pearson": str(ci["pearson"]) if ci else "", "spearman": str(ci["spearman"]) if ci else ""}
                | {"same sign": float((np.sign(att) == np.sign(mea)).mean())}
                | {"median |measured|/|attributed|": float(np.nanmedian(ratio[np.isfinite(ratio)]))}
                | {"mean |measured|": float(size.mean()), "low": iv.low if iv else np.nan}
                | {"high": iv.high if iv else np.nan}
            )
        return pd.DataFrame(rows).set_index("kind")


def worst_misses(pairs: pd.DataFrame, n: int = 5) -> pd.DataFrame:
    """The ``n`` pairs where the linear estimate misses the measured drop most (|measured − attributed|),
    with the gap and what kind of miss it is: "saturated" where the real drop is larger than the slope
    predicts (|measured| > |attributed|, same sign: flat near the clean run, the effect comes late),
    "overshoot" where it is smaller, "wrong sign" where they disagree in sign."""
    n = as_count(n, "n")
    gap = pairs["measured"] - pairs["attributed"]
    same = np.sign(pairs["measured"]) == np.sign(pairs["attributed"])
    larger = pairs["measured"].abs() > pairs["attributed"].abs()
    miss = np.where(~same, "wrong sign", np.where(larger, "saturated", "overshoot"))
    out = pairs.assign(gap=gap, miss=miss)
    return out.reindex(gap.abs().sort_values(ascending=False, kind="stable").index).head(n)


def attribution_vs_ablation(
    model: nn.Module,
    tokenizer,
    sae: BaseSAE,
    layer: int,
    prompts: Sequence[str],
    n_features: int = 10,
    batch_size: int = 32,
    n_random: int = 0,
    seed: int = 0,
) -> AttributionCheck:
    """For every prompt: the model's top next token as target, attribution of its logit, then its
    ``n_features`` top features and ``n_random`` active features drawn at random among the others
    (seeded by ``seed`` and the prompt's index) ablated one at a time, all in one widened batch.
    Returns the (attributed, measured) pairs and the Pearson and Spearman correlations of the top ones."""
    n_features = as_count(n_features, "n_features")
    n_random = as_count(n_random, "n_random", 0)
    prompts = list(prompts)
    if not prompts:
        raise ValueError("give at least one prompt")
    limit = prompt_limit(model)
    for i, prompt in enumerate(prompts):  # every prompt checked before the first slow pass
        try:
            encode_prompt(tokenizer, prompt, True, limit)
        except ValueError as err:
            raise ValueError(f"prompt {i}: {err}") from None
    t0 = time.perf_counter()
    rows = []
    for p_id, prompt in enumerate(prompts):
        res = attribute_features(model, tokenizer, sae, layer, prompt)
        top = res.top(n_features)
        others = np.setdiff1d(np.flatnonzero(res.fires > 0), top["feature"].to_numpy())
        rng = np.random.default_rng([seed, p_id])
        drawn = rng.choice(others, size=min(n_random, len(others)), replace=False) if n_random else []
        feats = top["feature"].tolist() + [int(i) for i in drawn]
        kinds = ["top"] * len(top) + ["random"] * len(drawn)
        ranks = list(range(len(top))) + list(range(len(drawn)))
        measured = ablation_effects(model, sae, res, feats, batch_size=batch_size)
        for kind, rank, feat, m in zip(kinds, ranks, feats, measured, strict=True):
            rows.append(
                {
                    "prompt_id": p_id,
                    "prompt": prompt,
                    "target": res.target_text,
                    "kind": kind,
                    "rank": rank,
                    "feature": int(feat),
                    "activation": float(res.acts[feat]),
                    "attributed": float(res.scores[feat]),
                    "measured": float(m),
                }
            )
    pairs = pd.DataFrame(rows)
    top_pairs = pairs[pairs["kind"] == "top"] if len(pairs) else pairs
    if len(top_pairs) < 2:
        raise ValueError("fewer than 2 (attributed, measured) pairs; give more prompts or features")
    pearson, spearman = correlations(top_pairs["attributed"].to_numpy(), top_pairs["measured"].to_numpy())
    return AttributionCheck(pairs, pearson, spearman, time.perf_counter() - t0)
