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

A group of batches is decoded in three parts: :func:`_prefill` runs the prompts once into a KV
cache with room for every token to come (:mod:`helpers.model.kv_cache`), :func:`_sample` and
:func:`_step` draw and feed one token per row, and :func:`_finish` cuts each row's text at its
end-of-text; :class:`_Decoding` is the state they share.
"""

from __future__ import annotations

import itertools
from contextlib import nullcontext
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from torch import nn
from transformers import Cache

from helpers.config import GenerationConfig
from helpers.files import params_key
from helpers.model.blocks import accepts, validate_layer
from helpers.model.capture import Capture
from helpers.model.hooks import edit_block
from helpers.model.kv_cache import buffer_cache
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
    """Sample one of each row's top-k tokens (``vals`` sorted, descending), cut to the smallest set
    whose probability reaches ``top_p`` (nucleus sampling)."""
    probs = torch.softmax(vals / temperature, dim=-1)
    before = probs.cumsum(-1) - probs  # mass of the better tokens
    probs = probs.masked_fill(before >= top_p, 0.0)  # the top token always stays
    choice = torch.multinomial(probs, 1, generator=generator)
    return idx.gather(-1, choice).squeeze(-1)


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


class _Forward:
    """One forward pass of the model over the rows of a batch, with the keywords it accepts."""

    def __init__(self, model: nn.Module):
        self.model = model
        self.use_pos = accepts(model, "position_ids")
        self.extra = {"logits_to_keep": 1} if accepts(model, "logits_to_keep") else {}

    def __call__(self, ids, mask, pos, cache):
        return self.model(
            input_ids=ids,
            attention_mask=mask,
            past_key_values=cache,
            use_cache=True,
            **({"position_ids": pos} if self.use_pos else {}),
            **self.extra,
        )


@dataclass
class _Prompts:
    """A group's prompts as run once: left-padded ids [P, T] (on the CPU), which of them are real
    tokens, and the layer's residual at each [P, T, d] (None when nothing is recorded)."""

    ids: torch.Tensor
    valid: torch.Tensor
    residual: torch.Tensor | None


@dataclass
class _Sampler:
    """How every row's next token is drawn: greedily (temperature 0), or from its top-k logits cut
    to top-p, chunk ``c`` (rows ``bounds[c]:bounds[c + 1]``) with ``generators[c]``. ``vals`` and
    ``idx`` hold each row's top-k [B, k]; rows out of the batch keep stale ones, drawn but unused,
    so that a chunk's draws never depend on which of its rows have ended."""

    cfg: GenerationConfig
    bounds: list[int]
    generators: list[torch.Generator]
    eos: int
    pad: int
    vals: torch.Tensor | None = None
    idx: torch.Tensor | None = None


@dataclass
class _Decoding:
    """What a decoding step reads and updates. The batch holds ``rows`` (indices into the group's B
    rows; they shrink as rows end); ``cache``, ``logits``, ``mask`` and ``pos`` are over those rows."""

    cache: Cache | None
    logits: torch.Tensor  # [n, vocab]: the next-token logits
    mask: torch.Tensor  # [n, capacity]: attention mask, its first ``length`` columns in use
    length: int
    pos: torch.Tensor  # [n, 1]: position of the last token fed (real tokens counted)
    rows: torch.Tensor  # [n]
    done: torch.Tensor  # [B]: rows that have sampled their end-of-text
    live: list[bool]  # chunks still sampling
    got: list[torch.Tensor]  # what the recording hook saw in the forward pass just run
    steps: int = 0  # tokens sampled per row so far
    new_ids: list[torch.Tensor] = field(default_factory=list)  # [B] per step (pad once a row ended)
    fed_rows: list[torch.Tensor] = field(default_factory=list)  # per step: rows whose token was fed and kept
    fed_res: list[torch.Tensor] = field(default_factory=list)  # per step: their residuals


@dataclass
class _Text:
    """One generated row: continuation ids (up to its end-of-text), the ids fed to the model, the
    layer's residual at each of those (None when nothing is recorded) and the document's ids
    (prompt + continuation)."""

    continuation: np.ndarray
    fed: np.ndarray
    residual: np.ndarray | None
    document: np.ndarray


