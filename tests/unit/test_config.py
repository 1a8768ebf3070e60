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
    with pytest.raises(
        ValueError, match="WORKBOOK_PROFILE='fast' is not a profile; set it to one of full, ci"
    ):
        config.active_profile()


def test_ci_sizes_smaller_than_full():
    assert config.CI.scan_prompts_per_theme < config.FULL.scan_prompts_per_theme
    assert config.CI.generation.samples_per_prompt * config.CI.generation.max_new_tokens < (
        config.FULL.generation.samples_per_prompt * config.FULL.generation.max_new_tokens
    )


def test_paths_do_not_depend_on_working_directory(tmp_path):
    code = "from helpers.config import paths; print(paths('full').prompts)"
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "WORKBOOK_PROFILE": "full"},
    )
    assert out.stdout.strip() == str(config.ROOT / "data" / "prompts.csv")


@pytest.mark.parametrize("profile", [config.FULL, config.CI])
def test_profile_configs_are_valid(profile):
    # ensure_store builds the store from profile.generation: it must validate in every profile (the ci
    # profile once built min_new_tokens 32 > max_new_tokens 24 and raised)
    profile.generation.validate()
    profile.topk.validate()
    profile.l1.validate()


def test_notebook_parameters_come_from_the_profile():
    # one home for defaults: notebooks 02 and 03 read theirs from the profile, not from literals
    import json

    for nb, keys in {
        "02_data_generation": {"MAX_NEW_TOKENS": "max_new_tokens", "TEMPERATURE": "temperature"},
        "03_sae_training": {"LR": "lr", "BATCH_SIZE": "batch_size", "K": "k", "STEPS": "steps"},
    }.items():
        cells = json.loads((config.ROOT / "notebooks" / f"{nb}.ipynb").read_text())["cells"]
        src = "".join(next(c for c in cells if "parameters" in c["metadata"].get("tags", []))["source"])
        for prof in (config.FULL, config.CI):
            env = {"active_profile": lambda prof=prof: prof}
            exec(src, env)
            want = prof.generation if nb.startswith("02") else prof.topk
            for var, field in keys.items():
                assert env[var] == getattr(want, field), (nb, prof.name, var)


@pytest.mark.parametrize(
    ("field", "value"), [("k", 2.5), ("k", "32"), ("expansion", 8.0), ("batch_size", None)]
)
def test_sae_config_wants_whole_numbers(field, value):
    from dataclasses import replace

    with pytest.raises(
        ValueError, match=f"{field} = .* must be a whole number"
    ):  # k = 2.5 was a raw TypeError
        replace(config.FULL.topk, **{field: value}).validate()
