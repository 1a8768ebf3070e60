import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
import torch

from helpers.sae.metrics import dead_fraction
from helpers.sae.model import make_sae
from helpers.sae.steps_data import steps_and_data
from helpers.viz.sae_plots import plot_steps_data
from tests.unit.sae.test_model import cfg, sparse_data


def test_the_two_curves_share_budgets_and_the_data_curve_keeps_the_passes(tmp_path):
    x = sparse_data(n=2048)
    docs = np.repeat(np.arange(64), 32)
    evals = {"themed": sparse_data(n=256, seed=1), "corpus": sparse_data(n=256, seed=2)}
    c = cfg(steps=32)
    table = steps_and_data(c, x, docs, evals, "k", tmp_path, shares=(1 / 4, 1 / 2))
    assert list(table["steps"]) == [8, 8, 16, 16, 32]
    kept = table.iloc[-1]
    equal = table[table["curve"] == "share, equal passes"]
    np.testing.assert_allclose(equal["passes"], kept["passes"], rtol=0.05)  # whole documents: about equal
    assert (table[table["curve"] == "all rows"]["tokens"] == 2048).all()
    assert {"fvu_themed", "fvu_corpus", "fvu_train"} <= set(table.columns)
    assert table[["fvu_themed", "fvu_corpus"]].notna().all().all()
    again = steps_and_data(c, x, docs, evals, "k", tmp_path, shares=(1 / 4, 1 / 2))  # every run reused
    np.testing.assert_allclose(again["fvu_themed"], table["fvu_themed"])
    plot_steps_data(table)


def test_rows_and_document_ids_must_match(tmp_path):
    with pytest.raises(ValueError, match="one per row"):
        steps_and_data(cfg(), sparse_data(n=64), np.arange(10), {}, "k", tmp_path)


def test_dead_fraction_counts_latents_that_never_fire():
    sae = make_sae(cfg(k=2))
    x = sparse_data(n=512)
    f = sae.encode(torch.as_tensor(x)).detach().numpy()
    assert dead_fraction(sae, x, batch_size=100) == pytest.approx(float(((f > 0).sum(0) == 0).mean()))


def _notebook_shares() -> tuple[float, ...]:
    """``SHARES`` of notebook 03's parameter cell (the steps curve's budgets, branched off the kept run): a
    tuple of fractions such as ``(1 / 8, 1 / 4)``, read without running the notebook."""
    import ast
    import json
    import operator

    from helpers.config import ROOT

    ops = {ast.Div: operator.truediv, ast.Mult: operator.mul}

    def value(node: ast.expr) -> float:
        if isinstance(node, ast.Constant):
            return float(node.value)
        if isinstance(node, ast.BinOp) and type(node.op) in ops:
            return ops[type(node.op)](value(node.left), value(node.right))
        raise AssertionError(f"SHARES holds {ast.dump(node)}, not a fraction")

    nb = json.loads((ROOT / "notebooks" / "03_sae_training.ipynb").read_text())
    for cell in nb["cells"]:
        for line in "".join(cell["source"]).splitlines():
            if line.startswith("SHARES = "):
                tup = ast.parse(line.split("#")[0].split("=", 1)[1].strip(), mode="eval").body
                return tuple(value(e) for e in tup.elts)
    raise AssertionError("notebook 03 has no SHARES line")


@pytest.mark.parametrize("name", ["full", "ci"])
def test_notebook_04s_splitting_budget_is_one_of_notebook_03s_branches(name):
    """04 §7 trains every width for split_share of the main run's steps; its x8 run of seed 0 is reused from
    03's steps curve only if that budget is one 03 branches off the kept run (else a whole x8 run trains)."""
    from helpers.config import CI, FULL
    from helpers.sae.steps_data import step_budgets

    profile = {"full": FULL, "ci": CI}[name]
    budget = step_budgets(profile.topk, (profile.split_share,))[0]
    assert budget in step_budgets(profile.topk, _notebook_shares())
    assert budget < profile.topk.steps
