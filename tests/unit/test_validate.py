import numpy as np
import pytest

from helpers.validate import as_index


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
