"""Generate continuations of the prompts — batched, left-padded, seeded — and capture the
residual stream at one layer while doing it.

The sampling loop is our own (a KV cache, top-k then top-p sampling), for two reasons:

* **Speed.** Every sample of a prompt shares the prompt, so the prompt is run once and its KV
  cache is repeated for the samples. And the residual stream at the chosen layer is recorded by
  a forward hook *during* generation: the model computes it anyway, so the activation store
  costs no second pass over the texts (on 2 cores that pass would take longer than a minute).
* **Control.** We know exactly which token each residual belongs to: padding and the tokens
  after a sequence's end-of-text are masked out, and positions count real tokens only, so a
  prompt's continuation does not depend on how much left padding its batch needed.

The captured rows equal what :func:`helpers.model.capture.capture_residual` gives for the same
token ids (tested); the last generated token of each text is never fed back to the model, so it
has no residual and is not in the capture.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import nn
from transformers.cache_utils import DynamicLayer

from helpers.config import GenerationConfig
from helpers.files import params_key
from helpers.model.blocks import accepts, validate_layer
from helpers.model.capture import Capture
from helpers.model.hooks import edit_block
from helpers.model.loading import model_name
from helpers.progress import progress_bar
from helpers.validate import as_count, context_length, token_limit


@dataclass
class Generated:
    """Continuations (``texts[i][s]``: prompt i, sample s), whole documents (prompt +
    continuation, decoded from the tokens the model saw), the token ids fed to the model (the
    last generated token is never fed) and ``capture``, the layer's residual for each of them."""

    texts: list[list[str]]
    documents: list[list[str]]
    token_ids: list[list[np.ndarray]]
    capture: Capture | None


