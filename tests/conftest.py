"""Shared fixtures: tiny randomly initialised models (llama, GPT-2, GPT-NeoX) and a word-level
tokenizer built in memory, so unit tests need no model files and run in seconds."""

from __future__ import annotations

import os

# unit tests never need the hub: fail fast instead of retrying a connection (read at import)
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import pytest
import torch

WORDS = (
    "the a of and to in is for on with as by it that this from sleep run water solar film music "
    "city data model code vote law art news game farm rain tree heat light sound team health"
).split()


def make_tokenizer(padding_side: str = "right"):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"<pad>": 0, "<unk>": 1, "<eos>": 2, **{w: i + 3 for i, w in enumerate(WORDS)}}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", unk_token="<unk>", eos_token="<eos>"
    )
    fast.padding_side = padding_side
    return fast


VOCAB = len(WORDS) + 3


def tiny_llama(n_layers: int = 4):
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(
        vocab_size=VOCAB,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=n_layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
        pad_token_id=0,
    )
    torch.manual_seed(0)
    return LlamaForCausalLM(cfg).eval()


def tiny_gpt2(n_layers: int = 4):
    from transformers import GPT2Config, GPT2LMHeadModel

    cfg = GPT2Config(vocab_size=VOCAB, n_embd=32, n_layer=n_layers, n_head=4, n_positions=64, pad_token_id=0)
    torch.manual_seed(0)
    return GPT2LMHeadModel(cfg).eval()


def tiny_neox(n_layers: int = 3):
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    cfg = GPTNeoXConfig(
        vocab_size=VOCAB,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=n_layers,
        num_attention_heads=4,
        max_position_embeddings=64,
        pad_token_id=0,
    )
    torch.manual_seed(0)
    return GPTNeoXForCausalLM(cfg).eval()


@pytest.fixture(autouse=True)
def reproducibility():
    """Every test starts from the same seeds."""
    torch.manual_seed(0)
    np.random.seed(0)


@pytest.fixture(params=["llama", "gpt2"])
def tiny_model(request):
    return {"llama": tiny_llama, "gpt2": tiny_gpt2}[request.param]()


@pytest.fixture
def tokenizer():
    return make_tokenizer()


TEXTS = [
    "the city and the rain",
    "sleep is for health",
    "a model of data and code in the news with music and art",
    "solar heat",
]
