"""Tables that wrap to the output area instead of running past it."""

import pandas as pd

from helpers.viz.tables import fit_table, fit_table_html


def test_headers_and_cells_can_break_and_values_are_kept():
    df = pd.DataFrame(
        {"participation_ratio": [1.23456, 2.0], "label": ["'a'/'b' | ↑'c'", "<x>"]},
        index=pd.Index([3, 7], name="layer"),
    )
    out = fit_table_html(df)
    assert "participation_<wbr>ratio" in out and "layer" in out
    assert "1.235" in out and "2.000" in out
    assert "&lt;x&gt;" in out  # escaped
    assert "'a'/<wbr>'b'" in out.replace("&#x27;", "'")
    assert "overflow-wrap:anywhere" in out and "max-width:100%" in out
    assert "&nbsp;" not in out
    assert fit_table(df).data == out


def test_a_multi_index_gives_one_header_cell_per_level():
    index = pd.MultiIndex.from_tuples([("a", 1), ("b", 2)], names=["x", "y"])
    out = fit_table_html(pd.DataFrame({"v": [1.0, 2.0]}, index=index))
    assert out.count("<th style") == 3 + 2 * 2
