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
# a prompt is a seed for generation, not a document: longer ones are refused rather than cut (a 5,000-word
# prompt once made one generation batch take 250 s; one of 10,000 words ran past the model's context)
MAX_PROMPT_WORDS = 200


def load_prompts(
    path: str | Path | None = None, per_theme: int | None = None, themes: tuple[str, ...] | None = THEMES
) -> pd.DataFrame:
    """Read and validate the prompts; ``per_theme`` keeps the first n prompts of each theme.
    ``themes`` lists the allowed themes (None: any, as in the training corpus's seed prompts)."""
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
    n_words = df["prompt"].str.split().str.len()
    long = df.index[n_words > MAX_PROMPT_WORDS]
    if len(long):
        raise ValueError(
            f"{path.name} row {int(long[0]) + 2} has a prompt of {int(n_words[long[0]]):,} words "
            f"({len(long)} over the limit of {MAX_PROMPT_WORDS}); shorten it: prompts seed generation"
        )
    unknown = sorted(set(df["theme"]) - set(themes)) if themes is not None else []
    if unknown:
        raise ValueError(
            f"{path.name} has {len(unknown)} unknown theme(s) {unknown}; use one of: {', '.join(themes)}"
        )
    if per_theme is not None:
        df = df.groupby("theme", sort=False).head(per_theme)
    return df.reset_index(drop=True)
