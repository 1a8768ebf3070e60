import numpy as np
import pytest
import torch

from helpers.config import SAEConfig
from helpers.model.hooks import edit_block
from helpers.sae.evals import ce_loss_recovered, ce_scores
from helpers.sae.metrics import firing_rates, fvu, l0, sae_metrics
from helpers.sae.model import make_sae
from tests.conftest import TEXTS, tiny_llama


def test_fvu_by_hand():
    x = np.array([[1.0, 0.0], [3.0, 2.0]])  # mean (2, 1); Σ||x - mean||² = 2 + 2 = 4
    assert fvu(x, x) == 0.0
    assert fvu(x, np.tile(x.mean(0), (2, 1))) == pytest.approx(1.0)  # the mean explains nothing
    x_hat = np.array([[1.0, 1.0], [3.0, 2.0]])  # error 1
    assert fvu(x, x_hat) == pytest.approx(0.25)
    assert fvu(x, np.zeros_like(x)) == pytest.approx(14 / 4)  # about the mean, not about zero


def test_l0_and_firing_rates_by_hand():
    f = np.array([[0.0, 1.0, 2.0, 0.0], [0.0, 0.5, 0.0, 0.0], [0.0, 3.0, 0.0, 0.0]])
    assert l0(f).tolist() == [2, 1, 1]
    np.testing.assert_allclose(firing_rates(f), [0, 1, 1 / 3, 0])


def test_sae_metrics_dead_and_dense():
    sae = make_sae(SAEConfig(architecture="l1", d_in=2, expansion=2))
    with torch.no_grad():  # latent 0 reads +x0, latent 1 never fires, latents 2, 3 read -x0 / x1
        sae.W_enc.copy_(torch.tensor([[1.0, 0.0, -1.0, 0.0], [0.0, 0.0, 0.0, 1.0]]))
        sae.b_enc.copy_(torch.tensor([0.0, -1.0, 0.0, 0.0]))
    x = np.array([[1.0, 0.0], [2.0, 0.0], [-1.0, 0.0], [0.0, 0.0]], np.float32)
    m = sae_metrics(sae, x, dense_threshold=0.3)
    assert m["l0"] == pytest.approx(0.75)
    assert m["dead_fraction"] == pytest.approx(0.5)  # latents 1 and 3
    assert m["dense_fraction"] == pytest.approx(0.25)  # latent 0 fires on half the tokens


def test_ce_loss_recovered_by_hand():
    assert ce_loss_recovered(2.0, 2.0, 6.0) == 1.0
    assert ce_loss_recovered(2.0, 6.0, 6.0) == 0.0
    assert ce_loss_recovered(2.0, 3.0, 6.0) == pytest.approx(0.75)


def test_ce_scores_identity_patch_is_clean_and_hook_is_removed(tokenizer):
    model = tiny_llama()
    enc = tokenizer(TEXTS[:2], return_tensors="pt", padding=True)
    before = model(**enc).logits
    res = ce_scores(
        model, tokenizer, TEXTS, 1, {"same": lambda h: h, "zero": lambda h: torch.zeros_like(h)}
    ).table()
    assert res["same"]["ce"] == pytest.approx(res["clean"]["ce"], rel=1e-5)
    assert res["same"]["kl"] == pytest.approx(0.0, abs=1e-5)
    assert res["zero"]["kl"] > 1e-4
    torch.testing.assert_close(model(**enc).logits, before)


