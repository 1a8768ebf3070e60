"""Reading SAE features: the store encoded once, then per feature its top and quantile-sampled
examples at token level, its activation histogram and density, its logit weights, its theme mix
and its top whole texts (notebook 04's dashboards)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from helpers.data.store import Store
from helpers.sae.metrics import NAN_HINT, batch_is_finite, check_rows
from helpers.sae.model import BaseSAE
from helpers.validate import as_count, as_index, finite_array


@dataclass
class FeatureIndex:
    """Every non-zero latent activation of the store, grouped by latent (CSC layout): the
    activations of latent ``i`` are ``values[starts[i]:starts[i + 1]]`` at store rows ``rows[...]``
    (sorted by row). Memory is O(non-zeros), not O(tokens x latents)."""

    rows: np.ndarray
    values: np.ndarray
    starts: np.ndarray
    n_tokens: int
    d_sae: int

    @classmethod
    def from_entries(
        cls, rows: np.ndarray, latents: np.ndarray, values: np.ndarray, n_tokens: int, d_sae: int
    ) -> FeatureIndex:
        """Build the index from (row, latent, value) triples in any order."""
        order = np.lexsort((rows, latents))
        starts = np.concatenate([[0], np.cumsum(np.bincount(latents, minlength=d_sae))])
        return cls(
            rows=np.asarray(rows)[order].astype(np.int32),
            values=np.asarray(values)[order].astype(np.float32),
            starts=starts,
            n_tokens=n_tokens,
            d_sae=d_sae,
        )

    def of(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        i = self.check(i)
        a, b = self.starts[i], self.starts[i + 1]
        return self.rows[a:b], self.values[a:b]

    @property
    def latents(self) -> np.ndarray:
        """The latent of each stored entry (aligned with ``rows`` and ``values``)."""
        return np.repeat(np.arange(self.d_sae), self.counts)

    @property
    def counts(self) -> np.ndarray:
        return np.diff(self.starts)

    @property
    def density(self) -> np.ndarray:
        return self.counts / self.n_tokens

    @property
    def max_act(self) -> np.ndarray:
        out = np.zeros(self.d_sae, np.float32)
        live = self.counts > 0
        out[live] = np.maximum.reduceat(self.values, self.starts[:-1][live])
        return out

    def live(self) -> np.ndarray:
        return np.flatnonzero(self.counts > 0)

    def check(self, i: object) -> int:
        """``i`` as a feature id of this index, or one ``ValueError`` line."""
        return as_index(i, "feature", self.d_sae, "this SAE")

    def check_live(self, i: object) -> int:
        """``i`` as the id of a feature of this index that fires, or one ``ValueError`` line."""
        i = self.check(i)
        if self.counts[i] == 0:
            raise ValueError(
                f"feature {i} is dead: it never fires on the store; pick a live one (index.live())"
            )
        return i

    def keep_rows(self, keep: np.ndarray) -> FeatureIndex:
        """The index of the store rows where ``keep`` (a bool mask over the store's rows) is true, numbered as
        :func:`helpers.data.store.keep_rows` numbers them (so it pairs with the store it returns)."""
        keep = np.asarray(keep)
        if keep.dtype != bool or keep.shape != (self.n_tokens,):
            raise ValueError(
                f"keep must be a bool mask of the store's {self.n_tokens:,} rows; got {keep.dtype} "
                f"{keep.shape}"
            )
        renumber = np.cumsum(keep) - 1
        m = keep[self.rows]
        return FeatureIndex.from_entries(
            renumber[self.rows[m]], self.latents[m], self.values[m], int(keep.sum()), self.d_sae
        )

    def values_at(self, i: int, rows: np.ndarray) -> np.ndarray:
        """Latent ``i``'s activation at each of ``rows`` (0 where it does not fire)."""
        r, v = self.of(i)
        pos = np.searchsorted(r, rows)
        pos = np.clip(pos, 0, max(len(r) - 1, 0))
        hit = (len(r) > 0) & (r[pos] == rows) if len(r) else np.zeros(len(rows), bool)
        return np.where(hit, v[pos] if len(r) else 0.0, 0.0).astype(np.float32)


@torch.no_grad()
def top_k_codes(
    acts: np.ndarray, mu: np.ndarray, enc: np.ndarray, k: int, batch_size: int = 4096
) -> FeatureIndex:
    """Every row coded by its ``k`` largest positive values of ``(x - mu) @ enc.T`` (``enc`` [latents, d]):
    the TopK SAE's encoder with fixed directions. Zero and negative values never fire."""
    k = as_count(k, "k", 1)
    E = torch.as_tensor(np.asarray(enc, np.float32)).T.contiguous()
    m = torch.as_tensor(np.asarray(mu, np.float32))
    kk = min(k, E.shape[1])
    rows, lats, vals = [], [], []
    for s in range(0, len(acts), batch_size):
        pre = (torch.as_tensor(np.asarray(acts[s : s + batch_size], np.float32)) - m) @ E
        v, i = torch.topk(pre, kk, dim=-1)
        r = torch.arange(s, s + len(pre)).unsqueeze(1).expand_as(i)
        keep = v > 0
        rows.append(r[keep].numpy())
        lats.append(i[keep].numpy())
        vals.append(v[keep].numpy())
    return FeatureIndex.from_entries(
        np.concatenate(rows), np.concatenate(lats), np.concatenate(vals), len(acts), E.shape[1]
    )


@torch.no_grad()
def encode_store(sae: BaseSAE, acts: np.ndarray, batch_size: int = 4096) -> FeatureIndex:
    """Encode every row of ``acts`` in batches and keep only the non-zero activations. Rows holding NaN
    or inf (whose latents never fire: they would silently index as 0 features) are refused in one line."""
    check_rows(acts)
    rows, lats, vals = [], [], []
    dev = sae.W_enc.device
    finite = torch.ones((), dtype=torch.bool, device=dev)  # checked once at the end: no sync per batch
    for s in range(0, len(acts), batch_size):
        x = torch.as_tensor(acts[s : s + batch_size], dtype=torch.float32, device=dev)
        finite &= batch_is_finite(x)
        f = sae.encode(x)
        r, c = torch.nonzero(f > 0, as_tuple=True)
        rows.append((r + s).cpu().numpy().astype(np.int32))
        lats.append(c.cpu().numpy().astype(np.int32))
        vals.append(f[r, c].cpu().numpy())
    if not bool(finite):
        finite_array(acts, "the activation matrix", NAN_HINT)
    return FeatureIndex.from_entries(
        np.concatenate(rows), np.concatenate(lats), np.concatenate(vals), len(acts), sae.cfg.d_sae
    )


def check_match(sae_cfg: dict, store: Store) -> None:
    """The SAE and the store must come from the same model, layer and width. ``d_in`` and ``hook_layer``
    (from the SAE's cfg.json) are compared as whole numbers: ``"16"`` is refused as such, not reported as
    "layer 16 but the store holds layer 16"."""

    def whole(key: str, lo: int) -> int | None:
        if sae_cfg.get(key) is None:
            return None
        try:
            return as_count(sae_cfg[key], f"the SAE's {key}", lo)
        except ValueError as err:
            raise ValueError(f"{err}; fix the SAE's cfg.json or retrain it (notebook 03)") from None

    d_in, layer = whole("d_in", 1), whole("hook_layer", 0)
    if d_in != store.d_model:
        raise ValueError(
            f"the SAE reads d_in = {d_in} but the store has d_model = {store.d_model}; "
            f"retrain it (notebook 03)"
        )
    if layer is not None and layer != store.layer:
        raise ValueError(
            f"the SAE was trained on layer {layer} but the store holds layer {store.layer}; "
            f"re-run notebook 03"
        )
    if sae_cfg.get("model_name") not in (None, store.model):
        raise ValueError(
            f"the SAE was trained on {sae_cfg.get('model_name')} but the store comes from {store.model}; "
            f"re-run notebook 03"
        )


# --- examples --------------------------------------------------------------------------------


@dataclass
class Example:
    doc_id: int
    center: int  # store row of the max-activating token
    rows: np.ndarray  # store rows of the window, in order
    acts: np.ndarray  # the feature's activation on each row of the window


def doc_bounds(store: Store) -> tuple[np.ndarray, np.ndarray]:
    """For each store row, the first and one-past-last row of its document (rows are grouped
    by document, in position order)."""
    change = np.flatnonzero(np.diff(store.doc_ids)) + 1
    starts = np.concatenate([[0], change])
    ends = np.concatenate([change, [len(store.doc_ids)]])
    which = np.repeat(np.arange(len(starts)), ends - starts)
    return starts[which], ends[which]


def select_top(values: np.ndarray, rows: np.ndarray, doc_ids: np.ndarray, n: int, radius: int) -> list[int]:
    """Indices into ``rows`` of the ``n`` largest activations such that no two lie in the same
    document within ``radius`` positions of each other (their windows would overlap). Rows of a
    document are consecutive, so positions differ by row differences."""
    chosen: list[int] = []
    for j in np.argsort(-values, kind="stable"):
        r, d = rows[j], doc_ids[rows[j]]
        if any(doc_ids[rows[c]] == d and abs(int(rows[c]) - int(r)) <= 2 * radius for c in chosen):
            continue
        chosen.append(int(j))
        if len(chosen) == n:
            break
    return chosen


def window(
    index: FeatureIndex, store: Store, i: int, row: int, bounds, left: int = 10, right: int = 4
) -> Example:
    first, end = bounds
    lo, hi = max(first[row], row - left), min(end[row], row + right + 1)
    rows = np.arange(lo, hi)
    return Example(doc_id=int(store.doc_ids[row]), center=int(row), rows=rows, acts=index.values_at(i, rows))


def top_examples(
    index: FeatureIndex, store: Store, i: int, n: int = 8, left: int = 10, right: int = 4, bounds=None
) -> list[Example]:
    """The ``n`` highest activations of feature ``i`` with their context, no two overlapping
    and no two with the same tokens (the samples of one prompt repeat the prompt's text)."""
    i = index.check_live(i)
    n, left, right = as_count(n, "n"), as_count(left, "left", 0), as_count(right, "right", 0)
    rows, vals = index.of(i)
    bounds = bounds or doc_bounds(store)
    out, seen = [], set()
    for j in select_top(vals, rows, store.doc_ids, len(rows), max(left, right)):
        ex = window(index, store, i, int(rows[j]), bounds, left, right)
        key = tuple(
            store.token_ids[ex.rows[: ex.center - ex.rows[0] + 1]].tolist()
        )  # the text up to the peak
        if key in seen:
            continue
        seen.add(key)
        out.append(ex)
        if len(out) == n:
            break
    return out


def quantile_examples(
    index: FeatureIndex,
    store: Store,
    i: int,
    bands: int = 4,
    per_band: int = 2,
    seed: int = 0,
    left: int = 10,
    right: int = 4,
    bounds=None,
) -> list[tuple[str, Example]]:
    """A few random examples from each band of activation (as a fraction of the max), so weak
    activations are seen too, not only the top."""
    i = index.check_live(i)
    bands, per_band = as_count(bands, "bands"), as_count(per_band, "per_band", 0)
    seed, left, right = as_count(seed, "seed", 0), as_count(left, "left", 0), as_count(right, "right", 0)
    rows, vals = index.of(i)
    top = float(vals.max())
    rng = np.random.default_rng(seed + i)
    bounds = bounds or doc_bounds(store)
    out = []
    edges = np.linspace(0, 1, bands + 1)
    for lo, hi in zip(edges[::-1][1:], edges[::-1][:-1], strict=True):
        sel = np.flatnonzero((vals > lo * top) & (vals <= hi * top))
        for j in rng.choice(sel, min(per_band, len(sel)), replace=False) if len(sel) else []:
            out.append(
                (f"{lo:.0%}–{hi:.0%} of max", window(index, store, i, int(rows[j]), bounds, left, right))
            )
    return out


# --- logit weights ---------------------------------------------------------------------------


def unembedding(model) -> torch.Tensor:
    """W_U [vocab, d_model] with the final norm's scale folded in (what a residual direction
    is multiplied by on its way to the logits, up to the norm's division by the vector's size)."""
    W_U = model.get_output_embeddings().weight.detach().float()
    for name, module in model.named_modules():
        if (
            name.count(".") <= 1
            and name.split(".")[-1] in ("norm", "ln_f", "final_layer_norm")
            and hasattr(module, "weight")
        ):
            return W_U * module.weight.detach().float()
    return W_U


def logit_weights(sae: BaseSAE, W_U: torch.Tensor, i: int) -> np.ndarray:
    """How much feature ``i``'s decoder direction raises each token's logit: W_dec,i · W_Uᵀ."""
    i = sae.feature_id(i)
    return (sae.W_dec[i].detach().float() @ W_U.T).cpu().numpy()


def logit_table(sae: BaseSAE, W_U: torch.Tensor, tokenizer, i: int, k: int = 8) -> pd.DataFrame:
    """The ``k`` tokens feature ``i`` promotes most and the ``k`` it suppresses most."""
    w = logit_weights(sae, W_U, i)
    up, down = np.argsort(-w)[:k], np.argsort(w)[:k]
    return pd.DataFrame(
        {
            "promotes": [repr(tokenizer.decode([t])) for t in up],
            "+": w[up].round(2),
            "suppresses": [repr(tokenizer.decode([t])) for t in down],
            "−": w[down].round(2),
        }
    )


# --- per-feature summaries ---------------------------------------------------------------------


def theme_mix(index: FeatureIndex, theme_of_row: np.ndarray, i: int, themes: Sequence[str]) -> pd.Series:
    """Share of the feature's firing tokens in each theme, divided by that theme's share of all
    tokens (1 = as often as chance, 3 = three times as often)."""
    rows, _ = index.of(i)
    share = pd.Series(theme_of_row[rows]).value_counts(normalize=True).reindex(themes, fill_value=0.0)
    base = pd.Series(theme_of_row).value_counts(normalize=True).reindex(themes)
    return (share / base).rename("lift")


def feature_table(
    index: FeatureIndex,
    store: Store,
    theme_of_row: np.ndarray,
    themes,
    prompt_of_row: np.ndarray | None = None,
) -> pd.DataFrame:
    """One row per live feature: count, density, max and mean activation, its most over-
    represented theme and that theme's lift, the share of its firings on its commonest token,
    the lift of every theme and (with ``prompt_of_row``) how many distinct prompts it fires in."""
    base = pd.Series(theme_of_row).value_counts(normalize=True).reindex(themes).to_numpy()
    theme_codes = pd.Categorical(theme_of_row, categories=list(themes)).codes
    out = []
    mx = index.max_act
    for i in index.live():
        rows, vals = index.of(i)
        share = np.bincount(theme_codes[rows], minlength=len(themes)) / len(rows)
        lift = share / base
        tok_counts = np.bincount(store.token_ids[rows])
        out.append(
            {
                "feature": int(i),
                "count": len(rows),
                "density": len(rows) / index.n_tokens,
                "max_act": float(mx[i]),
                "mean_act": float(vals.mean()),
                "top_theme": themes[int(lift.argmax())],
                "theme_lift": float(lift.max()),
                "top_token_share": float(tok_counts.max() / len(rows)),
                **({"n_prompts": len(np.unique(prompt_of_row[rows]))} if prompt_of_row is not None else {}),
                **{f"lift:{t}": float(v) for t, v in zip(themes, lift, strict=True)},
            }
        )
    return pd.DataFrame(out).set_index("feature")


def top_texts(index: FeatureIndex, store: Store, docs: pd.DataFrame, i: int, n: int = 5) -> pd.DataFrame:
    """The report's view: the ``n`` documents with the feature's highest activation."""
    rows, vals = index.of(i)
    per_doc = (
        pd.DataFrame({"doc_id": store.doc_ids[rows], "act": vals}).groupby("doc_id")["act"].max().nlargest(n)
    )
    d = docs.set_index("doc_id").loc[per_doc.index]
    return pd.DataFrame(
        {
            "doc_id": per_doc.index,
            "max_act": per_doc.to_numpy().round(2),
            "theme": d["theme"].to_numpy(),
            "text": d["text"].str.slice(0, 160).to_numpy(),
        }
    )


def theme_lifts(index: FeatureIndex, theme_codes: np.ndarray, themes, rows_mask: np.ndarray) -> pd.DataFrame:
    """[live feature x theme] lift — share of the feature's firings in the theme over the theme's
    share of tokens — counted on the rows in ``rows_mask`` only (the training prompts)."""
    T = len(themes)
    lat = index.latents
    keep = rows_mask[index.rows]
    counts = np.bincount(lat[keep] * T + theme_codes[index.rows[keep]], minlength=index.d_sae * T).reshape(
        index.d_sae, T
    )
    base = np.bincount(theme_codes[rows_mask], minlength=T) / rows_mask.sum()
    with np.errstate(invalid="ignore", divide="ignore"):
        lift = counts / counts.sum(1, keepdims=True) / base
    return pd.DataFrame(np.nan_to_num(lift), columns=list(themes)).loc[index.live()]


def sae_fingerprint(folder) -> str:
    """The first 12 hex digits of the SHA-256 of the SAE's weights file in ``folder``, from its
    completion marker (``workbook_sae.json``; no hashing). Readings written by hand for one trained SAE
    carry it, so a retrained SAE (new feature ids) is told apart from the one that was read."""
    from pathlib import Path

    from helpers.files import load_json
    from helpers.sae.model import MARKER

    marker = Path(folder) / MARKER
    try:
        digest = load_json(marker)["files"]["sae_weights.safetensors"]["sha256"]
    except (OSError, ValueError, KeyError, TypeError):
        raise ValueError(
            f"{marker} is missing or names no weights file; run notebook 03 to save the SAE"
        ) from None
    return str(digest)[:12]
