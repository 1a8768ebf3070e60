import numpy as np
import pytest
import torch

from helpers.analysis import features as F
from helpers.analysis import labels as autolabel
from helpers.config import SAEConfig
from helpers.data.store import Store
from helpers.sae.model import make_sae


def index_from_dense(f: np.ndarray) -> F.FeatureIndex:
    r, c = np.nonzero(f)
    return F.FeatureIndex.from_entries(r, c, f[r, c], f.shape[0], f.shape[1])


def tiny_store(lengths=(5, 7, 4), d=4):
    doc = np.repeat(np.arange(len(lengths)), lengths).astype(np.int32)
    pos = np.concatenate([np.arange(1, n + 1) for n in lengths]).astype(np.int32)
    rng = np.random.default_rng(0)
    return Store(
        acts=rng.normal(size=(len(doc), d)).astype(np.float32),
        token_ids=(pos + 3).astype(np.int32),
        doc_ids=doc,
        positions=pos,
        layer=0,
        model="tiny",
    )


def test_encode_store_matches_dense_encoding():
    sae = make_sae(SAEConfig(architecture="topk", d_in=4, expansion=3, k=2))
    x = np.random.default_rng(1).normal(size=(30, 4)).astype(np.float32)
    index = F.encode_store(sae, x, batch_size=7)
    with torch.no_grad():
        f = sae.encode(torch.as_tensor(x)).numpy()
    for i in range(index.d_sae):
        np.testing.assert_allclose(index.values_at(i, np.arange(30)), f[:, i], rtol=1e-6)
    np.testing.assert_array_equal(index.counts, (f > 0).sum(0))


def test_select_top_skips_overlaps_within_a_document_only():
    doc_ids = np.array([0] * 10 + [1] * 10)
    rows = np.array([2, 3, 9, 10, 11, 15])
    values = np.array([5.0, 4.0, 3.0, 2.5, 2.0, 1.0])
    # row 3 overlaps row 2 (same doc); row 10 is doc 1, next to row 9 of doc 0: allowed
    assert F.select_top(values, rows, doc_ids, 4, radius=1) == [0, 2, 3, 5]


def test_windows_stop_at_document_edges():
    store = tiny_store()
    f = np.zeros((len(store), 2), np.float32)
    f[[0, 6, 15], 1] = [3.0, 2.0, 1.0]  # first row of doc 0, second row of doc 1, last row of doc 2
    index = index_from_dense(f)
    exs = F.top_examples(index, store, 1, n=3, left=3, right=2)
    assert [e.center for e in exs] == [0, 6, 15]
    for e in exs:
        assert (store.doc_ids[e.rows] == e.doc_id).all()  # never crosses into another document
    assert exs[0].rows.tolist() == [0, 1, 2] and exs[2].rows.tolist() == [12, 13, 14, 15]
    assert exs[1].acts.tolist() == [0.0, 2.0, 0.0, 0.0]


def test_bad_feature_indices_are_clear():
    index = index_from_dense(np.array([[1.0, 0.0], [2.0, 0.0]], np.float32))
    with pytest.raises(ValueError, match="features 0..1"):
        index.check(5)
    with pytest.raises(ValueError, match="feature 1 is dead"):
        F.top_examples(index, tiny_store((2,)), 1)


def test_logit_weights_fold_the_final_norm():
    from tests.conftest import tiny_llama

    model = tiny_llama()
    with torch.no_grad():
        model.model.norm.weight.uniform_(0.5, 2.0)
    W_U = F.unembedding(model)
    torch.testing.assert_close(W_U, model.lm_head.weight * model.model.norm.weight)
    sae = make_sae(SAEConfig(architecture="topk", d_in=32, expansion=2, k=4))
    w = F.logit_weights(sae, W_U, 3)
    np.testing.assert_allclose(w, (sae.W_dec[3] @ W_U.T).detach().numpy(), rtol=1e-5)


def test_enrichment_by_hand():
    # tokens 5 5 6 7 6 5 ; feature 0 fires on rows 0, 1, 5 (all token 5): P(5|on)=1, P(5)=1/2 -> 2
    token_ids = np.array([5, 5, 6, 7, 6, 5])
    f = np.zeros((6, 2), np.float32)
    f[[0, 1, 5], 0] = 1.0
    f[[2, 3], 1] = 1.0
    index = index_from_dense(f)
    enr = autolabel.enrichment(index, token_ids, np.ones(6, bool), min_count=1)
    row = enr[(enr["feature"] == 0)].iloc[0]
    assert (row["token"], row["count"], row["ratio"]) == (5, 3, pytest.approx(2.0))
    f1 = enr[enr["feature"] == 1].set_index("token")["ratio"]
    assert f1[6] == pytest.approx(0.5 / (2 / 6)) and f1[7] == pytest.approx(0.5 / (1 / 6))
    # held-out scoring (the label detection AUROC): tests/unit/analysis/test_labels.py
    assert autolabel._auroc(
        np.array([True, False, True, False]), np.array([3.0, 1.0, 2.0, 2.0])
    ) == pytest.approx(0.875)