def separate_passes(model, tokenizer, texts, layer, patches):
    """Per-text summed NLL and KL, one unpadded forward pass per text and patch (what the removed
    second implementation of ce_scores did, batched): the fan-out must give the same numbers."""
    nll, kl = [], []
    for text in texts:
        ids = torch.tensor([tokenizer(text).input_ids])
        lps = []
        for patch in patches.values():
            edit = lambda h, patch=patch: torch.cat([h[:, :1], patch(h[0])[None, 1:]], 1)  # noqa: E731
            with torch.no_grad(), edit_block(model, layer, edit):
                lps.append(torch.log_softmax(model(input_ids=ids).logits[0, :-1], -1))
        with torch.no_grad():
            clean = torch.log_softmax(model(input_ids=ids).logits[0, :-1], -1)
        target = ids[0, 1:, None]
        nll.append(
            [-clean.gather(-1, target).sum().item()] + [-lp.gather(-1, target).sum().item() for lp in lps]
        )
        kl.append([0.0] + [(clean.exp() * (clean - lp)).sum().item() for lp in lps])
    return np.array(nll), np.array(kl)


def test_fanout_ce_equals_separate_passes(tiny_model, tokenizer):
    patches = {"zero": lambda h: torch.zeros_like(h), "half": lambda h: 0.5 * h}
    res = ce_scores(tiny_model, tokenizer, TEXTS, 1, patches)
    assert res.names == ["clean", "zero", "half"]
    nll, kl = separate_passes(tiny_model, tokenizer, TEXTS, 1, patches)
    assert res.n_tokens.tolist() == [
        len(tokenizer(t).input_ids) - 1 for t in TEXTS
    ]  # one row per text, in order
    np.testing.assert_allclose(res.nll, nll, rtol=1e-4)
    np.testing.assert_allclose(res.kl, kl, rtol=1e-3, atol=1e-5)


def test_ce_scores_refuses_a_long_text_instead_of_cutting_it(tiny_model, tokenizer):
    # issue 28: ce_scores cut a text at max_length silently (and scored it as if whole), where the capture
    # refuses it; past the model's context (64 tokens) llama ran silently, GPT-2 raised a raw IndexError
    calls = []
    tiny_model.register_forward_pre_hook(lambda m, a: calls.append(1))
    patches = {"zero": lambda h: torch.zeros_like(h)}
    texts = [TEXTS[0], TEXTS[2]]  # 5 and 13 tokens
    with pytest.raises(
        ValueError, match=r"^text 1 of 2 \(max_length = 8\) is 13 tokens long; the limit is 8: shorten it$"
    ):
        ce_scores(tiny_model, tokenizer, texts, 1, patches, max_length=8)
    with pytest.raises(ValueError, match=r"^text 1 of 2 \(the model's context is 64 tokens\) is 70 tokens"):
        ce_scores(tiny_model, tokenizer, [TEXTS[0], " ".join(["rain"] * 70)], 1, patches)
    # issue 25: a one-token text was skipped without a word, so rows no longer lined up with the texts
    with pytest.raises(
        ValueError, match=r"^text 1 of 3 is 1 token long; 2 texts are under 2: a score needs 2 or more"
    ):
        ce_scores(tiny_model, tokenizer, [TEXTS[0], "rain", "heat"], 1, patches)
    with pytest.raises(ValueError, match="every text must be a non-empty string"):
        ce_scores(tiny_model, tokenizer, [TEXTS[0], " "], 1, patches)
    assert calls == []  # refused before any forward pass
    res = ce_scores(tiny_model, tokenizer, texts, 1, patches, max_length=13)
    assert res.n_tokens.tolist() == [4, 12]  # a text at the limit is scored whole


def test_nan_rows_are_refused_not_scored():
    """NaN rows printed `fvu nan` (sae_metrics) and NaN reconstructions (encode_all), without a word."""
    from helpers.sae.metrics import encode_all

    sae = make_sae(SAEConfig(architecture="topk", d_in=4, expansion=2, k=2))
    x = np.random.default_rng(0).normal(size=(20, 4)).astype(np.float32)
    x[3] = np.nan
    for f in (sae_metrics, encode_all):
        with pytest.raises(ValueError, match="the activation matrix holds 4 NaN or inf value.*notebook 02"):
            f(sae, x)
    with pytest.raises(ValueError, match="activation rows are all the same"):  # FVU 0 / 0: ZeroDivisionError
        sae_metrics(sae, np.ones((5, 4), np.float32))
