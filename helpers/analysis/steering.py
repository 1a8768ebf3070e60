"""Steering: clamp SAE features (or add a vector) in the residual stream while the model runs.

The clamp edit, at every position: x -> x + Σ_i (c_i - f_i(x)) · W_dec,i. In the SAE's basis
feature i is set to c_i; everything the SAE does not explain (its reconstruction error) and every
other feature stay as they were. Values are given in multiples of the feature's maximum
activation seen in the store. A value may be one number or one per batch row, so a whole sweep
of strengths runs as one batch.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import numpy as np
import pandas as pd
import torch
from torch import nn

from helpers.data.text_stats import STOP_WORDS, words
from helpers.model.blocks import validate_layer
from helpers.model.hooks import edit_block
from helpers.sae.model import BaseSAE
from helpers.stats import grouped_interval
from helpers.validate import as_finite, finite_array

# The largest clamp value or steering scale accepted, in absolute activation units. Notebook 06 clamps to
# -5..15 times a feature's largest activation in the store (itself O(1-100)), so 1e6 is four orders of
# magnitude past any meaningful edit, yet far from float32's limit: the edit adds c * W_dec,i (a row of
# norm O(1-100) in raw residual units) to the stream, and the next block's RMSNorm squares and sums it
# over d_model, (1e6 * 100)^2 * 576 = 6e18, against float32's 3.4e38 (the model runs in float32). A clamp
# of 3e38 overflowed there: NaN logits, and a RuntimeError later, in sampling.
MAX_EDIT = 1e6


def _as_values(c, name: str) -> torch.Tensor:
    """``c`` (one number, or one per batch row: a list, array or tensor of numbers) as float32, each finite
    and within ±:data:`MAX_EDIT`; NaN, inf, 3e38, '5', None or an empty list are refused in one line."""
    if isinstance(c, numbers.Number) or c is None or isinstance(c, str):
        return torch.tensor(as_finite(c, name, -MAX_EDIT, MAX_EDIT), dtype=torch.float32)
    if isinstance(c, torch.Tensor):
        ok = not (c.dtype == torch.bool or c.is_complex())
        arr = c.detach().float().cpu().numpy() if ok else None
    else:
        arr = np.asarray(c) if isinstance(c, list | tuple | np.ndarray) else None
        ok = arr is not None and arr.dtype.kind in "iuf"
    if not ok or arr.size == 0:
        raise ValueError(f"{name} must be a number or one number per batch row, not {type(c).__name__} {c!r}")
    finite_array(arr, name, "pass finite numbers")
    if np.abs(arr).max() > MAX_EDIT:
        raise ValueError(
            f"{name} reaches {float(np.abs(arr).max()):.3g}, beyond ±{MAX_EDIT:g} (activation units: "
            f"multiples of a feature's max activation); pass smaller values"
        )
    return torch.as_tensor(arr, dtype=torch.float32)


def _clamp_edit(h: torch.Tensor, sae: BaseSAE, features: list[int], values: list) -> torch.Tensor:
    """:func:`clamp_edit` on checked ``features`` (ints) and ``values`` (tensors): the hook's hot path."""
    flat = h.reshape(-1, h.shape[-1]).float()
    f = sae.encode(flat).reshape(*h.shape[:-1], -1)
    out = h.float()
    for i, c in zip(features, values, strict=True):
        out = out + ((c.to(h.device) - f[..., i]).unsqueeze(-1)) * (sae.W_dec[i] / sae.scale)
    return out.to(h.dtype)


def clamp_edit(h: torch.Tensor, sae: BaseSAE, features: list[int], values: list) -> torch.Tensor:
    """``h`` [..., d] with each feature in ``features`` set to its value (a number, or a tensor
    broadcasting against ``h[..., 0]``, e.g. one per batch row [B, 1]). Feature ids and values are
    checked (finite, within ±:data:`MAX_EDIT`), one line for a bad one."""
    features = [sae.feature_id(i) for i in features]
    if len(values) != len(features):
        raise ValueError(f"{len(features)} features but {len(values)} values; pass one value per feature")
    vals = [_as_values(c, f"clamp value of feature {i}") for i, c in zip(features, values, strict=True)]
    return _clamp_edit(h, sae, features, vals)


