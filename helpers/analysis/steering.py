"""Steering: clamp SAE features (or add a vector) in the residual stream while the model runs.

The clamp edit, at every position: x -> x + Σ_i (c_i - f_i(x)) · W_dec,i. In the SAE's basis
feature i is set to c_i; everything the SAE does not explain (its reconstruction error) and every
other feature stay as they were. Values are given in multiples of the feature's maximum
activation seen in the store. A value may be one number or one per batch row, so a whole sweep
of strengths runs as one batch.

The first token of every sequence (the attention sink: its residual is many times larger than the
others', and the SAE never trained on it) is left unedited by default, as the CE evaluation of
notebook 03 leaves it; ``keep_first=False`` edits it too.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import numpy as np
import pandas as pd
import torch
from torch import nn

from helpers.data.text_stats import STOP_WORDS, words
from helpers.model.blocks import validate_layer
from helpers.model.hooks import edit_block, read_call
from helpers.sae.model import BaseSAE
from helpers.stats import group_bootstrap, grouped_interval
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


def _cache_length(past) -> int:
    """Tokens already in a KV cache (a transformers ``Cache`` or the legacy tuple), 0 for none."""
    if past is None:
        return 0
    if hasattr(past, "get_seq_length"):
        return int(past.get_seq_length())
    try:
        return int(past[0][0].shape[-2])
    except (IndexError, TypeError, AttributeError):
        return 0


def first_positions(args: tuple, kwargs: dict) -> torch.Tensor | None:
    """Which tokens of a model call are their sequence's first token, [B, T] bool (None when there is
    none: a decoding step after the prompt). From ``position_ids`` where given (position 0; left
    padding also sits at 0, and is masked anyway), else the first attended column of
    ``attention_mask`` when nothing is cached yet, else column 0 of a call without a cache."""
    pos = kwargs.get("position_ids")
    if isinstance(pos, torch.Tensor):
        return pos == 0
    ids = kwargs.get("input_ids", args[0] if args else None)
    if ids is None:
        ids = kwargs.get("inputs_embeds")
    if not isinstance(ids, torch.Tensor) or _cache_length(kwargs.get("past_key_values")) > 0:
        return None
    B, T = ids.shape[:2]
    mask = kwargs.get("attention_mask")
    if isinstance(mask, torch.Tensor) and mask.dim() == 2 and mask.shape == (B, T):
        on = mask != 0
        return on & (on.long().cumsum(-1) == 1)
    first = torch.zeros(B, T, dtype=torch.bool, device=ids.device)
    first[:, 0] = True
    return first


@contextmanager
def _edit_block(
    model: nn.Module, layer: int, edit: Callable[[torch.Tensor], torch.Tensor], keep_first: bool = True
) -> Iterator[None]:
    """:func:`helpers.model.hooks.edit_block` with gradients off (steering never trains); with
    ``keep_first`` every sequence's first token (:func:`first_positions`) keeps its unedited value."""
    if not keep_first:
        with edit_block(model, layer, edit), torch.no_grad():
            yield
        return
    seen: dict[str, torch.Tensor | None] = {"first": None}

    def remember(args: tuple, kwargs: dict) -> None:
        seen["first"] = first_positions(args, kwargs)

    def kept(h: torch.Tensor) -> torch.Tensor:
        new = edit(h)
        first = seen["first"]
        if first is None or first.shape[-1] != h.shape[1] or first.shape[0] not in (1, h.shape[0]):
            return new
        if not bool(first.any()):
            return new
        return torch.where(first.expand(h.shape[0], -1).unsqueeze(-1).to(h.device), h, new)

    with read_call(model, remember), edit_block(model, layer, kept), torch.no_grad():
        yield


