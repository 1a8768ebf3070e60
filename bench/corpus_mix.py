"""Which training mix buys the lowest held-out FVU per minute of generation? (issue 17, notebook 02)

Two recipes at equal *distinct* training tokens, each trained with notebook 03's TopK recipe for the
same steps, scored on held-out prompts of both sources:

* ``samples``: the analysis recipe -- the 100 themed prompts, 4 samples each (prompt tokens stored once);
* ``prompts``: the corpus recipe -- new seed prompts across 174 topics, one sample each.

Generation cost per distinct token comes from each source's own record (``generations.json`` and
``corpus.json``: seconds of generation), so "per minute" is what it took to make that many tokens.
Needs the full profile's stores (run notebooks 01-02 first). Writes ``bench/corpus_mix.json``, which
notebook 02 prints. ~3 min on a 2-core CPU.
"""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from helpers.config import FULL, paths
from helpers.data.corpus import corpus_meta, load_corpus
from helpers.data.pipeline import load_generations
from helpers.data.split import split_by_prompt
from helpers.data.store import load_store, store_meta
from helpers.files import load_json, save_json
from helpers.model.flops import matmul_rate
from helpers.sae.metrics import sae_metrics
from helpers.sae.train import train_sae

STEPS = 150


def main() -> int:
    p = paths("full")
    store, docs = load_store(p.activations), load_generations()
    corpus = load_store(p.corpus_store)
    cdocs = load_corpus(store_meta(p.corpus_store)["n_docs"])
    tr, ev = split_by_prompt(store, docs, FULL.eval_frac, seed=FULL.seed)
    ctr, cev = split_by_prompt(corpus, cdocs, FULL.corpus_eval_frac, seed=FULL.seed)
    n = int(tr.sum())  # the analysis set's distinct training tokens: the budget of both arms
    rows_c = np.flatnonzero(ctr)[:n]  # corpus rows come document by document, so this is its first ~n tokens
    arms = {"samples (100 prompts x 4)": store.acts[tr], "prompts (2,262 topics x 1)": corpus.acts[rows_c]}
    gen_s_per_token = {
        "samples (100 prompts x 4)": load_json(p.generations.with_suffix(".json"))["seconds"] / len(store),
        "prompts (2,262 topics x 1)": (corpus_meta() or {})["seconds"] / len(corpus),
    }
    rate = matmul_rate()
    out = []
    for name, x in arms.items():
        cfg = replace(FULL.topk, d_in=x.shape[1], steps=STEPS)
        sae, log = train_sae(cfg, x, progress=False)
        out.append(
            {
                "arm": name,
                "distinct_tokens": len(x),
                "generation_minutes": len(x) * gen_s_per_token[name] / 60,
                "fvu_heldout_analysis": sae_metrics(sae, store.acts[ev])["fvu"],
                "fvu_heldout_corpus": sae_metrics(sae, corpus.acts[cev])["fvu"],
            }
        )
        print(out[-1], flush=True)
    note = (
        f"TopK k = {FULL.topk.k}, {STEPS} steps of {FULL.topk.batch_size} on each arm's {n:,} distinct "
        f"tokens; "
        f"held-out: {int(ev.sum()):,} analysis and {int(cev.sum()):,} corpus tokens of held-out prompts; "
        f"matmul rate {rate / 1e9:.0f} GFLOP/s"
    )
    save_json(Path(__file__).with_name("corpus_mix.json"), {"rows": out, "note": note})
    print(pd.DataFrame(out).set_index("arm").round(3).to_string())
    print(note)
    return 0


if __name__ == "__main__":
    sys.exit(main())
