import numpy as np
import pytest

from helpers.validate import as_count, as_index, as_indices, is_whole


@pytest.mark.parametrize("value", [3, np.int64(3), np.int32(3), 3.0, np.float32(3.0)])
def test_whole_numbers_are_accepted(value):
    assert as_index(value, "layer", 5) == 3
    assert type(as_index(value, "layer", 5)) is int


@pytest.mark.parametrize(
    ("value", "why"),
    [
        (-1, "out of range"),
        (5, "out of range"),
        (2.5, "not a whole number"),
        (True, "not a whole number"),
        ("3", "not a whole number"),
        (None, "not a whole number"),
        (float("nan"), "not a whole number"),
    ],
)
def test_bad_indices_get_one_line(value, why):
    # -1 once meant "the last feature" silently and d_sae a raw IndexError; 16.0 a misleading line, 2.5 a
    # TypeError
    with pytest.raises(ValueError, match=f"{why}: this SAE has features 0..4"):
        as_index(value, "feature", 5, "this SAE")


def test_one_rule_for_whole_numbers_in_every_guard():
    # issue 25: six guards had six rules (np.int64 yes or no, 16.0 yes or no, True sometimes layer 1)
    whole = [3, np.int64(3), np.uint8(3), 3.0, np.float32(3.0)]
    not_whole = [True, np.bool_(True), 2.5, "3", None, float("nan"), float("inf"), [3], np.array(3)]
    assert all(is_whole(v) for v in whole) and not any(is_whole(v) for v in not_whole)
    for v in whole:
        assert as_count(v, "n") == as_index(v, "i", 5) == as_indices([v], "i", 5)[0] == 3
    for v in not_whole:
        with pytest.raises(ValueError, match="must be a whole number"):
            as_count(v, "n")
        with pytest.raises(ValueError, match="not a whole number"):
            as_index(v, "i", 5)


def test_every_feature_entry_point_refuses_minus_one():
    import torch

    from helpers.analysis.features import logit_table, logit_weights
    from helpers.analysis.steering import clamp_edit
    from helpers.config import SAEConfig
    from helpers.sae.model import make_sae
    from tests.conftest import make_tokenizer

    sae = make_sae(SAEConfig(architecture="topk", d_in=4, expansion=2, k=2))
    W_U = torch.randn(7, 4)
    for bad in (-1, 8):
        with pytest.raises(ValueError, match="this SAE has features 0..7"):
            logit_weights(sae, W_U, bad)
        with pytest.raises(ValueError, match="this SAE has features 0..7"):
            logit_table(sae, W_U, make_tokenizer(), bad)
        with pytest.raises(ValueError, match="this SAE has features 0..7"):
            clamp_edit(torch.randn(2, 4), sae, [bad], [1.0])


def test_context_length_reads_every_config_kind():
    from helpers.validate import context_length
    from tests.conftest import tiny_gpt2, tiny_llama, tiny_neox

    for make in (tiny_llama, tiny_gpt2, tiny_neox):  # max_position_embeddings / n_positions: 64 each
        assert context_length(make(1)) == 64
    assert context_length(object()) is None  # no config: no limit known


def test_as_indices_checks_a_whole_array_in_one_line():
    import numpy as np

    from helpers.validate import as_indices

    assert as_indices(np.array([0, 3, 4]), "feature", 5).tolist() == [0, 3, 4]
    assert as_indices(np.array([1.0, 2.0]), "feature", 5).dtype == np.int64
    for bad, why in (
        (np.array([0, -1]), "feature -1 is out of range"),
        (np.array([2.5]), "2.5 is not a whole"),
        (np.array([True]), "True is not a whole"),
        (np.array(["1"]), "'1' is not a whole"),
    ):
        with pytest.raises(ValueError, match=why):
            as_indices(bad, "feature", 5, "this SAE")


def test_id_column_names_the_file_and_row():
    import numpy as np

    from helpers.validate import id_column

    assert id_column(np.array(["3", "1"], dtype=object), "id", "p.csv").tolist() == [3, 1]
    for values, why in (
        ([0, 777.5], r"p.csv row 3: id = 777.5 must be a whole number in 0..7"),
        (["0", "three"], r"p.csv row 3: id = 'three' must be a whole number"),
        ([0, 9], r"p.csv row 3: id = 9 must be a whole number in 0..7"),
        ([4, 1, 4], r"p.csv repeats id\(s\) \[4\] \(row 4 is a second 4\)"),
    ):
        with pytest.raises(ValueError, match=why):
            id_column(
                np.array(values, dtype=object if isinstance(values[1], str) else None), "id", "p.csv", 8
            )
