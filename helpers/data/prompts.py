"""The committed prompt corpus ``data/prompts.csv``: ``id,theme,prompt``, 5 themes x 20."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from helpers.config import paths

THEMES: tuple[str, ...] = (
    "Fitness & Health",
    "Technology & AI",
    "Society & Culture",
    "Environment & Sustainability",
    "Media & Entertainment",
)
COLUMNS = ("id", "theme", "prompt")


def load_prompts(path: str | Path | None = None, per_theme: int | None = None) -> pd.DataFrame:
    """Read and validate the prompts; ``per_theme`` keeps the first n prompts of each theme."""
    path = Path(path) if path is not None else paths().prompts
    if not path.is_file():
        raise FileNotFoundError(
            f"prompts file {path} not found; restore it with `git checkout data/prompts.csv`"
        )
    df = pd.read_csv(path, dtype={"theme": str, "prompt": str}, keep_default_na=False)
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(
            f"{path.name} lacks column(s) {', '.join(missing)}; its header must be id,theme,prompt"
        )
    df = df[list(COLUMNS)]
    empty = df.index[(df["prompt"].str.strip() == "") | (df["theme"].str.strip() == "")]
    if len(empty):
        raise ValueError(
            f"{path.name} has empty theme or prompt in row(s) {[int(i) + 2 for i in empty]}; fill or delete "
            f"them"
        )
    ids = pd.to_numeric(df["id"], errors="coerce")
    if ids.isna().any():
        raise ValueError(
            f"{path.name} has non-integer id(s) in row(s) {[int(i) + 2 for i in df.index[ids.isna()]]}"
        )
    df["id"] = ids.astype(int)
    dup = df["id"][df["id"].duplicated()].unique()
    if len(dup):
        raise ValueError(f"{path.name} repeats id(s) {sorted(dup.tolist())}; ids must be unique")
    df["prompt"] = df["prompt"].str.strip()
    df["theme"] = df["theme"].str.strip()
    unknown = sorted(set(df["theme"]) - set(THEMES))
    if unknown:
        raise ValueError(
            f"{path.name} has {len(unknown)} unknown theme(s) {unknown}; use one of: {', '.join(THEMES)}"
        )
    if per_theme is not None:
        df = df.groupby("theme", sort=False).head(per_theme)
    return df.reset_index(drop=True)
