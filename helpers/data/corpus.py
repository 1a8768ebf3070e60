"""The SAE's training corpus: what the SAE learns from, apart from the 100 themed prompts.

The report's 100 prompts stay the *analysis* set that notebooks 04-06 read and cluster. Their
samples repeat 100 topics, while the SAE must also read text the prompts never asked for, so it also
trains on a broader corpus: 2,262 seed prompts (``data/corpus_prompts.csv``: 174 topics in 14
domains, each topic in all 13 genres -- explanation, history, Q&A, favourite thing, news, story,
common mistakes, diary, comparison, interview, lecture notes, product review, Python script), one
sampled continuation each. How much distinct text matters beside training steps is what notebook
03 §6 measures (a steps curve beside a data curve at equal passes). Generating it takes longer than
a notebook should (~250k new tokens), so ``make corpus`` generates it once with the workbook's own
seeded sampler (:mod:`helpers.data.generation`, :data:`helpers.config.CORPUS_GENERATION`) and the
text is committed (``data/corpus.csv.gz`` + its marker ``data/corpus.json``); notebook 02 generates
a live slice in front of the student and captures the layer from the committed text.
"""

from __future__ import annotations

import gzip
import io
import time

import pandas as pd
from torch import nn
from transformers import PreTrainedTokenizerBase

from helpers.config import CORPUS_GENERATION, GenerationConfig, paths
from helpers.data.generation import generate, generation_params, generations_frame
from helpers.data.prompts import load_prompts
from helpers.files import commit, params_key, verify, write_atomic


def load_corpus_prompts() -> pd.DataFrame:
    """The corpus's seed prompts (``id,theme,prompt``; themes are its 14 domains)."""
    return load_prompts(paths().corpus_prompts, themes=None)


def generate_corpus(
    model: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    prompts: pd.DataFrame,
    cfg: GenerationConfig = CORPUS_GENERATION,
    progress: bool = True,
) -> pd.DataFrame:
    """One document per prompt and sample (``doc_id,prompt_id,theme,sample,text``)."""
    gen = generate(model, tokenizer, prompts["prompt"].tolist(), cfg, progress=progress)
    return generations_frame(prompts, gen.documents)


def save_corpus(docs: pd.DataFrame, meta: dict) -> None:
    """``corpus.csv.gz`` (gzip with a fixed timestamp: the same text gives the same bytes), then its
    marker ``corpus.json`` (``meta`` + the file's SHA-256)."""
    path = paths().corpus
    raw = docs.to_csv(index=False).encode()
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0, compresslevel=9) as f:
        f.write(raw)
    write_atomic(path, lambda p: p.write_bytes(buf.getvalue()), suffix=".gz")
    commit(path.parent / "corpus.json", [path], meta)


def corpus_meta() -> dict | None:
    """The corpus marker's content if ``corpus.csv.gz`` matches it, else None."""
    return verify(paths().corpus.parent / "corpus.json")


def load_corpus(n_docs: int | None = None) -> pd.DataFrame:
    """The committed corpus (its first ``n_docs`` documents, or all), verified against its marker."""
    path = paths().corpus
    if corpus_meta() is None:
        raise FileNotFoundError(
            f"{path.name} is missing or does not match corpus.json; restore both with "
            "`git checkout data/corpus.csv.gz data/corpus.json` (or rebuild them: make corpus, ~15 min)"
        )
    docs = pd.read_csv(path, keep_default_na=False, compression="gzip")
    return docs.head(n_docs).reset_index(drop=True) if n_docs is not None else docs


def build_corpus(
    model: nn.Module, tokenizer: PreTrainedTokenizerBase, cfg: GenerationConfig = CORPUS_GENERATION
) -> pd.DataFrame:
    """What ``make corpus`` runs: generate every seed prompt's continuation and save the corpus."""
    prompts = load_corpus_prompts()
    params = generation_params(model, prompts, cfg)
    t0 = time.perf_counter()
    docs = generate_corpus(model, tokenizer, prompts, cfg)
    seconds = time.perf_counter() - t0
    save_corpus(docs, {"key": params_key(params), "params": params, "seconds": round(seconds, 1)})
    return docs
