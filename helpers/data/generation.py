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
from tqdm.auto import tqdm

from helpers.config import GenerationConfig
from helpers.files import params_key
from helpers.model.blocks import accepts, validate_layer
from helpers.model.capture import Capture
from helpers.model.hooks import edit_block
from helpers.model.loading import model_name


@dataclass
class Generated:
    """Continuations (``texts[i][s]``: prompt i, sample s), whole documents (prompt +
    continuation, decoded from the tokens the model saw), the token ids fed to the model (the
    last generated token is never fed) and ``capture``, the layer's residual for each of them."""

    texts: list[list[str]]
    documents: list[list[str]]
    token_ids: list[list[np.ndarray]]
    capture: Capture | None


def sample_next(
    logits: torch.Tensor, temperature: float, top_k: int, top_p: float, generator: torch.Generator
) -> torch.Tensor:
    """One token per row: greedy if ``temperature == 0``, else from the top-k tokens, cut to the
    smallest set whose probability reaches ``top_p`` (nucleus sampling)."""
    if temperature == 0:
        return logits.argmax(-1)
    vals, idx = torch.topk(logits.float(), min(top_k, logits.shape[-1]), dim=-1)  # sorted, descending
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


@torch.inference_mode()
def _generate_batch(model, tokenizer, texts: list[str], cfg: GenerationConfig, generator, layer: int | None):
    """Generate ``cfg.samples_per_prompt`` continuations of each text; return, per row
    (prompt-major), the continuation ids, the fed token ids and the captured residual rows."""
    device = next(model.parameters()).device
    S = cfg.samples_per_prompt
    enc = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=not cfg.chat_template)
    mask = enc["attention_mask"].to(device)
    ids = enc["input_ids"].to(device)
    pos = (mask.cumsum(-1) - 1).clamp(min=0)
    use_pos = accepts(model, "position_ids")
    extra = {"logits_to_keep": 1} if accepts(model, "logits_to_keep") else {}
    got: list[torch.Tensor] = []
    record = (
        edit_block(model, layer, lambda h: got.append(h.float().cpu()))
        if layer is not None
        else nullcontext()
    )
    with record:
        out = model(
            input_ids=ids,
            attention_mask=mask,
            use_cache=True,
            **({"position_ids": pos} if use_pos else {}),
            **extra,
        )
        # the prompt ran once; repeat it (cache, logits, mask, positions) for each sample
        cache = out.past_key_values
        if S > 1:
            cache.batch_repeat_interleave(S)
        logits = out.logits[:, -1].repeat_interleave(S, 0)
        mask = mask.repeat_interleave(S, 0)
        pos = pos[:, -1:].repeat_interleave(S, 0)
        B = len(texts) * S
        prompt_valid = mask.bool().cpu()
        prompt_ids = ids.repeat_interleave(S, 0).cpu()
        prompt_res = got[0].repeat_interleave(S, 0) if layer is not None else None
        eos = tokenizer.eos_token_id
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
        done = torch.zeros(B, dtype=torch.bool, device=device)
        new_ids, fed_valid, step_res = [], [], []
        for step in range(cfg.max_new_tokens):
            if step < cfg.min_new_tokens:
                logits = logits.clone()
                logits[:, eos] = float("-inf")
            nxt = sample_next(logits, cfg.temperature, cfg.top_k, cfg.top_p, generator)
            nxt = torch.where(done, torch.full_like(nxt, pad), nxt)
            new_ids.append(nxt.cpu())
            if step == cfg.max_new_tokens - 1:
                break
            alive = ~done
            done = done | (nxt == eos)
            if bool(done.all()):
                break
            # feed the sampled token: rows already finished before this step are masked out
            mask = torch.cat([mask, alive.long().unsqueeze(1)], dim=1)
            pos = pos + 1
            got.clear()
            out = model(
                input_ids=nxt.unsqueeze(1),
                attention_mask=mask,
                past_key_values=cache,
                use_cache=True,
                **({"position_ids": pos} if use_pos else {}),
                **extra,
            )
            cache, logits = out.past_key_values, out.logits[:, -1]
            fed_valid.append((alive & (nxt != eos)).cpu())
            if layer is not None:
                step_res.append(got[0][:, 0])
    new = torch.stack(new_ids, 1)  # [B, n_steps]
    rows = []
    for b in range(B):
        p_ids = prompt_ids[b][prompt_valid[b]]
        n_fed = sum(int(v[b]) for v in fed_valid)  # fed continuation tokens (not eos, not after it)
        cont = new[b]
        stop = (cont == eos).nonzero()
        cont = cont[: int(stop[0]) if len(stop) else len(cont)]
        fed = torch.cat([p_ids, cont[:n_fed]])
        res = None
        if layer is not None:
            parts = [prompt_res[b][prompt_valid[b]]]
            parts += [step_res[t][b : b + 1] for t in range(len(step_res)) if fed_valid[t][b]]
            res = torch.cat(parts).numpy()
        rows.append((cont.numpy(), fed.numpy(), res, torch.cat([p_ids, cont]).numpy()))
    return rows


def generate(
    model: nn.Module,
    tokenizer,
    prompts: list[str],
    cfg: GenerationConfig,
    layer: int | None = None,
    progress: bool = True,
) -> Generated:
    """Sample ``cfg.samples_per_prompt`` continuations of every prompt (seeded per batch, so the
    same parameters give the same texts), capturing the residual stream after block ``layer``."""
    cfg.validate()
    if layer is not None:
        layer = validate_layer(model, layer)
    if tokenizer.eos_token_id is None:
        raise ValueError("the tokenizer has no end-of-text token; set tokenizer.eos_token first")
    old_side = tokenizer.padding_side
    tokenizer.padding_side = "left"  # every prompt ends at the last column, where generation goes on
    S, P = cfg.samples_per_prompt, cfg.prompts_per_batch
    texts: list[list[str]] = []
    documents: list[list[str]] = []
    token_ids: list[list[np.ndarray]] = []
    parts = []
    try:
        n_batches = -(-len(prompts) // P)
        for b in tqdm(range(n_batches), desc="generating", disable=not progress):
            chunk = prompts[b * P : (b + 1) * P]
            gen = torch.Generator().manual_seed(cfg.seed * 100_003 + b)
            rows = _generate_batch(
                model,
                tokenizer,
                [_model_input(tokenizer, p, cfg.chat_template) for p in chunk],
                cfg,
                gen,
                layer,
            )
            for i in range(len(chunk)):
                texts.append(
                    [tokenizer.decode(rows[i * S + s][0], skip_special_tokens=True) for s in range(S)]
                )
                if cfg.chat_template:
                    documents.append([chunk[i] + "\n" + t for t in texts[-1]])
                else:
                    documents.append(
                        [tokenizer.decode(rows[i * S + s][3], skip_special_tokens=True) for s in range(S)]
                    )
                token_ids.append([rows[i * S + s][1] for s in range(S)])
                if layer is not None:
                    parts.extend(rows[i * S + s][2] for s in range(S))
    finally:
        tokenizer.padding_side = old_side
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
