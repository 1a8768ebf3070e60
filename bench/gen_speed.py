"""Generation and capture speed as a fraction of this machine's float32 matmul roofline.

    .venv/bin/python bench/gen_speed.py                 # ~2-3 min on 2 cores
    .venv/bin/python bench/gen_speed.py --repeats 2     # best of 2 per workload
    .venv/bin/python bench/gen_speed.py --baseline /tmp/generation_old.py   # side by side

Roofline fraction = (tokens/s x model FLOPs per token) / matmul rate, where the matmul rate is
:func:`helpers.model.flops.matmul_rate` (float32, 2048 x 2048, best of 5), measured in the same run
before and after the timings (the table uses the best of the two).

FLOPs per token (:func:`helpers.model.flops.flops_per_token`; multiply-add = 2 FLOPs; only the
matmuls count, norms/rope/softmax do not):

* generation, per new token: ``2 * P_blocks(0..29) + 2 * d_model * vocab + 4 * n_layers * d_attn * ctx``
  where P_blocks are the weights of the attention and MLP projections of all 30 blocks
  (106.2 M for SmolLM2-135M; the embedding lookup costs nothing), ``2 * 576 * 49,152`` is the LM
  head (56.6 MFLOP), and ``4 * d_attn * ctx`` per layer is the attention's q.k scores and its
  weighted sum of values over ``ctx`` positions (d_attn = heads x head_dim = d_model = 576), ``ctx`` being
  the average number of real tokens a new token attends to. New tokens = every sampled token
  (continuation + its end-of-text); the prompts' forward passes are not counted (they are done
  but are a small share), so the fraction is conservative.
* capture at layer L (blocks 0..L only, no LM head), per token:
  ``2 * P_blocks(0..L) + 4 * (L + 1) * d_attn * ctx`` with ``ctx`` the average causal context
  ((n + 1) / 2 for a text of n tokens).
"""

from __future__ import annotations

import argparse
import importlib.util
import itertools
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from helpers.config import (
    CORPUS_GENERATION,  # noqa: E402
    GenerationConfig,  # noqa: E402
)
from helpers.data import generation  # noqa: E402
from helpers.data.corpus import load_corpus_prompts  # noqa: E402
from helpers.data.prompts import load_prompts  # noqa: E402
from helpers.model.blocks import get_blocks  # noqa: E402
from helpers.model.capture import capture_residual  # noqa: E402
from helpers.model.flops import flops_per_token, matmul_rate  # noqa: E402
from helpers.model.loading import load_model  # noqa: E402

CAPTURE_LAYER = 16


def block_params(model, last: int) -> int:
    """Weights of the linear layers of blocks 0..last (norm weights are not matmuls)."""
    return sum(p.numel() for blk in get_blocks(model)[: last + 1] for p in blk.parameters() if p.dim() == 2)


def gen_flops(model, ctx: float) -> float:
    return flops_per_token(model, context=ctx)


def capture_flops(model, layer: int, ctx: float) -> float:
    return flops_per_token(model, through=layer, lm_head=False, context=ctx)


