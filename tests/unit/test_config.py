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
    ("field", "value"), [("k", 2.5), ("k", "32"), ("expansion", 8.5), ("batch_size", None), ("seed", -1)]
)
def test_sae_config_wants_whole_numbers(field, value):
    from dataclasses import replace

    with pytest.raises(
        ValueError, match=f"{field} = .* must be a whole number"
    ):  # k = 2.5 was a raw TypeError
        replace(config.FULL.topk, **{field: value}).validate()


def test_sae_config_takes_whole_floats_as_ints():
    """The shared guard (helpers.validate.as_count) accepts 8.0: the config stores it as the int 8, so sizes,
    torch and the run's key see an int."""
    from dataclasses import replace

    import numpy as np

    c = replace(config.FULL.topk, expansion=8.0, k=np.int64(16), steps=2000.0)
    c.validate()
    assert (c.expansion, c.k, c.steps) == (8, 16, 2000) and type(c.expansion) is type(c.k) is int
    assert c == replace(config.FULL.topk, k=16) and c.d_sae == 8 * 576  # the same run, the same key


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        ("l1_coefficient", "5", r"λ \(l1_coefficient\) = '5' must be a number"),  # was a raw TypeError
        ("l1_coefficient", float("inf"), "λ .* = inf must be a finite number >= 0"),
        ("lr", float("inf"), "lr = inf must be a finite number > 0"),
        ("lr", 0.0, "lr = 0.0 must be a finite number > 0"),
        ("grad_clip", float("nan"), "grad_clip = nan must be a finite number > 0"),
        ("aux_coefficient", None, "aux_coefficient = None must be a number"),
        ("warmup_frac", 1.5, r"warmup_frac = 1.5 must be a finite number in \[0, 1\]"),
    ],
)
def test_sae_config_wants_finite_numbers(field, value, match):
    from dataclasses import replace

    with pytest.raises(ValueError, match=match):
        replace(config.FULL.l1, **{field: value}).validate()


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        ("max_new_tokens", "64", "max_new_tokens = '64' must be a whole number >= 1"),
        ("top_k", None, "top_k = None must be a whole number >= 1"),
        ("min_new_tokens", 80, r"min_new_tokens = 80 must be a whole number in 0..64"),
        ("temperature", "0.8", "temperature = '0.8' must be a number"),
        ("top_p", float("nan"), r"top_p = nan must be a finite number in \(0, 1\]"),
    ],
)
def test_generation_config_is_checked_by_the_shared_guards(field, value, match):
    from dataclasses import replace

    with pytest.raises(ValueError, match=match):  # '64' and None were raw TypeErrors
        replace(config.FULL.generation, **{field: value}).validate()
    assert replace(config.FULL.generation, max_new_tokens=64.0).max_new_tokens == 64


@pytest.mark.parametrize("blocked", ["read-only", "a file in the way"])
def test_an_unwritable_output_folder_is_one_line_before_anything_runs(tmp_path, monkeypatch, blocked):
    """A read-only data/ let `make run NB=01` run the whole notebook, then end in a long traceback. paths()
    (which every entry point goes through) and `make run` (config.outputs_problem) now refuse it first."""
    out = tmp_path / "out"
    monkeypatch.setenv("WORKBOOK_OUTPUT", str(out))
    assert config.outputs_problem() is None  # creates out/data, out/figures
    if blocked == "read-only":
        (out / "data").chmod(0o555)
        if os.geteuid() == 0:  # root writes anywhere: answer as access(2) answers everyone else
            real = os.access
            monkeypatch.setattr(os, "access", lambda p, m, **kw: p != out / "data" and real(p, m, **kw))
        why = "is read-only"
    else:
        (out / "figures").rmdir()
        (out / "figures").write_text("")
        why = r"cannot be created \(File exists\)"
    try:
        with pytest.raises(
            ValueError, match=f"the output folder .*out/(data|figures) {why}: .*set WORKBOOK_OUTPUT"
        ):
            config.paths()
        msg = config.outputs_problem()
        assert msg is not None and "\n" not in msg
    finally:
        (out / "data").chmod(0o755)
