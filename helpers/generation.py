"""Generate continuations of the prompts: batched, left-padded, seeded.

Each prompt is sampled ``samples_per_prompt`` times. Sampling is seeded per batch, so the same
parameters give the same texts. Left padding keeps every prompt's last token at the end of the
row, where generation continues; the attention mask hides the padding.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm


@dataclass(frozen=True)
class GenerationConfig:
    samples_per_prompt: int = 4
    max_new_tokens: int = 64
    temperature: float = 0.8
    top_p: float = 0.95
    seed: int = 0
    chat_template: bool = False
    batch_size: int = 32

    def validate(self) -> None:
        if self.samples_per_prompt < 1 or self.max_new_tokens < 1 or self.batch_size < 1:
            raise ValueError("samples_per_prompt, max_new_tokens and batch_size must be >= 1")
        if not self.temperature >= 0 or not 0 < self.top_p <= 1:
            raise ValueError(f"need temperature >= 0 and 0 < top_p <= 1, got {self.temperature}, {self.top_p}")

    def key(self) -> dict:
        """What the texts depend on (batch size excluded only for greedy decoding)."""
        return asdict(self)


def _model_input(tokenizer, prompt: str, chat: bool) -> str:
    if not chat:
        return prompt
    return tokenizer.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True)


def generate_texts(model: nn.Module, tokenizer, prompts: list[str], cfg: GenerationConfig, progress: bool = True) -> list[list[str]]:
    """For each prompt, ``cfg.samples_per_prompt`` continuations (the new text only)."""
    cfg.validate()
    device = next(model.parameters()).device
    jobs = [(i, s) for i in range(len(prompts)) for s in range(cfg.samples_per_prompt)]
    out: list[list[str]] = [[""] * cfg.samples_per_prompt for _ in prompts]
    old_side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    try:
        n_batches = -(-len(jobs) // cfg.batch_size)
        for b in tqdm(range(n_batches), desc="generating", disable=not progress):
            batch = jobs[b * cfg.batch_size : (b + 1) * cfg.batch_size]
            texts = [_model_input(tokenizer, prompts[i], cfg.chat_template) for i, _ in batch]
            enc = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=not cfg.chat_template).to(device)
            torch.manual_seed(cfg.seed * 100_003 + b)
            sample = cfg.temperature > 0
            kwargs = {"do_sample": sample, "temperature": cfg.temperature, "top_p": cfg.top_p} if sample else {"do_sample": False}
            with torch.inference_mode():
                ids = model.generate(**enc, max_new_tokens=cfg.max_new_tokens, pad_token_id=tokenizer.pad_token_id, **kwargs)
            new = ids[:, enc["input_ids"].shape[1]:]
            for (i, s), row in zip(batch, tokenizer.batch_decode(new, skip_special_tokens=True), strict=True):
                out[i][s] = row
    finally:
        tokenizer.padding_side = old_side
    return out


def generations_frame(prompts: pd.DataFrame, continuations: list[list[str]]) -> pd.DataFrame:
    """``doc_id,prompt_id,theme,sample,text`` with text = prompt + continuation."""
    rows = []
    for (_, p), conts in zip(prompts.iterrows(), continuations, strict=True):
        for s, cont in enumerate(conts):
            sep = "" if not cont or cont[0].isspace() else " "
            rows.append({"prompt_id": int(p["id"]), "theme": p["theme"], "sample": s, "text": p["prompt"] + sep + cont.rstrip()})
    df = pd.DataFrame(rows)
    df.insert(0, "doc_id", range(len(df)))
    return df


def generation_params(model: nn.Module, prompts: pd.DataFrame, cfg: GenerationConfig) -> dict:
    """Everything the generated texts depend on: model, prompts (hashed) and the config."""
    from helpers.models import model_name
    from helpers.store import params_key

    corpus = prompts[["id", "theme", "prompt"]].astype(str).values.tolist()
    return {"model": model_name(model), "prompts": params_key({"rows": corpus}), "n_prompts": len(prompts), **cfg.key()}


def load_or_generate(model: nn.Module, tokenizer, prompts: pd.DataFrame, cfg: GenerationConfig,
                     path: str | Path | None = None, progress: bool = True) -> pd.DataFrame:
    """The generations for these prompts and parameters: reused from ``generations.csv`` when it
    was made with exactly the same parameters (recorded in ``generations.json``), else generated
    and saved (both files written atomically). ``df.attrs["key"]`` identifies the parameters."""
    from helpers.config import paths
    from helpers.io import load_json, save_csv, save_json
    from helpers.store import params_key

    path = Path(path) if path is not None else paths().generations
    meta_path = path.with_suffix(".json")
    params = generation_params(model, prompts, cfg)
    key = params_key(params)
    if path.is_file() and meta_path.is_file() and load_json(meta_path).get("key") == key:
        df = pd.read_csv(path, keep_default_na=False)
        print(f"reusing {len(df)} generations from {path.name} (made with the same parameters, key {key}); "
              f"delete it or change a parameter to regenerate")
    else:
        reason = "no saved generations" if not path.is_file() else "parameters changed"
        print(f"generating {len(prompts) * cfg.samples_per_prompt} texts ({reason}) ...")
        t0 = time.perf_counter()
        conts = generate_texts(model, tokenizer, prompts["prompt"].tolist(), cfg, progress=progress)
        df = generations_frame(prompts, conts)
        save_csv(path, df)
        save_json(meta_path, {"key": key, "params": params, "seconds": round(time.perf_counter() - t0, 1)})
        print(f"generated {len(df)} texts in {time.perf_counter() - t0:.1f} s -> {path.name}")
    df.attrs["key"] = key
    return df