def load_module(path: str):
    spec = importlib.util.spec_from_file_location("baseline_generation", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


def time_generate(mod, model, tok, prompts, cfg, repeats):
    best, gen = float("inf"), None
    for _ in range(repeats):
        t = time.perf_counter()
        gen = mod.generate(model, tok, prompts, cfg, progress=False)
        best = min(best, time.perf_counter() - t)
    # every sampled token but the last of each text is fed, so new = fed continuation + 1
    n_new, ctx_sum = 0, 0.0
    for p, docs in zip(prompts, gen.token_ids, strict=True):
        plen = len(tok(p, add_special_tokens=not cfg.chat_template).input_ids)
        for ids in docs:
            k = len(ids) - plen + 1
            n_new += k
            ctx_sum += sum(range(plen, plen + k))  # a new token at index j saw j real tokens
    return best, n_new, ctx_sum / n_new, gen


def capture_texts(tok, prompts, n, target=150):
    """``n`` texts of about ``target`` tokens, made by joining prompts."""
    texts, cyc = [], itertools.cycle(prompts)
    for _ in range(n):
        ids: list[int] = []
        while len(ids) < target:
            ids += tok(next(cyc) + " ", add_special_tokens=False).input_ids
        texts.append(tok.decode(ids[:target]))
    return texts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=1, help="timings per workload (best is kept)")
    ap.add_argument("--baseline", help="another generation.py to time side by side")
    ap.add_argument("--only", choices=["gen", "capture"], help="run one half only")
    ap.add_argument("--quick", action="store_true", help="smaller workloads (~1 min)")
    args = ap.parse_args()
    torch.set_grad_enabled(False)

    model, tok = load_model()
    rates = [matmul_rate()]
    prompts = load_prompts()["prompt"].tolist()
    print(f"torch threads {torch.get_num_threads()}, matmul rate {rates[0] / 1e9:.0f} GFLOP/s")
    print(
        f"blocks: {block_params(model, model.config.num_hidden_layers - 1) / 1e6:.1f} M matmul weights, "
        f"LM head {2 * model.config.hidden_size * model.config.vocab_size / 1e6:.1f} MFLOP/token"
    )

    results = []
    if args.only in (None, "gen"):
        mods = [("new", generation)] + ([("baseline", load_module(args.baseline))] if args.baseline else [])
        corpus = load_corpus_prompts()["prompt"].tolist()
        c = CORPUS_GENERATION
        # (label, prompts, config): the analysis set's shape (prompts.csv, 4 samples, 64 new) and the
        # corpus's (make corpus: corpus_prompts.csv, 1 sample, CORPUS_GENERATION) on a slice
        work = [
            (
                "analysis: 64 prompts x4, 64 new",
                prompts[:64],
                GenerationConfig(max_new_tokens=64, min_new_tokens=32),
            ),
            (f"corpus: 256 prompts x1, {c.min_new_tokens}-{c.max_new_tokens} new", corpus[:256], c),
        ]
        if args.quick:
            work = [
                ("analysis: 64 prompts x1, 64 new", prompts[:64], GenerationConfig(samples_per_prompt=1)),
                (f"corpus: 128 prompts x1, {c.min_new_tokens}-{c.max_new_tokens} new", corpus[:128], c),
            ]
        warm = GenerationConfig(samples_per_prompt=2, max_new_tokens=8, min_new_tokens=4)
        for _, mod in mods:  # the first forward passes of a process pay one-time set-up costs
            mod.generate(model, tok, prompts[:8], warm, progress=False)
        for label, ps, cfg in work:
            texts = {}
            for name, mod in mods:
                sec, n_new, ctx, gen = time_generate(mod, model, tok, ps, cfg, args.repeats)
                texts[name] = gen.texts
                results.append(("generate", f"{label} [{name}]", n_new, sec, gen_flops(model, ctx)))
                print(f"  {label} [{name}]: {n_new} new tokens in {sec:.1f} s, avg ctx {ctx:.0f}", flush=True)
            if len(texts) == 2:
                same = sum(a == b for a, b in zip(texts["new"], texts["baseline"], strict=True))
                print(f"  texts identical to the baseline's: {same}/{len(ps)} prompts")

    if args.only in (None, "capture"):
        texts = capture_texts(tok, prompts, 64)
        lens = [len(tok(t).input_ids) for t in texts]
        ctx = float(np.mean([(n + 1) / 2 for n in lens]))
        for bs in (16, 32, 64):
            best = float("inf")
            for _ in range(args.repeats):
                t = time.perf_counter()
                cap = capture_residual(model, tok, texts, CAPTURE_LAYER, batch_size=bs, progress=False)
                best = min(best, time.perf_counter() - t)
            label = f"layer {CAPTURE_LAYER}, 64 texts of ~{int(np.mean(lens))} tokens, batch {bs}"
            results.append(("capture", label, len(cap), best, capture_flops(model, CAPTURE_LAYER, ctx)))
            print(f"  capture {label}: {len(cap)} tokens in {best:.2f} s", flush=True)

    rates.append(matmul_rate())
    rate = max(rates)
    print(
        f"\nmatmul rate (float32, best of start/end): {rate / 1e9:.0f} GFLOP/s "
        f"(start {rates[0] / 1e9:.0f}, end {rates[1] / 1e9:.0f})"
    )
    print(f"{'what':9} {'workload':58} {'tokens/s':>9} {'MFLOP/tok':>10} {'roofline':>9}")
    for kind, label, n, sec, fl in results:
        tps = n / sec
        print(f"{kind:9} {label:58} {tps:9.0f} {fl / 1e6:10.1f} {tps * fl / rate:9.0%}")


if __name__ == "__main__":
    main()
