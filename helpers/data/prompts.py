"""The committed prompt corpus ``data/prompts.csv``: ``id,theme,prompt``, 5 themes x 20."""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd

from helpers.config import ROOT, paths
from helpers.validate import id_column

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


def _restore(path: Path) -> str:
    """What to do about a broken prompts file: ``git checkout`` it when committed, else fix it."""
    try:
        return f"restore it with `git checkout {path.resolve().relative_to(ROOT)}`"
    except ValueError:
        return "fix it: UTF-8 text, the header id,theme,prompt, one prompt per row"


def _read_text(path: Path) -> str:
    """The file as UTF-8 text (a BOM allowed), else one line naming the file and the line of the bad byte."""
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise ValueError(
            f"{path.name} is not UTF-8 text (byte 0x{raw[err.start]:02x} in line {line}); re-save it as UTF-8"
            + ("" if _restore(path).startswith("fix") else f" or {_restore(path)}")
        ) from None
    if "\x00" in text:
        line = text[: text.index("\x00")].count("\n") + 1
        raise ValueError(f"{path.name} is binary, not CSV text (a NUL byte in line {line}); {_restore(path)}")
    return text


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
    try:
        df = pd.read_csv(
            io.StringIO(_read_text(path)), dtype={"theme": str, "prompt": str}, keep_default_na=False
        )
    except pd.errors.EmptyDataError:
        raise ValueError(f"{path.name} is empty; {_restore(path)}") from None
    except pd.errors.ParserError as err:
        raise ValueError(
            f"{path.name} is not valid CSV ({str(err).strip().splitlines()[0]}); {_restore(path)}"
        ) from None
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(
            f"{path.name} lacks column(s) {', '.join(missing)}; its header must be id,theme,prompt"
        )
    df = df[list(COLUMNS)]
    if df.empty:
        raise ValueError(f"{path.name} has a header but no prompts; {_restore(path)}")
    empty = df.index[(df["prompt"].str.strip() == "") | (df["theme"].str.strip() == "")]
    if len(empty):
        raise ValueError(
            f"{path.name} has empty theme or prompt in row(s) {[int(i) + 2 for i in empty]}; fill or delete "
            f"them"
        )
    df["id"] = id_column(df["id"], "id", path)  # whole, >= 0, unique: 777.5 is refused, not read as 777
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