def _top_k(logits: torch.Tensor, top_k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``top_k`` best logits of each row (float, sorted, descending) and their token ids."""
    return torch.topk(logits.float(), min(top_k, logits.shape[-1]), dim=-1)


def _sample_top(
    vals: torch.Tensor, idx: torch.Tensor, temperature: float, top_p: float, generator: torch.Generator
) -> torch.Tensor:
    """Sample one of each row's top-k tokens (``vals`` sorted, descending), cut to top-p."""
    probs = torch.softmax(vals / temperature, dim=-1)
    before = probs.cumsum(-1) - probs  # mass of the better tokens
    probs = probs.masked_fill(before >= top_p, 0.0)  # the top token always stays
    choice = torch.multinomial(probs, 1, generator=generator)
    return idx.gather(-1, choice).squeeze(-1)


def sample_next(
    logits: torch.Tensor, temperature: float, top_k: int, top_p: float, generator: torch.Generator
) -> torch.Tensor:
    """One token per row: greedy if ``temperature == 0``, else from the top-k tokens, cut to the
    smallest set whose probability reaches ``top_p`` (nucleus sampling)."""
    if temperature == 0:
        return logits.argmax(-1)
    return _sample_top(*_top_k(logits, top_k), temperature, top_p, generator)


def _model_input(tokenizer, prompt: str, chat: bool) -> str:
    if not chat:
        return prompt
    return tokenizer.apply_chat_template(
        [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
    )


# Rows (prompts x samples) decoded together. One decoding step multiplies a [rows, 576] matrix by
# every weight matrix; with few rows those products run far below the machine's matmul rate (on
# 2 cores: ~50% of it at 64 rows, ~75% at 256). Consecutive batches of ``prompts_per_batch``
# prompts are therefore decoded together, each still sampled from its own generator.
ROWS_PER_STEP = 256
# drop finished rows from the batch once this fraction of it has finished (a copy of the cache)
_COMPACT_AT = 1 / 8


class _GrowingLayer(DynamicLayer):
    """A KV-cache layer written into buffers with room for the tokens still to come, so that a
    decoding step writes one column instead of copying the whole cache (``torch.cat``)."""

    def reserve(self, extra: int) -> None:
        n = self.keys.shape[-2]
        self._k = self.keys.new_empty(*self.keys.shape[:-2], n + extra, self.keys.shape[-1])
        self._v = self.values.new_empty(*self.values.shape[:-2], n + extra, self.values.shape[-1])
        self._k[..., :n, :] = self.keys
        self._v[..., :n, :] = self.values
        self._n = n
        self._views()

    def _views(self) -> None:
        self.keys, self.values = self._k[..., : self._n, :], self._v[..., : self._n, :]

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        n = key_states.shape[-2]
        if self._n + n > self._k.shape[-2]:
            self.reserve(max(n, self._n))  # never needed by _decode, kept for safety
        self._k[..., self._n : self._n + n, :] = key_states
        self._v[..., self._n : self._n + n, :] = value_states
        self._n += n
        self._views()
        return self.keys, self.values

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        self._k, self._v = self._k[indices], self._v[indices]
        self._views()


def _preallocate(cache, extra: int) -> None:
    """Give a plain ``DynamicCache``'s layers room for ``extra`` more tokens (other caches: as is)."""
    layers = getattr(cache, "layers", None)
    if not layers or any(type(layer) is not DynamicLayer or not layer.is_initialized for layer in layers):
        return
    for layer in layers:
        layer.__class__ = _GrowingLayer
        layer.reserve(extra)


def _left_padded(seqs: list[list[int]], pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids [B, T] left-padded with ``pad`` (every prompt ends at the last column, where
    generation goes on) and their attention mask."""
    T = max(len(x) for x in seqs)
    ids = torch.full((len(seqs), T), pad, dtype=torch.long)
    mask = torch.zeros((len(seqs), T), dtype=torch.long)
    for r, x in enumerate(seqs):
        if x:
            ids[r, T - len(x) :] = torch.as_tensor(x, dtype=torch.long)
            mask[r, T - len(x) :] = 1
    return ids, mask


def _prompt_ids(model, tokenizer, prompts: list[str], cfg: GenerationConfig) -> list[list[int]]:
    """Every prompt's token ids as the model reads them (chat template included), refusing, before
    anything runs, a prompt that leaves no room for ``cfg.max_new_tokens`` in the model's context."""
    inputs = [_model_input(tokenizer, p, cfg.chat_template) for p in prompts]
    seqs = (
        [list(x) for x in tokenizer(inputs, add_special_tokens=not cfg.chat_template)["input_ids"]]
        if inputs
        else []
    )
    context = context_length(model)
    if context is None:
        return seqs
    as_count(
        cfg.max_new_tokens, f"max_new_tokens (the model's context is {context:,} tokens)", 1, context - 1
    )
    limit = context - cfg.max_new_tokens
    for i, x in enumerate(seqs):
        if len(x) > limit:
            room = f"max_new_tokens = {cfg.max_new_tokens} in the model's {context:,}-token context"
            token_limit(len(x), limit, f"prompt {i} (with {room})")
    return seqs


@torch.inference_mode()
def _generate_batch(
    model,
    tokenizer,
    chunks: list[list[list[int]]],
    cfg: GenerationConfig,
    generators: list,
    layer: int | None,
):
    """Generate ``cfg.samples_per_prompt`` continuations of each prompt (token ids) of each chunk
    (a batch of the config, sampled from its own generator); return, per row (chunk-major, then
    prompt-major), the continuation ids, the fed token ids and the captured residual rows.

    The chunks are decoded together but each is sampled exactly as if decoded alone: its top-k
    candidates are drawn with its generator, over all its rows, at every step until all its rows
    have ended. Finished rows are fed masked padding, and dropped from the batch in bulk."""
    device = next(model.parameters()).device
    S = cfg.samples_per_prompt
    texts = [t for c in chunks for t in c]
    bounds = np.cumsum([0] + [len(c) * S for c in chunks])
    eos = tokenizer.eos_token_id
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
    ids, mask = _left_padded(texts, pad)
    mask = mask.to(device)
    ids = ids.to(device)
    pos = (mask.cumsum(-1) - 1).clamp(min=0)
    use_pos = accepts(model, "position_ids")
    extra = {"logits_to_keep": 1} if accepts(model, "logits_to_keep") else {}
    got: list[torch.Tensor] = []
    record = edit_block(model, layer, lambda h: got.append(h)) if layer is not None else nullcontext()
    B = len(texts) * S
    greedy = cfg.temperature == 0
    k = cfg.top_k
    with record:
        out = model(
            input_ids=ids,
            attention_mask=mask,
            use_cache=True,
            **({"position_ids": pos} if use_pos else {}),
            **extra,
        )
        prompt_valid = mask.bool().cpu()
        prompt_ids = ids.cpu()
        prompt_res = got[0].float().cpu() if layer is not None else None
        # the prompt ran once; repeat it (cache, logits, mask, positions) for each sample
        cache = out.past_key_values
        if S > 1:
            cache.batch_repeat_interleave(S)
        if cfg.max_new_tokens > 1:
            _preallocate(cache, cfg.max_new_tokens - 1)
        logits = out.logits[:, -1].repeat_interleave(S, 0)
        L0 = mask.shape[1]
        mask_buf = torch.zeros(B, L0 + cfg.max_new_tokens, dtype=mask.dtype, device=device)
        mask_buf[:, :L0] = mask.repeat_interleave(S, 0)
        pos = pos[:, -1:].repeat_interleave(S, 0)
        rows = torch.arange(B, device=device)  # the rows in the batch (they shrink as rows end)
        done = torch.zeros(B, dtype=torch.bool, device=device)  # over all B rows
        live = [True] * len(chunks)  # chunks still sampling
        if not greedy:  # the top-k of every row (rows out of the batch keep stale, unused ones)
            vals_all = torch.zeros(B, min(k, logits.shape[-1]), device=device)
            idx_all = torch.zeros(B, min(k, logits.shape[-1]), dtype=torch.long, device=device)
        new_ids, fed_rows, fed_res = [], [], []
        for step in range(cfg.max_new_tokens):
            if step < cfg.min_new_tokens:
                logits = logits.clone()
                logits[:, eos] = float("-inf")
            nxt = torch.full((B,), pad, dtype=torch.long, device=device)
            if greedy:
                nxt[rows] = logits.argmax(-1)
            else:
                vals_all[rows], idx_all[rows] = _top_k(logits, k)
                for c, (a, b) in enumerate(zip(bounds[:-1], bounds[1:], strict=True)):
                    if live[c]:
                        nxt[a:b] = _sample_top(
                            vals_all[a:b], idx_all[a:b], cfg.temperature, cfg.top_p, generators[c]
                        )
            nxt = torch.where(done, torch.full_like(nxt, pad), nxt)
            new_ids.append(nxt.cpu())
            if step == cfg.max_new_tokens - 1:
                break
            alive = ~done
            done = done | (nxt == eos)
            live = [
                live[c] and not bool(done[a:b].all())
                for c, (a, b) in enumerate(zip(bounds[:-1], bounds[1:], strict=True))
            ]
            if not any(live):
                break
            n_done = int(done[rows].sum())
            if n_done >= max(1, len(rows) * _COMPACT_AT):
                keep = (~done[rows]).nonzero().squeeze(1)
                rows, pos, mask_buf = rows[keep], pos[keep], mask_buf[keep]
                cache.batch_select_indices(keep)
            # feed the sampled token: rows already finished before this step are masked out
            L = L0 + step
            mask_buf[:, L] = alive[rows].to(mask_buf.dtype)
            pos = pos + 1
            got.clear()
            tok = nxt[rows]
            out = model(
                input_ids=tok.unsqueeze(1),
                attention_mask=mask_buf[:, : L + 1],
                past_key_values=cache,
                use_cache=True,
                **({"position_ids": pos} if use_pos else {}),
                **extra,
            )
            cache, logits = out.past_key_values, out.logits[:, -1]
            valid = alive[rows] & (tok != eos)
            fed_rows.append(rows[valid].cpu())
            if layer is not None:
                fed_res.append(got[0][:, 0][valid].float().cpu())
    new = torch.stack(new_ids, 1)  # [B, n_steps]
    fed_rows_all = torch.cat(fed_rows) if fed_rows else torch.zeros(0, dtype=torch.long)
    order = torch.sort(fed_rows_all, stable=True).indices  # by row, then step
    n_fed = torch.bincount(fed_rows_all, minlength=B).tolist()
    starts = np.concatenate([[0], np.cumsum(n_fed)])
    step_res = torch.cat(fed_res)[order] if layer is not None and fed_res else None
    out_rows = []
    for b in range(B):
        p = b // S
        p_ids = prompt_ids[p][prompt_valid[p]]
        cont = new[b]
        stop = (cont == eos).nonzero()
        cont = cont[: int(stop[0]) if len(stop) else len(cont)]
        fed = torch.cat([p_ids, cont[: n_fed[b]]])
        res = None
        if layer is not None:
            parts = [prompt_res[p][prompt_valid[p]]]
            if step_res is not None:
                parts.append(step_res[starts[b] : starts[b + 1]])
            res = torch.cat(parts).numpy()
        out_rows.append((cont.numpy(), fed.numpy(), res, torch.cat([p_ids, cont]).numpy()))
    return out_rows


def generate(
    model: nn.Module,
    tokenizer,
    prompts: list[str],
    cfg: GenerationConfig,
    layer: int | None = None,
    progress: bool = True,
) -> Generated:
    """Sample ``cfg.samples_per_prompt`` continuations of every prompt (seeded per batch of
    ``cfg.prompts_per_batch`` prompts, so the same parameters give the same texts), capturing
    the residual stream after block ``layer``. Consecutive batches are decoded together, up to
    :data:`ROWS_PER_STEP` rows, each sampled from its own generator."""
    cfg.validate()
    if layer is not None:
        layer = validate_layer(model, layer)
    if tokenizer.eos_token_id is None:
        raise ValueError("the tokenizer has no end-of-text token; set tokenizer.eos_token first")
    prompt_ids = _prompt_ids(model, tokenizer, prompts, cfg)  # refuses a prompt too long before any work
    S, P = cfg.samples_per_prompt, cfg.prompts_per_batch
    texts: list[list[str]] = []
    documents: list[list[str]] = []
    token_ids: list[list[np.ndarray]] = []
    parts = []
    n_batches = -(-len(prompts) // P)
    per_group = max(1, ROWS_PER_STEP // (P * S))  # batches decoded together
    bar = progress_bar(total=n_batches, desc="generating", disable=not progress)
    for g0 in range(0, n_batches, per_group):
        group = range(g0, min(g0 + per_group, n_batches))
        chunks = [prompts[b * P : (b + 1) * P] for b in group]
        gens = [torch.Generator().manual_seed(cfg.seed * 100_003 + b) for b in group]
        rows = _generate_batch(
            model, tokenizer, [prompt_ids[b * P : (b + 1) * P] for b in group], cfg, gens, layer
        )
        flat = [p for c in chunks for p in c]
        for i, prompt in enumerate(flat):
            texts.append([tokenizer.decode(rows[i * S + s][0], skip_special_tokens=True) for s in range(S)])
            if cfg.chat_template:
                documents.append([prompt + "\n" + t for t in texts[-1]])
            else:
                documents.append(
                    [tokenizer.decode(rows[i * S + s][3], skip_special_tokens=True) for s in range(S)]
                )
            token_ids.append([rows[i * S + s][1] for s in range(S)])
            if layer is not None:
                parts.extend(rows[i * S + s][2] for s in range(S))
        bar.update(len(group))
    bar.close()
    capture = None
    if layer is not None:
        flat = [t for doc in token_ids for t in doc]
        capture = Capture(
            acts=np.concatenate(parts).astype(np.float32),
            token_ids=np.concatenate(flat).astype(np.int32),
            doc_ids=np.repeat(np.arange(len(flat)), [len(t) for t in flat]).astype(np.int32),
            positions=np.concatenate([np.arange(len(t)) for t in flat]).astype(np.int32),
        )
    return Generated(texts=texts, documents=documents, token_ids=token_ids, capture=capture)


def generations_frame(prompts: pd.DataFrame, documents: list[list[str]]) -> pd.DataFrame:
    """``doc_id,prompt_id,theme,sample,text`` (text = prompt + continuation, ``documents[i][s]``);
    doc ids count prompt-major (prompt i, sample s -> i * samples + s), as :func:`generate` does."""
    rows = []
    for (_, p), docs in zip(prompts.iterrows(), documents, strict=True):
        for s, text in enumerate(docs):
            rows.append({"prompt_id": int(p["id"]), "theme": p["theme"], "sample": s, "text": text})
    df = pd.DataFrame(rows)
    df.insert(0, "doc_id", range(len(df)))
    return df


def generation_params(model: nn.Module, prompts: pd.DataFrame, cfg: GenerationConfig) -> dict:
    """Everything the generated texts depend on: model, prompts (hashed) and the config."""
    corpus = prompts[["id", "theme", "prompt"]].astype(str).values.tolist()
    return {
        "model": model_name(model),
        "prompts": params_key({"rows": corpus}),
        "n_prompts": len(prompts),
        **cfg.key(),
    }