@contextmanager
def _edit_block(model: nn.Module, layer: int, edit: Callable[[torch.Tensor], torch.Tensor]) -> Iterator[None]:
    """:func:`helpers.model.hooks.edit_block` with gradients off (steering never trains)."""
    with edit_block(model, layer, edit), torch.no_grad():
        yield


def _per_row(x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """A value per batch row ([B]) shaped to broadcast against ``h[..., 0]`` ([B, 1, ...])."""
    return x.view(-1, *([1] * (h.dim() - 2))) if x.dim() == 1 else x


def clamp_features(model, sae: BaseSAE, layer: int, clamps: dict[int, float | list | torch.Tensor]):
    """While active, block ``layer``'s output has each feature ``i`` of ``clamps`` set to
    ``clamps[i]`` (absolute activation; a number, or one per batch row)."""
    layer = validate_layer(model, layer)
    feats = [sae.feature_id(i) for i in clamps]
    vals = [_as_values(clamps[i], f"clamp value of feature {i}") for i in clamps]
    return _edit_block(model, layer, lambda h: _clamp_edit(h, sae, feats, [_per_row(v, h) for v in vals]))


def add_vector(model, layer: int, vector: torch.Tensor, scale):
    """While active, block ``layer``'s output gets ``scale * vector`` added at every position
    (``scale`` a number or one per batch row): difference-of-means steering."""
    layer = validate_layer(model, layer)
    s = _as_values(scale, "scale")
    v = torch.as_tensor(vector.detach() if isinstance(vector, torch.Tensor) else vector, dtype=torch.float32)
    if v.ndim != 1:
        raise ValueError(f"vector must be one direction [d_model], not shape {tuple(v.shape)}")
    finite_array(v, "vector", "pass a finite direction")

    def edit(h):
        k = _per_row(s, h).unsqueeze(-1) if s.dim() == 1 else s
        return (h.float() + k.to(h.device) * v.to(h.device)).to(h.dtype)

    return _edit_block(model, layer, edit)


@torch.no_grad()
def continuation_nll(
    model, tokenizer, prompts: list[str], continuations: list[str], batch_size: int = 32
) -> np.ndarray:
    """Mean negative log-likelihood per token of each continuation given its prompt, under the
    (unsteered) model: log-perplexity, the fluency cost of a steered text. Batched, right-padded."""
    dev = next(model.parameters()).device
    seqs, starts = [], []
    for p, c in zip(prompts, continuations, strict=True):
        p_ids = tokenizer(p)["input_ids"]
        seqs.append(p_ids + tokenizer(c, add_special_tokens=False)["input_ids"])
        starts.append(len(p_ids))
    out = np.full(len(seqs), np.nan)
    pad = tokenizer.pad_token_id or 0
    for b in range(0, len(seqs), batch_size):
        chunk = seqs[b : b + batch_size]
        T = max(len(x) for x in chunk)
        ids = torch.tensor([x + [pad] * (T - len(x)) for x in chunk], device=dev)
        mask = torch.tensor([[1] * len(x) + [0] * (T - len(x)) for x in chunk], device=dev)
        lp = torch.log_softmax(model(input_ids=ids, attention_mask=mask).logits[:, :-1].float(), -1)
        nll = -lp.gather(-1, ids[:, 1:].unsqueeze(-1)).squeeze(-1)
        for k, x in enumerate(chunk):
            s0 = starts[b + k]
            if len(x) > s0:
                out[b + k] = float(nll[k, s0 - 1 : len(x) - 1].mean())
    return out


def theme_vocabulary(docs, theme: str, min_count: int = 5, min_lift: float = 3.0) -> set[str]:
    """Words at least ``min_lift`` times more frequent in ``theme``'s texts than in all texts
    (and seen ``min_count`` times there): the theme's own vocabulary."""
    from collections import Counter

    inside = Counter(
        w for t in docs.loc[docs["theme"] == theme, "text"] for w in words(t) if w not in STOP_WORDS
    )
    every = Counter(w for t in docs["text"] for w in words(t) if w not in STOP_WORDS)
    n_in, n_all = sum(inside.values()), sum(every.values())
    return {w for w, c in inside.items() if c >= min_count and (c / n_in) / (every[w] / n_all) >= min_lift}


def theme_score(texts: list[str], vocab: set[str]) -> np.ndarray:
    """Share of each text's (non-stop) words that are in ``vocab``."""
    out = []
    for t in texts:
        ws = [w for w in words(t) if w not in STOP_WORDS]
        out.append(sum(w in vocab for w in ws) / len(ws) if ws else math.nan)
    return np.asarray(out)


MEASURED = ("feature", "method", "strength", "prompt", "sample", "text", "theme score", "nll")


def _validate_measured(per_text: pd.DataFrame) -> None:
    missing = [c for c in MEASURED if c not in per_text.columns]
    if missing:
        raise ValueError(f"per-text steering results need the columns {', '.join(missing)}")


def summarize_steering(per_text: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """One row per (feature, method, strength) of ``per_text`` (one row per steered text): the mean
    theme score and the perplexity exp(mean NLL per token), each with a bootstrap 95% interval that
    resamples whole prompts (a prompt's samples share the prompt, so they are not independent)."""
    _validate_measured(per_text)
    rows = []
    for (feature, method, strength), g in per_text.groupby(["feature", "method", "strength"], sort=False):
        ts = grouped_interval(g["theme score"].to_numpy(), g["prompt"].to_numpy(), seed=seed)
        pp = grouped_interval(g["nll"].to_numpy(), g["prompt"].to_numpy(), transform=np.exp, seed=seed)
        rows.append(
            {
                "feature": feature,
                "method": method,
                "strength": strength,
                "texts": len(g),
                "prompts": g["prompt"].nunique(),
                "theme score": ts.value,
                "score low": ts.low,
                "score high": ts.high,
                "perplexity": pp.value,
                "ppl low": pp.low,
                "ppl high": pp.high,
            }
        )
    return pd.DataFrame(rows)


def doubling_strength(strengths: np.ndarray, perplexity: np.ndarray) -> float:
    """The smallest strength at which ``perplexity`` reaches twice its value at strength 0 (the
    first point of the sweep; ``strengths`` ascending), interpolated linearly between the two sweep
    points around the first crossing; ``inf`` when it never reaches it. The curve need not be
    monotone: it may dip below the baseline, cross, fall back and cross again (the first counts)."""
    s = np.asarray(strengths, dtype=np.float64)
    p = np.asarray(perplexity, dtype=np.float64)
    if s.ndim != 1 or s.shape != p.shape or len(s) < 2:
        raise ValueError(f"need two 1-D arrays of one length >= 2, got shapes {s.shape} and {p.shape}")
    if not (np.isfinite(s).all() and np.isfinite(p).all() and (p > 0).all()):
        raise ValueError("strengths must be finite and perplexities finite and positive")
    if s[0] != 0 or (np.diff(s) <= 0).any():
        raise ValueError(f"strengths must start at 0 and increase, got {s.tolist()}")
    target = 2.0 * p[0]
    above = np.flatnonzero(p >= target)
    if not above.size:
        return float("inf")
    k = int(above[0])  # >= 1: p[0] < 2 p[0]
    frac = (target - p[k - 1]) / (p[k] - p[k - 1])
    return float(s[k - 1] + frac * (s[k] - s[k - 1]))


def compare_methods(
    per_text: pd.DataFrame, a: str = "clamp", b: str = "difference of means", seed: int = 0
) -> pd.DataFrame:
    """Per (feature, strength), the theme score of method ``a`` minus that of ``b`` on the same prompts
    (paired by prompt and sample), with a bootstrap 95% interval over prompts, and the verdict the
    interval allows: "a", "b", or "no winner" when it includes 0."""
    _validate_measured(per_text)
    key = ["feature", "strength", "prompt", "sample"]
    left = per_text[per_text["method"] == a].set_index(key)["theme score"]
    right = per_text[per_text["method"] == b].set_index(key)["theme score"]
    both = pd.concat({"a": left, "b": right}, axis=1).dropna().reset_index()
    if both.empty:
        raise ValueError(f"no prompt was steered with both {a!r} and {b!r} at one strength")
    rows = []
    for (feature, strength), g in both.groupby(["feature", "strength"], sort=False):
        iv = grouped_interval((g["a"] - g["b"]).to_numpy(), g["prompt"].to_numpy(), seed=seed)
        verdict = (a if iv.value > 0 else b) if iv.excludes(0) else "no winner"
        rows.append(
            {"feature": feature, "strength": strength, "pairs": len(g), "difference": iv.value}
            | {"low": iv.low, "high": iv.high, "verdict": verdict}
        )
    return pd.DataFrame(rows)
