"""Graded answers cannot be imported: a submission that just calls the reference function in
``helpers`` fails its check, even through a name bound before the check ran; the checks compare with
stored expected values, which must equal what the reference functions compute; and every notebook's
own solution passes its check."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from helpers.analysis import clustering, features, steering
from helpers.config import ROOT
from helpers.data import layer_scan, text_stats
from helpers.exercises import clustering as ex_clustering
from helpers.exercises import data_generation as ex_data
from helpers.exercises import layer_scan as ex_scan
from helpers.exercises import manual_features as ex_features
from helpers.exercises import steering as ex_steering
from helpers.exercises.common import CheckFailed, blocked, call

# (check, a submission that only calls the matching helpers function)
CHEATS = {
    "sink_ratio": (ex_scan.check_sink_ratio, lambda x, p: layer_scan.sink_ratio(x, p)),
    "participation_ratio": (ex_scan.check_participation_ratio, lambda x: layer_scan.participation_ratio(x)),
    "top_words": (ex_data.check_top_words, lambda texts, k: text_stats.top_words(texts, k)),
    "select_top": (
        ex_features.check_select_top,
        lambda v, r, d, n, rad: features.select_top(v, r, d, n, rad),
    ),
    "logit_weights": (
        ex_features.check_logit_weights,
        lambda W_enc, W_dec, W_U, i: features.logit_weights(
            type("S", (), {"W_dec": W_dec, "feature_id": lambda self, j: j})(), W_U, i
        ),
    ),
    "lift_ranking": (
        ex_clustering.check_lift_ranking,
        lambda X, lab, c, n: clustering.lift_ranking(X, lab, c, n),
    ),
    "purity": (ex_clustering.check_purity, lambda lab, th: clustering.purity(lab, th)),
    "clamp_edit": (ex_steering.check_clamp_edit, lambda h, sae, i, c: steering.clamp_edit(h, sae, [i], [c])),
}


@pytest.mark.parametrize("name", sorted(CHEATS))
def test_calling_the_reference_fails(name):
    check, cheat = CHEATS[name]
    with pytest.raises(CheckFailed, match="asks for your own code"):
        check(cheat)


def test_a_reference_bound_before_the_check_is_blocked_too():
    mine = layer_scan.sink_ratio  # `from helpers.data.layer_scan import sink_ratio as mine`
    with pytest.raises(CheckFailed, match="asks for your own code"):
        ex_scan.check_sink_ratio(mine)
    x = np.arange(12.0).reshape(4, 3)
    pos = np.array([0, 1, 0, 1])
    assert mine(x, pos) == pytest.approx(layer_scan.sink_ratio(x, pos))  # restored after the check


def test_blocking_is_undone_when_the_student_code_raises():
    def boom(x, pos):
        raise RuntimeError("student bug")

    with pytest.raises(RuntimeError, match="student bug"):
        call(boom, None, None, forbidden=[layer_scan.sink_ratio])
    assert layer_scan.sink_ratio(np.ones((2, 2)), np.array([0, 1])) == pytest.approx(1.0)
    with pytest.raises(TypeError, match="closure"):
        x = 1
        with blocked([lambda: x]):
            pass


def test_stored_expected_values_equal_the_reference():
    for seed, want in zip((0, 1, 2), ex_scan.SINK_RATIOS, strict=True):
        assert layer_scan.sink_ratio(*ex_scan._sink_case(seed)) == pytest.approx(want, rel=1e-9)
    for x, want in zip(ex_scan._participation_cases(), ex_scan.PARTICIPATION_RATIOS, strict=True):
        assert layer_scan.participation_ratio(x) == pytest.approx(want, rel=1e-9)
    texts = [
        "The Solar panels on the roof make power; solar power is cheap.",
        "Power to the people: the people vote, and the vote counts.",
        "Cheap solar, cheap wind. Wind and solar are the future of power!",
    ]
    assert text_stats.top_words(texts, 4) == ex_data.TOP_WORDS
    values, rows, doc_ids = ex_features._top_case()
    for (n, radius), want in ex_features.SELECT_TOP.items():
        assert features.select_top(values, rows, doc_ids, n, radius) == want
    labels = np.array([0, 0, 0, 1, 1, 1, 1, 2, 2, 2])
    assert clustering.purity(labels, np.array(list("aabbbcbaac"))) == pytest.approx(ex_clustering.PURITY)
    rng = np.random.default_rng(0)
    X = rng.exponential(0.2, size=(60, 8))
    X[:, 0] += 5.0
    lab = np.repeat([0, 1, 2], 20)
    X[lab == 1, 3] += 1.0
    X[lab == 1, 6] += 0.2 + rng.exponential(0.01, 20)
    for c, want in ex_clustering.LIFT_RANKING.items():
        assert clustering.lift_ranking(X, lab, c, 3).tolist() == want
    sae, h, i, c = ex_steering.clamp_case()
    with torch.no_grad():
        got = steering.clamp_edit(h, sae, [i], [c])
    assert torch.allclose(got, torch.tensor(ex_steering.CLAMP_EDIT), atol=2e-6)


def _exercises():
    """(notebook, solution cell, check cell) for every graded exercise of the committed notebooks."""
    out = []
    for path in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        cells = json.loads(path.read_text())["cells"]
        code = [c for c in cells if c["cell_type"] == "code"]
        for i, c in enumerate(code):
            if "graded" in c["metadata"].get("tags", []):
                sol = next(d for d in reversed(code[:i]) if "exercise" in d["metadata"].get("tags", []))
                out.append(
                    pytest.param(
                        path,
                        "".join(sol["source"]),
                        "".join(c["source"]),
                        id=path.stem[:2] + ":" + "".join(c["source"]).split("(")[0],
                    )
                )
    return out


@pytest.mark.parametrize(("path", "solution", "check"), _exercises())
def test_each_notebook_solution_passes_its_check(path, solution, check, capsys):
    """The solution as committed (its own code, no reference call) passes; run with the notebook's imports."""
    cells = json.loads(path.read_text())["cells"]
    imports = "".join(cells[1]["source"])
    space: dict = {}
    exec("\n".join(ln for ln in imports.splitlines() if not ln.startswith("%")), space)  # noqa: S102
    if "check_diagnosis" in check:
        pytest.skip("the diagnosis exercise needs the trained bad runs (covered by the invert test)")
    exec(solution, space)  # noqa: S102
    exec(check, space)  # noqa: S102
    assert "PASSED" in capsys.readouterr().out
