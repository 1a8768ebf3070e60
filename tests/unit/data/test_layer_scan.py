import numpy as np
import pandas as pd
import pytest

from helpers.data import layer_scan as ls


def test_participation_ratio_bounds():
    rng = np.random.default_rng(0)
    iso = rng.normal(size=(20000, 8))
    assert ls.participation_ratio(iso) == pytest.approx(8, rel=0.02)
    rank1 = np.outer(rng.normal(size=500), rng.normal(size=8)) + 3.0
    assert ls.participation_ratio(rank1) == pytest.approx(1.0, rel=1e-6)


def test_participation_ratio_hand_case():
    # covariance diag(4, 1) (exactly, by construction): PR = 5^2 / (16 + 1)
    x = np.array([[2.0, 1.0], [-2.0, -1.0], [2.0, -1.0], [-2.0, 1.0]]) * np.sqrt(3 / 4)
    assert ls.participation_ratio(x) == pytest.approx(25 / 17)


def test_sink_ratio_and_report_stats():
    x = np.array([[3.0, 4.0], [0.0, 1.0], [1.0, 0.0], [6.0, 8.0], [0.0, 2.0]])
    pos = np.array([0, 1, 2, 0, 1])
    assert ls.sink_ratio(x, pos) == pytest.approx(7.5 / (4 / 3))
    assert ls.report_stats(x) == {"sum": 25.0, "max": 8.0, "mean": 2.5}


def test_outlier_dims():
    x = np.ones((4, 5))
    x[:, 3] = 10.0
    dims, ratio = ls.outlier_dims(x, k=2)
    assert dims[0] == 3 and ratio[0] == pytest.approx(10.0)


def test_mean_pool_respects_keep():
    x = np.arange(8, dtype=float).reshape(4, 2)
    docs, pooled = ls.mean_pool(x, np.array([5, 5, 9, 9]), keep=np.array([False, True, True, True]))
    assert docs.tolist() == [5, 9]
    np.testing.assert_allclose(pooled, [[2, 3], [5, 6]])


def test_probe_separates_separable_themes():
    rng = np.random.default_rng(0)
    labels = np.repeat(list("abcde"), 10)
    feats = rng.normal(size=(50, 6))
    feats[:, :5] += 4 * (labels[:, None] == np.array(list("abcde")))
    acc, sd = ls.probe_accuracy(feats, labels)
    assert acc > 0.9 and sd >= 0
    shuffled, _ = ls.probe_accuracy(rng.normal(size=(50, 6)), labels)
    assert shuffled < 0.6


def test_recommend_layer_prefers_middle_then_participation():
    scan = pd.DataFrame(
        {
            "layer": range(10),
            "probe_acc": [0.5, 0.6, 0.7, 0.9, 0.92, 0.93, 0.7, 0.99, 1.0, 1.0],
            "probe_sd": [0.02] * 10,
            "participation_ratio": [1, 1, 1, 30, 20, 10, 40, 1, 1, 1],
        }
    )
    rec = ls.recommend_layer(scan)
    # middle band is 3..6; best probe 0.93 at 5; within one std: 4 (0.92) and 5; 4 has higher PR
    assert rec.layer == 4
    assert "layer 4" in rec.reason


def test_scan_layers_shapes():
    rng = np.random.default_rng(0)
    pos = np.tile(np.arange(5), 10)
    docs = np.repeat(np.arange(10), 5)
    acts = rng.normal(size=(3, 50, 8))
    df = ls.scan_layers(acts, pos, docs, np.array(["a", "b"] * 5))
    assert list(df["layer"]) == [0, 1, 2]
    assert {"sum", "max", "mean", "sink_ratio", "participation_ratio", "probe_acc", "top_dims"} <= set(
        df.columns
    )
    # one norm per population: first tokens, other tokens; the sink ratio is their quotient
    assert "mean_norm" not in df.columns
    np.testing.assert_allclose(df["sink_ratio"], df["first_norm"] / df["other_norm"])


def _scan_file(tmp_path, monkeypatch, **fields):
    import json

    from helpers.config import paths

    monkeypatch.setenv("WORKBOOK_OUTPUT", str(tmp_path))
    data = {"recommended_layer": 16, "layers": [{"layer": i} for i in range(30)], **fields}
    data = {k: v for k, v in data.items() if v != "<missing>"}
    paths().layer_scan.write_text(json.dumps(data))


@pytest.mark.parametrize(
    ("value", "why"),
    [
        (True, "layer True is not a whole number"),  # was layer 1
        (16.7, "layer 16.7 is not a whole number"),  # was layer 16
        (99, "layer 99 is out of range: the model has layers 0..29"),
        (-1, "layer -1 is out of range"),
        ("sixteen", "layer 'sixteen' is not a whole number"),
        (None, "layer None is not a whole number"),
        ([], r"layer \[\] is not a whole number"),
        ("<missing>", "'recommended_layer' is missing"),
    ],
)
def test_a_bad_recommended_layer_is_one_line_naming_the_file(tmp_path, monkeypatch, value, why):
    _scan_file(tmp_path, monkeypatch, recommended_layer=value)
    with pytest.raises(ValueError, match=why) as err:
        ls.load_chosen_layer()
    assert str(err.value).startswith("layer_scan.json: 'recommended_layer'") and "\n" not in str(err.value)


def test_the_recommended_layer_is_checked_against_the_model_when_given(tmp_path, monkeypatch):
    _scan_file(tmp_path, monkeypatch, recommended_layer=16.0)
    assert ls.load_chosen_layer() == 16 and type(ls.load_chosen_layer()) is int
    with pytest.raises(ValueError, match=r"layer 16\.0 is out of range: the model has layers 0\.\.11"):
        ls.load_chosen_layer(n_layers=12)
    _scan_file(tmp_path, monkeypatch, layers="<missing>")
    with pytest.raises(ValueError, match="'layers' is missing"):
        ls.load_chosen_layer()
    assert ls.load_chosen_layer(n_layers=30) == 16
