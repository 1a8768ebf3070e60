"""The pure parts of ``make check-lab`` (tools/check_lab.py): the overflow rule, the change detection,
the console filter and the failure lines. The browser run itself is ``make check-lab``'s job."""

from __future__ import annotations

import json

from tools.check_lab import (
    Failure,
    button_after,
    console_failures,
    dedupe,
    normalise_html,
    overflow_failures,
    overflows,
    view_changed,
    write_lab_settings,
)


def test_overflow_rule():
    assert not overflows(990, 990)
    assert not overflows(991, 990), "a pixel of rounding is no overflow"
    assert overflows(1295, 990)
    assert not overflows(1295, 0), "a hidden output (no width) is not judged"


def test_overflow_failures_name_cell_and_widths():
    outputs = [
        {"cell": 3, "index": 0, "scrollWidth": 990, "clientWidth": 990},
        {"cell": 7, "index": 1, "scrollWidth": 1295, "clientWidth": 990},
    ]
    (f,) = overflow_failures("02_data_generation.ipynb", outputs)
    assert f.line() == "02_data_generation.ipynb cell 7: output 1 is 1295 px wide in a 990 px output area"


def test_failure_lines():
    assert Failure("05_clustering.ipynb", 25, "slider 'k': view did not change").line() == (
        "05_clustering.ipynb cell 25: slider 'k': view did not change"
    )
    assert (
        Failure("05_clustering.ipynb", None, "console error: x").line()
        == "05_clustering.ipynb: console error: x"
    )
    a, b = Failure("n", 1, "x"), Failure("n", 2, "x")
    assert dedupe([a, b, a]) == [a, b]


def _view(html, *images):
    return {"html": html, "images": list(images)}


def test_change_detection_sees_html_and_pixels():
    before = _view("<b>cluster 0: 3 documents</b>", "data:image/png;base64,AAAA")
    assert not view_changed(before, _view("<b>cluster 0: 3 documents</b>", "data:image/png;base64,AAAA"))
    assert view_changed(before, _view("<b>cluster 0: 2 documents</b>", "data:image/png;base64,AAAA"))
    assert view_changed(before, _view("<b>cluster 0: 3 documents</b>", "data:image/png;base64,BBBB"))
    assert view_changed(before, _view("<b>cluster 0: 3 documents</b>")), "an image that went away is a change"


def test_change_detection_ignores_what_every_render_changes():
    # a new object URL for the same pixels, or fresh element ids, are no change a student sees
    a = '<div id="id-1"><img src="blob:http://127.0.0.1:8888/1a2b"><label for="id-1">x</label></div>'
    b = '<div id="id-9"><img src="blob:http://127.0.0.1:8888/ffee"><label for="id-9">x</label></div>'
    assert normalise_html(a) == normalise_html(b)
    assert not view_changed(_view(a, "data:image/png;base64,AAAA"), _view(b, "data:image/png;base64,AAAA"))
    # ... but a style change (a bar's width, a colour) is
    assert view_changed(_view('<i style="width: 10px"></i>'), _view('<i style="width: 20px"></i>'))


def test_console_failures_keep_severe_and_drop_ignored():
    entries = [
        {"level": "SEVERE", "message": "http://127.0.0.1:1/favicon.ico - Failed to load resource: 404"},
        {"level": "WARNING", "message": "something deprecated"},
        {"level": "SEVERE", "message": "Error: no view for model abc"},
    ]
    (f,) = console_failures("04_manual_features.ipynb", entries)
    assert f.line() == "04_manual_features.ipynb: console error: Error: no view for model abc"


def test_lab_settings_are_written_where_jupyterlab_reads_them(tmp_path):
    write_lab_settings(tmp_path, {"@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"}})
    path = tmp_path / "@jupyterlab" / "notebook-extension" / "tracker.jupyterlab-settings"
    assert json.loads(path.read_text()) == {"windowingMode": "none"}


def test_a_control_read_by_a_later_button_is_its_input():
    ctl = [
        {"cell": 41, "output": 0, "index": 0, "kind": "dropdown", "label": "feature"},
        {"cell": 41, "output": 0, "index": 1, "kind": "slider", "label": "strength"},
        {"cell": 41, "output": 0, "index": 2, "kind": "button", "label": "generate"},
        {"cell": 42, "output": 0, "index": 0, "kind": "slider", "label": "k"},
    ]
    assert button_after(ctl[0], ctl) is ctl[2]
    assert button_after(ctl[1], ctl) is ctl[2]
    assert button_after(ctl[2], ctl) is None, "a button is judged by its own change"
    assert button_after(ctl[3], ctl) is None, "a slider with no button after it must change the view itself"


def test_scale_rule_fails_figures_not_drawn_at_the_size_they_are_shown():
    from tools.check_lab import scale_problem

    assert scale_problem(890, 890) is None
    assert scale_problem(1389, 993) is None, "71%: still legible"
    assert "53%" in scale_problem(1890, 993), "03's training curves as they were: ~5 px tick labels"
    assert "268%" in scale_problem(369, 989), "03's superposition widget as it was: blurry and too tall"