def test_dashboard_example_header_shows_its_own_token():
    """A band example's header names the sampled token and its activation, not its window's maximum."""
    from helpers.viz.dashboard import _examples

    class Tok:
        def decode(self, ids):
            return f"t{ids[0]}"

    store = tiny_store()
    f = np.zeros((len(store), 2), np.float32)
    f[[5, 6], 1] = [0.5, 4.0]  # doc 1: a weak token next to a strong one
    index = index_from_dense(f)
    ex = F.window(index, store, 1, 5, F.doc_bounds(store), left=3, right=2)
    out = _examples(Tok(), store, [ex], vmax=4.0, labels=["0%–25% of max"])
    assert f"'t{store.token_ids[5]}' at 0.50" in out and "4.00" not in out


def test_encode_store_refuses_nan_rows():
    """NaN rows never fire: they were silently indexed as 0 features."""
    sae = make_sae(SAEConfig(architecture="topk", d_in=4, expansion=3, k=2))
    x = np.random.default_rng(1).normal(size=(30, 4)).astype(np.float32)
    x[7, 1] = np.inf
    with pytest.raises(ValueError, match="the activation matrix holds 1 NaN or inf value.*notebook 02"):
        F.encode_store(sae, x, batch_size=7)


def test_check_match_compares_layers_as_whole_numbers():
    """hook_layer "16" said "trained on layer 16 but the store holds layer 16"."""
    store = tiny_store()  # layer 0, d_model 4
    F.check_match({"d_in": 4, "hook_layer": 0.0, "model_name": "tiny"}, store)
    with pytest.raises(
        ValueError, match="the SAE's hook_layer = '0' must be a whole number >= 0; fix the SAE"
    ):
        F.check_match({"d_in": 4, "hook_layer": "0"}, store)
    with pytest.raises(ValueError, match="the SAE's d_in = '4' must be a whole number"):
        F.check_match({"d_in": "4"}, store)
    with pytest.raises(ValueError, match="trained on layer 16 but the store holds layer 0"):
        F.check_match({"d_in": 4, "hook_layer": 16}, store)


def test_a_whole_float_feature_id_is_the_int_one():
    """Feature 3.0 reached numpy's SeedSequence (quantile_examples) as a float and failed there."""
    store = tiny_store()
    f = np.zeros((len(store), 4), np.float32)
    f[[1, 6, 9, 13], 3] = [1.0, 2.0, 3.0, 4.0]
    index = index_from_dense(f)
    for fn in (F.quantile_examples, F.top_examples):
        assert [str(e) for e in fn(index, store, 3.0)] == [str(e) for e in fn(index, store, 3)]
        with pytest.raises(ValueError, match="feature -1 is out of range"):
            fn(index, store, -1)
    with pytest.raises(ValueError, match="feature 2 is dead"):
        F.quantile_examples(index, store, 2.0)


def test_sae_fingerprint_reads_the_marker(tmp_path):
    import json

    from helpers.analysis.features import sae_fingerprint

    (tmp_path / "workbook_sae.json").write_text(
        json.dumps({"files": {"sae_weights.safetensors": {"size": 3, "sha256": "ab" * 32}}})
    )
    assert sae_fingerprint(tmp_path) == "ab" * 6
    with pytest.raises(ValueError, match="run notebook 03"):
        sae_fingerprint(tmp_path / "nowhere")


def test_keep_rows_renumbers_and_refuses_a_bad_mask():
    import numpy as np
    import pytest

    from helpers.analysis.features import FeatureIndex

    ix = FeatureIndex.from_entries(
        np.array([0, 1, 3, 3, 4]), np.array([0, 1, 0, 2, 1]), np.array([1.0, 2, 3, 4, 5]), 5, 3
    )
    sub = ix.keep_rows(np.array([False, True, False, True, True]))
    assert sub.n_tokens == 3
    assert sub.of(0)[0].tolist() == [1] and sub.of(0)[1].tolist() == [3.0]
    assert sub.of(1)[0].tolist() == [0, 2] and sub.of(2)[0].tolist() == [1]
    with pytest.raises(ValueError, match="bool mask"):
        ix.keep_rows(np.array([1, 0, 1, 0, 1]))