def _per_row(x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """A value per batch row ([B]) shaped to broadcast against ``h[..., 0]`` ([B, 1, ...])."""
    return x.view(-1, *([1] * (h.dim() - 2))) if x.dim() == 1 else x


def clamp_features(
    model, sae: BaseSAE, layer: int, clamps: dict[int, float | list | torch.Tensor], keep_first: bool = True
):
    """While active, block ``layer``'s output has each feature ``i`` of ``clamps`` set to
    ``clamps[i]`` (absolute activation; a number, or one per batch row), at every position but each
    sequence's first token (the attention sink) unless ``keep_first`` is False."""
    layer = validate_layer(model, layer)
    feats = [sae.feature_id(i) for i in clamps]
    vals = [_as_values(clamps[i], f"clamp value of feature {i}") for i in clamps]
    return _edit_block(
        model, layer, lambda h: _clamp_edit(h, sae, feats, [_per_row(v, h) for v in vals]), keep_first
    )


def add_vector(model, layer: int, vector: torch.Tensor, scale, keep_first: bool = True):
    """While active, block ``layer``'s output gets ``scale * vector`` added at every position but each
    sequence's first token unless ``keep_first`` is False (``scale`` a number or one per batch row):
    difference-of-means steering."""
    layer = validate_layer(model, layer)
    s = _as_values(scale, "scale")
    v = torch.as_tensor(vector.detach() if isinstance(vector, torch.Tensor) else vector, dtype=torch.float32)
    if v.ndim != 1:
        raise ValueError(f"vector must be one direction [d_model], not shape {tuple(v.shape)}")
    finite_array(v, "vector", "pass a finite direction")

    def edit(h):
        k = _per_row(s, h).unsqueeze(-1) if s.dim() == 1 else s
        return (h.float() + k.to(h.device) * v.to(h.device)).to(h.dtype)

    return _edit_block(model, layer, edit, keep_first)


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


def content_words(texts: list[str]) -> np.ndarray:
    """How many non-stop words each text has: the words :func:`theme_score` divides by."""
    return np.asarray([sum(w not in STOP_WORDS for w in words(t)) for t in texts], dtype=np.int64)


def theme_score(texts: list[str], vocab: set[str], empty: float = 0.0) -> np.ndarray:
    """Share of each text's (non-stop) words that are in ``vocab``. A text with no non-stop word at
    all (``[ [ [ [``, a run of *the*) holds no theme word: it scores ``empty`` (0 by default, so it
    stays in every mean; NaN drops it, and :func:`summarize_steering` counts such texts)."""
    out = []
    for t in texts:
        ws = [w for w in words(t) if w not in STOP_WORDS]
        out.append(sum(w in vocab for w in ws) / len(ws) if ws else float(empty))
    return np.asarray(out, dtype=np.float64)


MEASURED = ("feature", "method", "strength", "prompt", "seed", "text", "theme score", "nll")


def _validate_measured(per_text: pd.DataFrame) -> None:
    missing = [c for c in MEASURED if c not in per_text.columns]
    if missing:
        raise ValueError(f"per-text steering results need the columns {', '.join(missing)}")


def summarize_steering(per_text: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """One row per (feature, method, strength) of ``per_text`` (one row per steered text): the mean
    theme score and the perplexity exp(mean NLL per token), each with a bootstrap 95% interval that
    resamples whole prompts (a prompt's texts, one per sampling seed, share the prompt, so they are
    not independent). ``texts`` counts the texts behind the score (NaN scores are left out and
    counted in ``unscored``); ``no content word`` counts the texts without a non-stop word (scored 0
    by :func:`theme_score`), when ``per_text`` has a ``content words`` column."""
    _validate_measured(per_text)
    rows = []
    for (feature, method, strength), g in per_text.groupby(["feature", "method", "strength"], sort=False):
        ts = grouped_interval(g["theme score"].to_numpy(), g["prompt"].to_numpy(), seed=seed)
        pp = grouped_interval(g["nll"].to_numpy(), g["prompt"].to_numpy(), transform=np.exp, seed=seed)
        scored = int(np.isfinite(g["theme score"].to_numpy(dtype=np.float64)).sum())
        empty = int((g["content words"] == 0).sum()) if "content words" in g else 0
        rows.append(
            {
                "feature": feature,
                "method": method,
                "strength": strength,
                "texts": scored,
                "unscored": len(g) - scored,
                "no content word": empty,
                "prompts": g["prompt"].nunique(),
                "seeds": g["seed"].nunique(),
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
    return strength_at(s, p, 2.0 * p[0])


def strength_at(strengths: np.ndarray, perplexity: np.ndarray, target: float) -> float:
    """The strength at which ``perplexity`` first reaches ``target``, interpolated linearly between the
    two sweep points around the first crossing (``strengths`` ascending); ``inf`` when it never does,
    the first strength when it starts there."""
    s = np.asarray(strengths, dtype=np.float64)
    p = np.asarray(perplexity, dtype=np.float64)
    above = np.flatnonzero(p >= target)
    if not above.size:
        return float("inf")
    k = int(above[0])
    if k == 0:
        return float(s[0])
    frac = (target - p[k - 1]) / (p[k] - p[k - 1])
    return float(s[k - 1] + frac * (s[k] - s[k - 1]))


def value_at(strengths: np.ndarray, values: np.ndarray, strength: float) -> float:
    """``values`` (measured at ``strengths``, ascending) interpolated linearly at ``strength``; NaN
    outside the sweep (an infinite strength: the perplexity never got there)."""
    s = np.asarray(strengths, dtype=np.float64)
    if not np.isfinite(strength) or strength < s[0] or strength > s[-1]:
        return float("nan")
    return float(np.interp(strength, s, np.asarray(values, dtype=np.float64)))


def _paired(per_text: pd.DataFrame, a: str, b: str) -> pd.DataFrame:
    """Theme scores of methods ``a`` and ``b`` side by side, paired by (feature, strength, prompt, seed)."""
    key = ["feature", "strength", "prompt", "seed"]
    left = per_text[per_text["method"] == a].set_index(key)["theme score"]
    right = per_text[per_text["method"] == b].set_index(key)["theme score"]
    both = pd.concat({"a": left, "b": right}, axis=1).dropna().reset_index()
    if both.empty:
        raise ValueError(f"no prompt was steered with both {a!r} and {b!r} at one strength")
    return both


def _verdict(iv, per_seed: np.ndarray, a: str, b: str) -> str:
    """``a`` or ``b`` when the interval over prompts excludes 0 and every seed's difference has its sign
    (a ranking needs both), else "no winner"."""
    if not iv.excludes(0):
        return "no winner"
    sign = np.sign(iv.value)
    seeds = per_seed[np.isfinite(per_seed)]
    if not seeds.size or not (np.sign(seeds) == sign).all():
        return "no winner"
    return a if sign > 0 else b


def compare_methods(
    per_text: pd.DataFrame, a: str = "clamp", b: str = "difference of means", seed: int = 0
) -> pd.DataFrame:
    """Per (feature, strength), the theme score of method ``a`` minus that of ``b`` on the same prompts
    (paired by prompt and sampling seed), with a bootstrap 95% interval over prompts (a prompt's seeds
    stay together), the difference for each seed alone (``seed min`` .. ``seed max``: its spread), and
    the verdict they allow: "a" or "b" when the interval excludes 0 and every seed agrees, else
    "no winner"."""
    _validate_measured(per_text)
    both = _paired(per_text, a, b)
    rows = []
    for (feature, strength), g in both.groupby(["feature", "strength"], sort=False):
        diff = (g["a"] - g["b"]).to_numpy()
        iv = grouped_interval(diff, g["prompt"].to_numpy(), seed=seed)
        per_seed = g.assign(d=diff).groupby("seed")["d"].mean().to_numpy()
        rows.append(
            {"feature": feature, "strength": strength, "pairs": len(g), "prompts": g["prompt"].nunique()}
            | {"seeds": len(per_seed), "difference": iv.value, "low": iv.low, "high": iv.high}
            | {
                "seed min": per_seed.min(),
                "seed max": per_seed.max(),
                "verdict": _verdict(iv, per_seed, a, b),
            }
        )
    return pd.DataFrame(rows)


def _curve_cells(g: pd.DataFrame, methods: tuple[str, str]) -> tuple[np.ndarray, list[np.ndarray], int]:
    """For one feature's texts: each text's cell (0 unsteered, then per method its strengths in order),
    the strengths of each method's curve (0 first) and the number of cells."""
    levels = sorted(set(g.loc[g["method"].isin(methods), "strength"]) - {0.0})
    cell = np.full(len(g), -1)
    cell[(g["method"] == "unsteered").to_numpy()] = 0
    for m, method in enumerate(methods):
        for k, s in enumerate(levels):
            cell[((g["method"] == method) & (g["strength"] == s)).to_numpy()] = 1 + m * len(levels) + k
    return cell, [np.array([0.0, *levels])] * len(methods), 1 + len(methods) * len(levels)


def _at_matched(
    cell: np.ndarray,
    score: np.ndarray,
    nll: np.ndarray,
    idx: np.ndarray,
    n_cells: int,
    curves: list[np.ndarray],
    ratio: float,
) -> tuple[float, float, float, float]:
    """Texts ``idx`` -> each method's theme score where its perplexity first reaches ``ratio`` x the
    unsteered one, and the strength where it does (mean NLL and score per cell, then interpolated)."""
    c = cell[idx]
    n = np.bincount(c, minlength=n_cells).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        sc = np.bincount(c, weights=score[idx], minlength=n_cells) / n
        pp = np.exp(np.bincount(c, weights=nll[idx], minlength=n_cells) / n)
    out = []
    L = len(curves[0]) - 1
    for m, s in enumerate(curves):
        cells = [0, *range(1 + m * L, 1 + (m + 1) * L)]
        if not np.isfinite(pp[cells]).all():
            out += [float("nan"), float("nan")]
            continue
        at = strength_at(s, pp[cells], ratio * pp[0])
        out += [value_at(s, sc[cells], at), at]
    return out[0], out[2], out[1], out[3]


def matched_perplexity(
    per_text: pd.DataFrame,
    ratio: float = 2.0,
    a: str = "clamp",
    b: str = "difference of means",
    n_boot: int = 2000,
    seed: int = 0,
) -> pd.DataFrame:
    """Compare two steering methods at the same fluency cost instead of the same nominal strength: per
    feature, each method's theme score where its perplexity first reaches ``ratio`` x the unsteered
    perplexity (both interpolated linearly along its strength sweep, 0 = the unsteered texts), ``a``
    minus ``b`` with a bootstrap 95% interval over prompts (each draw recomputes both curves; draws in
    which a method never reaches the target are left out and counted in ``draws``), the difference of
    each sampling seed alone, and the verdict of :func:`compare_methods` where both methods reach the
    target in at least 97.5% of the draws (``MIN_REACHED``; else "no verdict: reached in N% of draws").
    NaN where a method never reaches the target on all the texts."""
    _validate_measured(per_text)
    ratio = as_finite(ratio, "ratio", 1.0, open_lo=True)
    for method in (a, b, "unsteered"):
        if not (per_text["method"] == method).any():
            raise ValueError(
                f"no texts of method {method!r}; matched perplexity needs {a!r}, {b!r} and unsteered"
            )
    rows = []
    for feature, g in per_text.groupby("feature", sort=False):
        g = g.reset_index(drop=True)
        cell, curves, n_cells = _curve_cells(g, (a, b))
        keep = cell >= 0
        g, cell = g[keep].reset_index(drop=True), cell[keep]
        score, nll = g["theme score"].to_numpy(np.float64), g["nll"].to_numpy(np.float64)
        ok = np.isfinite(score) & np.isfinite(nll)
        g, cell, score, nll = g[ok].reset_index(drop=True), cell[ok], score[ok], nll[ok]

        def diff(idx: np.ndarray, cell=cell, score=score, nll=nll, curves=curves, n_cells=n_cells) -> float:
            sa, sb, _, _ = _at_matched(cell, score, nll, idx, n_cells, curves, ratio)
            return sa - sb

        everything = np.arange(len(g))
        sa, sb, at_a, at_b = _at_matched(cell, score, nll, everything, n_cells, curves, ratio)
        draws: list[float] = []

        def recorded(idx: np.ndarray, diff=diff, draws=draws) -> float:
            v = diff(idx)
            draws.append(v)
            return v

        iv = group_bootstrap(recorded, g["prompt"].to_numpy(), n_boot=n_boot, seed=seed)
        seeds = g["seed"].to_numpy()
        per_seed = np.array([diff(np.flatnonzero(seeds == k)) for k in np.unique(seeds)])
        usable = int(np.isfinite(draws[:-1]).sum()) if draws else 0  # the last call is the point value
        rows.append(
            {
                "feature": feature,
                "perplexity x": ratio,
                f"{a} at (x max act)": at_a,
                f"{b} at (x max act)": at_b,
            }
            | {f"{a} score": sa, f"{b} score": sb, "difference": sa - sb, "low": iv.low, "high": iv.high}
            | {"draws": f"{usable}/{n_boot}", "prompts": g["prompt"].nunique(), "seeds": len(per_seed)}
            | {"seed min": np.nanmin(per_seed) if np.isfinite(per_seed).any() else np.nan}
            | {"seed max": np.nanmax(per_seed) if np.isfinite(per_seed).any() else np.nan}
            | {"verdict": _matched_verdict(iv, per_seed, a, b, sa - sb, usable, n_boot)}
        )
    return pd.DataFrame(rows)


MIN_REACHED = 0.975  # a matched-perplexity verdict needs both methods at the target in this share of draws


def _matched_verdict(iv, per_seed: np.ndarray, a: str, b: str, point: float, usable: int, n_boot: int) -> str:
    """:func:`_verdict`, but only where the interval is one: the draws in which a method never reaches
    the target are left out of it, so if more than 2.5% of them are missing, its 2.5% tail is not
    known (the draws left out are those near the end of the sweep) and no method is ranked."""
    if not np.isfinite(point):
        return "not reached"
    if usable < MIN_REACHED * n_boot:
        return f"no verdict: reached in {usable / n_boot:.0%} of draws"
    return _verdict(iv, per_seed, a, b)