def _prefill(
    forward: _Forward, texts: list[list[int]], cfg: GenerationConfig, pad: int, n_chunks: int, got: list
) -> tuple[_Prompts, _Decoding]:
    """Run the prompts once (left-padded, positions counting real tokens only) into a cache with room
    for every token still to come, then repeat cache, logits, mask and positions for the samples."""
    device = next(forward.model.parameters()).device
    S = cfg.samples_per_prompt
    ids, mask = _left_padded(texts, pad)
    ids, mask = ids.to(device), mask.to(device)
    pos = (mask.cumsum(-1) - 1).clamp(min=0)
    L0 = ids.shape[1]
    # the last sampled token is never fed: the cache holds at most L0 + max_new_tokens - 1 tokens
    out = forward(ids, mask, pos, buffer_cache(forward.model, L0 + cfg.max_new_tokens - 1))
    prompts = _Prompts(ids.cpu(), mask.bool().cpu(), got[0].float().cpu() if got else None)
    cache = out.past_key_values
    if S > 1:
        cache.batch_repeat_interleave(S)
    B = len(texts) * S
    mask_buf = torch.zeros(B, L0 + cfg.max_new_tokens, dtype=mask.dtype, device=device)
    mask_buf[:, :L0] = mask.repeat_interleave(S, 0)
    state = _Decoding(
        cache=cache,
        logits=out.logits[:, -1].repeat_interleave(S, 0),
        mask=mask_buf,
        length=L0,
        pos=pos[:, -1:].repeat_interleave(S, 0),
        rows=torch.arange(B, device=device),
        done=torch.zeros(B, dtype=torch.bool, device=device),
        live=[True] * n_chunks,
        got=got,
    )
    return prompts, state


def _sample(state: _Decoding, sampler: _Sampler) -> torch.Tensor:
    """Every row's next token [B] (``pad`` for rows that have ended); end-of-text is barred before
    ``min_new_tokens``. Each live chunk draws from its generator over all its rows."""
    cfg = sampler.cfg
    logits = state.logits
    if state.steps < cfg.min_new_tokens:
        logits[:, sampler.eos] = float("-inf")  # in place: the logits are this loop's own
    nxt = torch.full(state.done.shape, sampler.pad, dtype=torch.long, device=logits.device)
    if cfg.temperature == 0:
        nxt[state.rows] = logits.argmax(-1)
    else:
        if sampler.vals is None:
            k = min(cfg.top_k, logits.shape[-1])
            sampler.vals = torch.zeros(len(nxt), k, device=logits.device)
            sampler.idx = torch.zeros(len(nxt), k, dtype=torch.long, device=logits.device)
        sampler.vals[state.rows], sampler.idx[state.rows] = _top_k(logits, cfg.top_k)
        for c, (a, b) in enumerate(itertools.pairwise(sampler.bounds)):
            if state.live[c]:
                nxt[a:b] = _sample_top(
                    sampler.vals[a:b], sampler.idx[a:b], cfg.temperature, cfg.top_p, sampler.generators[c]
                )
    state.steps += 1
    return nxt.masked_fill_(state.done, sampler.pad)


def _step(forward: _Forward, state: _Decoding, nxt: torch.Tensor, sampler: _Sampler) -> bool:
    """Feed the sampled tokens ``nxt`` [B] and keep the next logits; rows that ended before this step
    are fed masked padding, and dropped from the batch in bulk. False (nothing fed) once every chunk
    has ended."""
    alive = ~state.done  # rows whose token this step is part of their text
    state.done |= nxt == sampler.eos
    state.live = [
        live and not bool(state.done[a:b].all())
        for live, (a, b) in zip(state.live, itertools.pairwise(sampler.bounds), strict=True)
    ]
    if not any(state.live):
        return False
    n_done = int(state.done[state.rows].sum())
    if n_done >= max(1, len(state.rows) * _COMPACT_AT):
        keep = (~state.done[state.rows]).nonzero().squeeze(1)
        state.rows, state.pos, state.mask = state.rows[keep], state.pos[keep], state.mask[keep]
        state.cache.batch_select_indices(keep)
    state.mask[:, state.length] = alive[state.rows].to(state.mask.dtype)
    state.length += 1
    state.pos = state.pos + 1
    tok = nxt[state.rows]
    state.got.clear()
    out = forward(tok.unsqueeze(1), state.mask[:, : state.length], state.pos, state.cache)
    state.cache, state.logits = out.past_key_values, out.logits[:, -1]
    valid = alive[state.rows] & (tok != sampler.eos)  # the end-of-text token is fed but not kept
    state.fed_rows.append(state.rows[valid].cpu())
    if state.got:
        state.fed_res.append(state.got[0][:, 0][valid].float().cpu())
    return True


