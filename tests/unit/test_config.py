import os
import subprocess
import sys

import pytest

from helpers import config


def test_default_profile_is_full(monkeypatch):
    monkeypatch.delenv("WORKBOOK_PROFILE", raising=False)
    assert config.active_profile().name == "full"


def test_ci_profile_writes_under_ci_out(monkeypatch):
    monkeypatch.setenv("WORKBOOK_PROFILE", "ci")
    p = config.paths()
    assert config.active_profile().name == "ci"
    assert p.data == config.ROOT / ".ci_out" / "data"
    assert p.figures == config.ROOT / ".ci_out" / "figures"
    assert p.prompts == config.ROOT / "data" / "prompts.csv"  # the committed input is shared


def test_full_profile_writes_to_data_and_figures(monkeypatch):
    monkeypatch.setenv("WORKBOOK_PROFILE", "full")
    p = config.paths()
    assert p.data == config.ROOT / "data" and p.figures == config.ROOT / "figures"


def test_unknown_profile_is_clear_error(monkeypatch):
    monkeypatch.setenv("WORKBOOK_PROFILE", "fast")
    with pytest.raises(ValueError, match="WORKBOOK_PROFILE='fast' is not a profile; set it to one of full, ci"):
        config.active_profile()


def test_ci_sizes_smaller_than_full():
    assert config.CI.scan_prompts_per_theme < config.FULL.scan_prompts_per_theme
    assert config.CI.samples_per_prompt * config.CI.max_new_tokens < config.FULL.samples_per_prompt * config.FULL.max_new_tokens


def test_paths_do_not_depend_on_working_directory(tmp_path):
    code = "from helpers.config import paths; print(paths('full').prompts)"
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True,
                         env={**os.environ, "WORKBOOK_PROFILE": "full"})
    assert out.stdout.strip() == str(config.ROOT / "data" / "prompts.csv")
