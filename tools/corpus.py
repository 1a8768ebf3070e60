"""``make corpus``: generate the SAE's training corpus once and write ``data/corpus.csv.gz`` + its
marker ``data/corpus.json`` (committed). ~15 min on a 2-core CPU; see :mod:`helpers.data.corpus`."""

from __future__ import annotations

import sys
import time

from helpers.data.corpus import build_corpus, corpus_meta
from helpers.model.loading import load_model


def main() -> int:
    model, tokenizer = load_model()
    t0 = time.perf_counter()
    docs = build_corpus(model, tokenizer)
    meta = corpus_meta() or {}
    n_chars = int(docs["text"].str.len().sum())
    print(
        f"wrote data/corpus.csv.gz: {len(docs):,} documents, {n_chars:,} characters, "
        f"{(meta.get('files') or {}).get('corpus.csv.gz', {}).get('size', 0) / 1e6:.1f} MB compressed, "
        f"in {time.perf_counter() - t0:.0f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
