import numpy as np
import pytest
import torch

from helpers.model.capture import capture_residual
from helpers.model.random_init import is_random_copy, random_like
from tests.conftest import TEXTS


@pytest.fixture
def trained(tiny_model):
    """The tiny model with weights that are not what a fresh init of any small seed draws."""
    with torch.no_grad():
        for p in tiny_model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return tiny_model


def test_same_class_config_and_shapes_new_weights(trained):
    fresh = random_like(trained, seed=3)
    assert type(fresh) is type(trained) and not fresh.training
    assert fresh.config.to_dict() | {"_name_or_path": ""} == trained.config.to_dict() | {"_name_or_path": ""}
    mine, theirs = dict(fresh.named_parameters()), dict(trained.named_parameters())
    assert mine.keys() == theirs.keys()
    for name, p in mine.items():
        assert p.shape == theirs[name].shape and p.dtype == theirs[name].dtype
        assert not torch.equal(p, theirs[name]), name  # norms too: fresh ones are 1, trained ones moved
    assert is_random_copy(fresh) and not is_random_copy(trained)
    assert trained.config._name_or_path != fresh.config._name_or_path  # the original config is untouched


def test_weights_drawn_like_a_fresh_model(trained):
    fresh = random_like(trained, seed=1)
    std = trained.config.initializer_range
    for name, p in fresh.named_parameters():
        if "norm" in name or "ln_" in name:
            assert torch.all((p == 1) | (p == 0)), name  # norm scales 1, biases 0
    w = fresh.get_input_embeddings().weight.detach()
    assert abs(float(w.std()) - std) < 0.3 * std


def test_deterministic_per_seed_and_global_rng_untouched(trained):
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a, b, c = random_like(trained, 5), random_like(trained, 5), random_like(trained, 6)
    assert torch.equal(torch.rand(1), before)  # random_like drew from its own generator state
    for (n, p), (_, q) in zip(a.named_parameters(), b.named_parameters(), strict=True):
        assert torch.equal(p, q), n
    assert not torch.equal(a.get_input_embeddings().weight, c.get_input_embeddings().weight)


def test_keep_embeddings(trained):
    fresh = random_like(trained, seed=2, keep_embeddings=True)
    emb = fresh.get_input_embeddings().weight
    assert torch.equal(emb, trained.get_input_embeddings().weight)
    assert emb.data_ptr() != trained.get_input_embeddings().weight.data_ptr()  # a copy, not shared
    if fresh.config.tie_word_embeddings:
        assert torch.equal(fresh.get_output_embeddings().weight, emb)
    block_w = [p for n, p in fresh.named_parameters() if ".0." in n and p.ndim == 2]
    orig_w = [p for n, p in trained.named_parameters() if ".0." in n and p.ndim == 2]
    assert all(not torch.equal(p, q) for p, q in zip(block_w, orig_w, strict=True))


def test_dtype_and_device_follow_the_model(trained):
    fresh = random_like(trained.to(torch.float64), seed=0)
    assert next(fresh.parameters()).dtype == torch.float64


def test_forward_and_capture_run(trained, tokenizer):
    fresh = random_like(trained, seed=4)
    ids = torch.tensor([tokenizer(TEXTS[0]).input_ids])
    with torch.inference_mode():
        logits = fresh(input_ids=ids).logits
    assert logits.shape == (1, ids.shape[1], fresh.config.vocab_size) and torch.isfinite(logits).all()
    cap = capture_residual(fresh, tokenizer, TEXTS, 1, batch_size=2, progress=False)
    ref = capture_residual(trained, tokenizer, TEXTS, 1, batch_size=2, progress=False)
    np.testing.assert_array_equal(cap.token_ids, ref.token_ids)  # the tokenizer is unchanged
    assert cap.acts.shape == ref.acts.shape and np.isfinite(cap.acts).all()
    assert not np.allclose(cap.acts, ref.acts)


@pytest.mark.parametrize("bad", [-1, 1.5, True, "0"])
def test_bad_seed_is_one_line(trained, bad):
    with pytest.raises(ValueError, match="seed must be a whole number"):
        random_like(trained, seed=bad)


def test_not_a_transformers_model_is_refused():
    with pytest.raises(ValueError, match="transformers model"):
        random_like(torch.nn.Linear(2, 2))
