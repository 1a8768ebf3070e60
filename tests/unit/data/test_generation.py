import numpy as np
import pytest
import torch

from helpers.config import GenerationConfig
from helpers.data.generation import generate
from helpers.model.capture import capture_residual
from tests.conftest import TEXTS

GREEDY = dict(temperature=0.0, min_new_tokens=0, max_new_tokens=6, samples_per_prompt=1)


def test_padding_does_not_change_a_greedy_continuation(tiny_model, tokenizer):
    short = "solar heat"
    alone = generate(tiny_model, tokenizer, [short], GenerationConfig(**GREEDY), progress=False)
    batched = generate(tiny_model, tokenizer, [TEXTS[2], short], GenerationConfig(**GREEDY), progress=False)
    assert batched.texts[1] == alone.texts[0]  # the short prompt was left-padded in the batch
    np.testing.assert_array_equal(batched.token_ids[1][0], alone.token_ids[0][0])


def test_residuals_captured_while_generating_equal_a_separate_capture(tiny_model, tokenizer):
    cfg = GenerationConfig(samples_per_prompt=2, max_new_tokens=5, min_new_tokens=5, seed=3)
    gen = generate(tiny_model, tokenizer, TEXTS, cfg, layer=1, progress=False)
    flat = [ids for doc in gen.token_ids for ids in doc]
    assert len(flat) == len(TEXTS) * 2
    for d, ids in enumerate(flat):
        enc = {
            "input_ids": torch.as_tensor(ids).unsqueeze(0),
            "attention_mask": torch.ones(1, len(ids), dtype=torch.long),
        }
        with torch.inference_mode():
            want = tiny_model(**enc, output_hidden_states=True).hidden_states[2][0].numpy()
        got = gen.capture.acts[gen.capture.doc_ids == d]
        np.testing.assert_allclose(got, want, atol=1e-4, rtol=1e-4)
        np.testing.assert_array_equal(gen.capture.positions[gen.capture.doc_ids == d], np.arange(len(ids)))
        # min_new_tokens == max_new_tokens: every text runs to the end; the last token is never fed
        assert len(ids) == len(tokenizer(TEXTS[d // 2]).input_ids) + cfg.max_new_tokens - 1


def test_capture_matches_early_stopping_capture_of_the_documents(tokenizer):
    from tests.conftest import tiny_llama

    model = tiny_llama()
    gen = generate(
        model,
        tokenizer,
        TEXTS[:2],
        GenerationConfig(samples_per_prompt=1, max_new_tokens=4, min_new_tokens=4),
        layer=2,
        progress=False,
    )
    texts = [tokenizer.decode(ids[0]) for ids in gen.token_ids]
    cap = capture_residual(model, tokenizer, texts, 2, progress=False)
    np.testing.assert_array_equal(cap.token_ids, gen.capture.token_ids)
    np.testing.assert_allclose(cap.acts, gen.capture.acts, atol=1e-4, rtol=1e-4)


def test_sampling_is_seeded(tiny_model, tokenizer):
    def run(seed):
        cfg = GenerationConfig(
            samples_per_prompt=3, max_new_tokens=6, min_new_tokens=0, temperature=1.0, top_p=1.0, seed=seed
        )
        return generate(tiny_model, tokenizer, TEXTS[:2], cfg, progress=False).texts

    assert run(0) == run(0)
    assert run(0) != run(1)


def test_a_tiny_top_p_or_top_k_of_1_samples_the_greedy_text(tiny_model, tokenizer):
    # top-p keeps the best token always, and only it when p is tiny; top-k = 1 keeps only it
    def texts(**kw):
        cfg = GenerationConfig(**{**GREEDY, "samples_per_prompt": 2, **kw})
        return generate(tiny_model, tokenizer, TEXTS[:2], cfg, progress=False).texts

    greedy = texts()
    assert greedy[0][0] == greedy[0][1]
    assert texts(temperature=1.0, top_p=0.01) == greedy
    assert texts(temperature=5.0, top_k=1) == greedy
    assert texts(temperature=5.0, seed=1) != greedy  # a hot draw over 50 tokens does differ


def test_greedy_generation_equals_plain_decoding(tiny_model, tokenizer):
    # plain decoding: the whole text through the model at every step, no cache, no padding, argmax
    cfg = GenerationConfig(**{**GREEDY, "max_new_tokens": 8})
    gen = generate(tiny_model, tokenizer, TEXTS[:3], cfg, progress=False)
    for prompt, ids in zip(TEXTS[:3], gen.token_ids, strict=True):
        plain = tokenizer(prompt).input_ids
        for _ in range(cfg.max_new_tokens - 1):
            with torch.inference_mode():
                logits = tiny_model(input_ids=torch.as_tensor([plain])).logits[0, -1]
            if int(logits.argmax()) == tokenizer.eos_token_id:
                break
            plain.append(int(logits.argmax()))
        np.testing.assert_array_equal(ids[0], plain)


@pytest.mark.parametrize(
    "bad",
    [
        dict(samples_per_prompt=0),
        dict(top_p=0.0),
        dict(temperature=-1.0),
        dict(min_new_tokens=10, max_new_tokens=5),
    ],
)
def test_bad_generation_config(bad, tiny_model, tokenizer):
    with pytest.raises(ValueError):
        generate(tiny_model, tokenizer, TEXTS[:1], GenerationConfig(**bad), progress=False)


def _sampled(model, tokenizer, monkeypatch, rows_per_step, compact_at, layer=None, **kw):
    import helpers.data.generation as generation

    monkeypatch.setattr(generation, "ROWS_PER_STEP", rows_per_step)
    monkeypatch.setattr(generation, "_COMPACT_AT", compact_at)
    cfg = GenerationConfig(
        **{
            **dict(
                samples_per_prompt=2,
                max_new_tokens=12,
                min_new_tokens=0,
                temperature=1.0,
                top_p=0.9,
                prompts_per_batch=2,
                seed=5,
            ),
            **kw,
        }
    )
    prompts = TEXTS + ["solar heat", "rain"]
    return generate(model, tokenizer, prompts, cfg, layer=layer, progress=False)


def test_batches_decoded_together_sample_as_if_alone(tiny_model, tokenizer, monkeypatch):
    # each batch of prompts_per_batch prompts keeps its own seed and its own random stream, whether it is
    # decoded alone (1 row per step allowed) or with the others; finished rows leave the batch or stay
    alone = _sampled(tiny_model, tokenizer, monkeypatch, rows_per_step=1, compact_at=2.0)
    together = _sampled(tiny_model, tokenizer, monkeypatch, rows_per_step=1000, compact_at=0.0)
    assert together.texts == alone.texts
    for a, b in zip(together.token_ids, alone.token_ids, strict=True):
        for x, y in zip(a, b, strict=True):
            np.testing.assert_array_equal(x, y)
    # some texts ended before max_new_tokens, so rows did leave the batch
    assert any(
        len(ids) < len(tokenizer(p).input_ids) + 11
        for p, doc in zip(TEXTS, together.token_ids, strict=False)
        for ids in doc
    )


def test_capture_with_rows_ending_early_equals_a_forward_pass(tiny_model, tokenizer, monkeypatch):
    gen = _sampled(tiny_model, tokenizer, monkeypatch, rows_per_step=1000, compact_at=0.0, layer=1)
    flat = [ids for doc in gen.token_ids for ids in doc]
    assert len(set(len(ids) for ids in flat)) > 1
    for d, ids in enumerate(flat):
        with torch.inference_mode():
            want = (
                tiny_model(input_ids=torch.as_tensor(ids).unsqueeze(0), output_hidden_states=True)
                .hidden_states[2][0]
                .numpy()
            )
        np.testing.assert_allclose(gen.capture.acts[gen.capture.doc_ids == d], want, atol=1e-4, rtol=1e-4)
        np.testing.assert_array_equal(gen.capture.token_ids[gen.capture.doc_ids == d], ids)


def _forward_calls(model) -> list:
    calls: list = []
    model.register_forward_pre_hook(lambda m, a: calls.append(1))
    return calls


def test_a_prompt_past_the_context_is_refused_before_generating(tiny_model, tokenizer):
    # issue 28: one 100,000-character "word" (25,000 tokens) passed the 200-word limit and `generate` ran
    # past the 8,192-token context for minutes (llama silently; GPT-2 a raw IndexError). The tiny models
    # have a 64-token context: with 4 new tokens a prompt may have 60.
    calls = _forward_calls(tiny_model)
    cfg = GenerationConfig(**{**GREEDY, "max_new_tokens": 4})
    long = " ".join(["rain"] * 61)
    with pytest.raises(
        ValueError,
        match=r"^prompt 1 \(with max_new_tokens = 4 in the model's 64-token context\) is 61 tokens long; "
        r"the limit is 60: shorten it$",
    ):
        generate(tiny_model, tokenizer, ["solar heat", long], cfg, progress=False)
    assert calls == []  # refused before any forward pass
    fits = generate(tiny_model, tokenizer, [" ".join(["rain"] * 60)], cfg, progress=False)
    assert len(fits.token_ids[0][0]) == 60 + 3  # the last new token is never fed
    with pytest.raises(ValueError, match=r"max_new_tokens \(the model's context is 64 tokens\) = 64 must be"):
        generate(tiny_model, tokenizer, ["solar heat"], GenerationConfig(**{**GREEDY, "max_new_tokens": 64}))


def test_the_models_own_cache_gives_the_same_texts(tiny_model, tokenizer, monkeypatch):
    # a model whose cache is not all full-attention layers keeps its own (helpers.model.kv_cache)
    import helpers.data.generation as generation

    ours = _sampled(tiny_model, tokenizer, monkeypatch, rows_per_step=1000, compact_at=0.0, layer=1)
    monkeypatch.setattr(generation, "buffer_cache", lambda model, capacity: None)
    theirs = _sampled(tiny_model, tokenizer, monkeypatch, rows_per_step=1000, compact_at=0.0, layer=1)
    assert ours.texts == theirs.texts
    np.testing.assert_allclose(ours.capture.acts, theirs.capture.acts, atol=1e-5, rtol=1e-5)
