from helpers.progress import HEADLESS_ENV, FinalLine, progress_bar


def test_headless_bar_prints_its_final_state_once(monkeypatch, capsys):
    monkeypatch.setenv(HEADLESS_ENV, "1")
    assert list(progress_bar(range(7), desc="scan")) == list(range(7))
    out = capsys.readouterr().out
    assert out.startswith("scan: 7/7 done in ") and out.count("\n") == 1
    bar = progress_bar(total=3, desc="generating")
    bar.update(2)
    bar.update(1)
    bar.close()
    bar.close()
    assert capsys.readouterr().out.startswith("generating: 3/3 done")


def test_disabled_and_live_bars(monkeypatch, capsys):
    monkeypatch.setenv(HEADLESS_ENV, "1")
    assert list(progress_bar(range(3), disable=True)) == [0, 1, 2]
    assert capsys.readouterr().out == ""
    monkeypatch.delenv(HEADLESS_ENV)
    bar = progress_bar(range(2), desc="x", mininterval=1.0)
    assert not isinstance(bar, FinalLine)  # tqdm's own bar in a live session
    assert list(bar) == [0, 1]
