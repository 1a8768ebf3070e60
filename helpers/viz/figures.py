"""Figures: one colour per theme everywhere, and every figure saved to the profile's figures/."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt

from helpers.config import paths
from helpers.data.prompts import THEMES

THEME_COLORS: dict[str, str] = dict(zip(THEMES, plt.get_cmap("tab10").colors[:5], strict=True))
THEME_MARKERS: dict[str, str] = dict(zip(THEMES, "os^Dv", strict=True))


def theme_color(theme: str) -> str:
    return THEME_COLORS.get(theme, "grey")


def save_figure(fig: plt.Figure, name: str) -> Path:
    """Save ``fig`` as ``figures/<name>.png`` (under ``.ci_out/`` in the ci profile)."""
    path = paths().figures / f"{name}.png"
    fig.savefig(path, dpi=110, bbox_inches="tight")
    return path
