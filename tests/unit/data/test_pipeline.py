"""training_rows: notebook 03's training and held-out rows in one place (tiny llama, temp data folder)."""

import dataclasses

import numpy as np
import pandas as pd
import pytest

from helpers import config
from helpers.config import FULL, GenerationConfig
from helpers.data import pipeline
from helpers.data.corpus import save_corpus
from helpers.data.store import store_key
from tests.conftest import TEXTS, tiny_llama


@pytest.fixture
def data(tmp_path, monkeypatch, tokenizer):
    """A temp full-profile data folder holding the analysis store (4 prompts, 2 themes, 2 samples each)
    and a committed-style corpus (8 documents in 2 domains)."""
    monkeypatch.setattr(config, "ROOT", tmp_path)
    monkeypatch.setenv("WORKBOOK_PROFILE", "full")
    model = tiny_llama()
    prompts = pd.DataFrame({"id": [0, 1, 2, 3], "theme": ["a", "a", "b", "b"], "prompt": TEXTS})
    cfg = GenerationConfig(samples_per_prompt=2, max_new_tokens=4, min_new_tokens=4)
    pipeline.generations_and_store(model, tokenizer, prompts, cfg, layer=1, progress=False)
    corpus = pd.DataFrame(
        {
            "doc_id": range(8),
            "prompt_id": range(8),
            "theme": ["x"] * 4 + ["y"] * 4,
            "sample": 0,
            "text": [TEXTS[i % 4] + " and the news" for i in range(8)],
        }
    )
    save_corpus(corpus, {"made_by": "test"})
    return model


def profile(**kw):
    return dataclasses.replace(FULL, corpus_docs=None, eval_frac=0.5, corpus_eval_frac=0.5, seed=0, **kw)


def test_training_rows_split_both_stores_by_prompt(data, tokenizer, capsys):
    rows = pipeline.training_rows(data, tokenizer, profile(), progress=False)
    s, c = rows.store, rows.corpus
    assert rows.X_train.dtype == np.float32 and rows.X_train.shape[1] == s.d_model
    # corpus training rows first, then the analysis set's; ids in one space (corpus + 1,000,000)
    n_c = int(rows.corpus_train.sum())
    assert len(rows.X_train) == n_c + int(rows.train_mask.sum())
    saved = c.acts.astype(np.float16).astype(np.float32)  # corpus rows as the store saves them
    np.testing.assert_array_equal(rows.X_train[:n_c], saved[rows.corpus_train])
    np.testing.assert_array_equal(rows.X_train[n_c:], s.acts[rows.train_mask])
    assert (rows.train_docs[:n_c] >= 1_000_000).all() and (rows.train_docs[n_c:] < 1_000_000).all()
    np.testing.assert_array_equal(rows.X_eval, s.acts[rows.eval_mask])
    np.testing.assert_array_equal(rows.X_eval_corpus, saved[rows.corpus_eval])
    # split by prompt: no held-out prompt has a training row, in either store
    prompt = rows.docs.set_index("doc_id")["prompt_id"]
    held = set(prompt.loc[rows.eval_docs])
    assert held and not held & set(prompt.loc[s.doc_ids[rows.train_mask]])
    assert not rows.train_mask[rows.eval_mask].any() and (rows.train_mask | rows.eval_mask).all()
    assert rows.corpus_train.any() and rows.corpus_eval.any()
    with pytest.raises(dataclasses.FrozenInstanceError):
        rows.data_key = "other"  # type: ignore[misc]
    assert "captured layer 1 of 8 corpus documents" in capsys.readouterr().out


def test_data_key_is_notebook_03s_so_saved_runs_are_reused(data, tokenizer, capsys):
    rows = pipeline.training_rows(data, tokenizer, profile(), progress=False)
    p = config.paths()
    # the key notebook 03 built inline before training_rows existed (saved runs are found under it)
    SEED, EVAL_FRAC, CORPUS_EVAL_FRAC = 0, 0.5, 0.5
    assert (
        rows.data_key
        == f"{store_key()}+{store_key(p.corpus_store)}|split{SEED}-{EVAL_FRAC}-{CORPUS_EVAL_FRAC}"
    )
    again = pipeline.training_rows(data, tokenizer, profile(), progress=False)
    assert "reusing corpus_activations.npz" in capsys.readouterr().out
    assert again.data_key == rows.data_key
    # the same key, the same rows: a fresh capture (float32 in memory) gives the saved float16 store's rows
    np.testing.assert_array_equal(again.X_train, rows.X_train)
    np.testing.assert_array_equal(again.X_eval_corpus, rows.X_eval_corpus)
    other = pipeline.training_rows(data, tokenizer, profile(), progress=False).data_key
    assert other == rows.data_key
    moved = dataclasses.replace(FULL, corpus_docs=None, eval_frac=0.25, corpus_eval_frac=0.5, seed=1)
    assert pipeline.training_rows(data, tokenizer, moved, progress=False).data_key.endswith(
        "|split1-0.25-0.5"
    )


def test_missing_generations_say_what_to_do(data, tokenizer, monkeypatch):
    monkeypatch.setattr(pipeline, "load_generations", lambda key=None: None)
    with pytest.raises(ValueError, match="re-run notebook 02"):
        pipeline.training_rows(data, tokenizer, profile(), progress=False)
