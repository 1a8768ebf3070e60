"""Word statistics of a text corpus (notebook 02's prompt statistics, as in the report)."""

from __future__ import annotations

import re
from collections import Counter

import pandas as pd
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

STOP_WORDS: frozenset[str] = frozenset(ENGLISH_STOP_WORDS)
_WORD = re.compile(r"[a-z]+(?:['-][a-z]+)*")


def words(text: str) -> list[str]:
    """Lower-cased words of ``text``: letters, with inner apostrophes or hyphens kept."""
    return _WORD.findall(text.lower())


def top_words(texts, k: int = 10, stop_words: frozenset[str] = STOP_WORDS) -> list[tuple[str, int]]:
    """The ``k`` most frequent words over ``texts``, stop-words removed; ties broken alphabetically."""
    counts = Counter(w for t in texts for w in words(t) if w not in stop_words)
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:k]


def corpus_summary(df: pd.DataFrame, text: str = "prompt", theme: str = "theme") -> pd.DataFrame:
    """Per theme and overall: texts, total words, mean words per text."""
    n_words = df[text].map(lambda t: len(words(t)))
    g = n_words.groupby(df[theme], sort=False)
    out = pd.DataFrame({"texts": g.size(), "total_words": g.sum(), "mean_words": g.mean().round(1)})
    out.loc["all"] = [len(df), int(n_words.sum()), round(float(n_words.mean()), 1)]
    out.index.name = theme
    return out.astype({"texts": int, "total_words": int})


def top_words_by_theme(
    df: pd.DataFrame, k: int = 8, text: str = "prompt", theme: str = "theme"
) -> pd.DataFrame:
    """Long table ``theme, rank, word, count`` of each theme's top words."""
    rows = [
        {"theme": t, "rank": r + 1, "word": w, "count": c}
        for t, sub in df.groupby(theme, sort=False)
        for r, (w, c) in enumerate(top_words(sub[text], k))
    ]
    return pd.DataFrame(rows)
