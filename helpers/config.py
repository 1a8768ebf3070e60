"""Profiles and paths.

One environment variable, ``WORKBOOK_PROFILE``, picks the profile: ``full`` (the default: what
students run and what is committed) or ``ci`` (smaller sizes for nbval). Every path is resolved
from the repository root, never from the working directory, so a notebook finds its files
whether it is run from ``notebooks/``, from the root or by nbval.

The ``ci`` profile writes everything it produces under ``.ci_out/`` (git-ignored), so running
the tests never overwrites the committed full-profile results in ``data/`` and ``figures/``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

ROOT: Path = Path(__file__).resolve().parents[1]
PROFILE_ENV = "WORKBOOK_PROFILE"
PROFILES = ("full", "ci")


@dataclass(frozen=True)
class Profile:
    """Sizes for one profile. Notebooks take their parameter defaults from here."""

    name: str
    # 01 layer scan
    scan_prompts_per_theme: int
    # 02 data generation
    samples_per_prompt: int
    max_new_tokens: int
    gen_prompts_per_theme: int
    # 03 SAE training: epochs of the two main runs, of the sweep's runs, texts for the CE eval
    sae_epochs: float = 6.0
    l1_epochs: float = 2.5
    sweep_epochs: float = 1.5
    ce_docs: int = 12
    bad_run_tokens: int = 8192
    # 06 steering: new tokens per steered text
    steer_new_tokens: int = 20
    seed: int = 0


FULL = Profile(
    name="full",
    scan_prompts_per_theme=20,
    samples_per_prompt=4,
    max_new_tokens=64,
    gen_prompts_per_theme=20,
)
CI = Profile(
    name="ci",
    scan_prompts_per_theme=6,
    samples_per_prompt=1,
    max_new_tokens=24,
    gen_prompts_per_theme=4,
    sae_epochs=2.0,
    l1_epochs=2.0,
    sweep_epochs=1.0,
    ce_docs=4,
    bad_run_tokens=512,
    steer_new_tokens=8,
)


def profile_name() -> str:
    """The active profile's name, from ``WORKBOOK_PROFILE`` (default ``full``)."""
    name = os.environ.get(PROFILE_ENV, "full").strip().lower() or "full"
    if name not in PROFILES:
        raise ValueError(
            f"{PROFILE_ENV}={name!r} is not a profile; set it to one of {', '.join(PROFILES)}"
        )
    return name


def active_profile() -> Profile:
    """The active :class:`Profile`."""
    return {"full": FULL, "ci": CI}[profile_name()]


@dataclass(frozen=True)
class Paths:
    """Where a profile reads its committed inputs and writes what it produces."""

    root: Path
    prompts: Path  # committed input, shared by every profile
    data: Path  # produced data (activations, generations, SAE)
    figures: Path
    model_cache: Path

    @property
    def layer_scan(self) -> Path:
        return self.data / "layer_scan.json"

    @property
    def generations(self) -> Path:
        return self.data / "generations.csv"

    @property
    def activations(self) -> Path:
        return self.data / "activations.npz"

    @property
    def sae_dir(self) -> Path:
        return self.data / "sae"


def paths(profile: str | None = None) -> Paths:
    """Paths for ``profile`` (default: the active one); creates the output folders."""
    name = profile or profile_name()
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}; use one of {', '.join(PROFILES)}")
    out = ROOT if name == "full" else ROOT / ".ci_out"
    p = Paths(
        root=ROOT,
        prompts=ROOT / "data" / "prompts.csv",
        data=out / "data",
        figures=out / "figures",
        model_cache=Path(os.environ.get("WORKBOOK_MODEL_CACHE", ROOT / ".cache" / "models")),
    )
    p.data.mkdir(parents=True, exist_ok=True)
    p.figures.mkdir(parents=True, exist_ok=True)
    return p