def _finish(prompts: _Prompts, state: _Decoding, samples: int, eos: int) -> list[_Text]:
    """Each row's text from the sampled tokens and the residuals recorded step by step."""
    B = len(state.done)
    new = torch.stack(state.new_ids, 1).cpu()  # [B, steps]
    fed_rows = torch.cat(state.fed_rows) if state.fed_rows else torch.zeros(0, dtype=torch.long)
    order = torch.sort(fed_rows, stable=True).indices  # by row, then step
    n_fed = torch.bincount(fed_rows, minlength=B).tolist()
    starts = np.concatenate([[0], np.cumsum(n_fed)])
    step_res = torch.cat(state.fed_res)[order] if state.fed_res else None
    out = []
    for b in range(B):
        p = b // samples
        valid = prompts.valid[p]
        p_ids = prompts.ids[p][valid]
        cont = new[b]
        stop = (cont == eos).nonzero()
        cont = cont[: int(stop[0]) if len(stop) else len(cont)]
        res = None
        if prompts.residual is not None:
            parts = [prompts.residual[p][valid]]
            if step_res is not None:
                parts.append(step_res[starts[b] : starts[b + 1]])
            res = torch.cat(parts).numpy()
        fed = torch.cat([p_ids, cont[: n_fed[b]]]).numpy()
        out.append(_Text(cont.numpy(), fed, res, torch.cat([p_ids, cont]).numpy()))
    return out


@torch.inference_mode()
def _generate_group(
    model,
    tokenizer,
    chunks: list[list[list[int]]],
    cfg: GenerationConfig,
    generators: list[torch.Generator],
    layer: int | None,
) -> list[_Text]:
    """Generate ``cfg.samples_per_prompt`` continuations of each prompt (token ids) of each chunk
    (a batch of the config, sampled from its own generator); one :class:`_Text` per row,
    chunk-major, then prompt-major, then sample.

    The chunks are decoded together but each is sampled exactly as if decoded alone: its top-k
    candidates are drawn with its generator, over all its rows, at every step until all its rows
    have ended."""
    eos = tokenizer.eos_token_id
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
    S = cfg.samples_per_prompt
    texts = [t for c in chunks for t in c]
    bounds = np.cumsum([0] + [len(c) * S for c in chunks]).tolist()
    sampler = _Sampler(cfg, bounds, generators, eos, pad)
    forward = _Forward(model)
    got: list[torch.Tensor] = []
    record = edit_block(model, layer, got.append) if layer is not None else nullcontext()
    with record:
        prompts, state = _prefill(forward, texts, cfg, pad, len(chunks), got)
        for step in range(cfg.max_new_tokens):
            nxt = _sample(state, sampler)
            state.new_ids.append(nxt)
            if step == cfg.max_new_tokens - 1 or not _step(forward, state, nxt, sampler):
                break
    return _finish(prompts, state, S, eos)


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
        rows = _generate_group(
            model, tokenizer, [prompt_ids[b * P : (b + 1) * P] for b in group], cfg, gens, layer
        )
        flat = [p for c in chunks for p in c]
        for i, prompt in enumerate(flat):
            mine = rows[i * S : (i + 1) * S]
            texts.append([tokenizer.decode(r.continuation, skip_special_tokens=True) for r in mine])
            if cfg.chat_template:
                documents.append([prompt + "\n" + t for t in texts[-1]])
            else:
                documents.append([tokenizer.decode(r.document, skip_special_tokens=True) for r in mine])
            token_ids.append([r.fed for r in mine])
            if layer is not None:
                parts.extend(r.residual for r in mine)
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
