"""Automatic labels and their label detection AUROC, on synthetic indices whose answer is known."""

import numpy as np
import pandas as pd
import pytest

from helpers.analysis import features as F
from helpers.analysis import labels as autolabel

# two documents: rows 0..7 (doc 0) and 8..11 (doc 1), positions consecutive
TOKENS = np.array([5, 9, 5, 7, 6, 9, 5, 8, 7, 5, 9, 6])
DOCS = np.array([0] * 8 + [1] * 4)
POS = np.concatenate([np.arange(1, 9), np.arange(1, 5)])
THEMES = ("A", "B")


def index_from_rows(fire_rows: dict[int, list[int]], n_rows: int, d: int) -> F.FeatureIndex:
    f = np.zeros((n_rows, d), np.float32)
    for i, rows in fire_rows.items():
        f[rows, i] = 1.0
    r, c = np.nonzero(f)
    return F.FeatureIndex.from_entries(r, c, f[r, c], n_rows, d)


def parts(enriched, promoted, theme=(-1, -1, -1)):
    n = len(enriched)
    return autolabel.LabelParts(
        features=np.arange(n),
        enriched=np.array(enriched),
        promoted=np.array(promoted),
        theme=np.array(theme[:n]),
        themes=THEMES,
    )


def test_next_tokens_stop_at_document_ends():
    nxt = autolabel.next_tokens(TOKENS, DOCS, POS)
    assert nxt.tolist() == [9, 5, 7, 6, 9, 5, 8, -1, 5, 9, 6, -1]
    gap = POS.copy()
    gap[3:] += 1  # row 3 is not the token after row 2: unknown
    assert autolabel.next_tokens(TOKENS, DOCS, gap)[2] == -1


def test_auroc_rows_matches_the_rank_sum_per_row():
    rng = np.random.default_rng(0)
    fires = rng.random((20, 50)) < 0.2
    fires[3] = False  # no positive: NaN
    fires[4] = True  # no negative: NaN
    score = rng.integers(0, 3, (20, 50))
    got = autolabel.auroc_rows(fires, score)
    want = [autolabel._auroc(f, s) for f, s in zip(fires, score, strict=True)]
    np.testing.assert_allclose(got, want, equal_nan=True)
    assert np.isnan(got[3]) and np.isnan(got[4])
    with pytest.raises(ValueError, match="small whole-number"):
        autolabel.auroc_rows(fires, rng.random((20, 50)))


def test_label_detection_by_hand():
    # feature 0 fires on token 5 and its label says '5'; feature 1 fires before a 9 and promotes 9
    index = index_from_rows({0: [0, 2, 6, 9], 1: [0, 4, 9]}, len(TOKENS), 2)
    p = parts(enriched=[[5, -1, -1], [4, -1, -1]], promoted=[[3, 3], [9, 3]])
    nxt = autolabel.next_tokens(TOKENS, DOCS, POS)
    s = autolabel.label_detection_scores(index, TOKENS, nxt, np.ones(len(TOKENS), bool), p)
    assert s.loc[0, "eval_fires"] == 4 and s.loc[1, "eval_fires"] == 3
    assert s.loc[0, ["token_auroc", "next_token_auroc"]].tolist() == [1.0, 0.5]
    assert s.loc[1, ["token_auroc", "next_token_auroc"]].tolist() == [0.5, 1.0]
    # random: feature 0 read with feature 1's label: its next-token part flags rows 0, 4, 9 (next token
    # 9): hits 2 of 4 firings, 1 of 8 others -> (0.5 + 7/8) / 2; feature 1 with feature 0's tokens flags
    # 0, 2, 6, 9: 2 of 3 firings, 2 of 9 others
    assert s.loc[0, "next_token_auroc_random"] == pytest.approx((0.5 + 7 / 8) / 2)
    assert s.loc[1, "token_auroc_random"] == pytest.approx((2 / 3 + 7 / 9) / 2)
    assert "label_auroc" not in s.columns  # the promoted tokens are not in the headline score
    assert "theme_auroc" not in s.columns


def test_both_parts_scored_apart_on_eval_rows_only():
    # fires on 5 and on the token before 9
    index = index_from_rows({0: [0, 2, 4, 9], 1: [1]}, len(TOKENS), 2)
    p = parts(enriched=[[5, -1, -1], [8, -1, -1]], promoted=[[9, 9], [6, 6]])
    nxt = autolabel.next_tokens(TOKENS, DOCS, POS)
    mask = DOCS == 0  # held-out rows: doc 0 only
    s = autolabel.label_detection_scores(index, TOKENS, nxt, mask, p)
    # doc 0, feature 0 fires on rows 0 (5, next 9), 2 (5), 4 (next 9); row 6 (5, next 8) does not
    e = np.isin(TOKENS[mask], [5]).astype(int)
    q = np.isin(nxt[mask], [9]).astype(int)
    fires = np.isin(np.arange(8), [0, 2, 4])
    assert s.loc[0, "eval_fires"] == 3
    assert s.loc[0, "token_auroc"] == pytest.approx(autolabel._auroc(fires, e))
    assert s.loc[0, "next_token_auroc"] == pytest.approx(autolabel._auroc(fires, q))


def test_theme_part_scores_the_labels_theme():
    index = index_from_rows({0: [8, 9, 10, 11], 1: [8, 9], 2: [1, 2]}, len(TOKENS), 3)
    p = parts(enriched=[[-1]] * 3, promoted=[[-1]] * 3, theme=(1, -1, 0))
    theme_codes = DOCS.copy()  # doc 0 is theme A, doc 1 theme B
    nxt = autolabel.next_tokens(TOKENS, DOCS, POS)
    s = autolabel.label_detection_scores(index, TOKENS, nxt, np.ones(12, bool), p, theme_codes=theme_codes)
    assert s.loc[0, "theme_auroc"] == 1.0  # fires on every token of theme B, labelled B
    assert s.loc[1, "theme_auroc"] == 0.5  # "any theme" flags nothing
    assert s.loc[2, "theme_auroc"] == pytest.approx((1 + 4 / 10) / 2)  # both firings in A; 6 of 10 others too
    assert s.loc[0, "token_auroc"] == 0.5  # no tokens: nothing flagged


def test_label_parts_and_build_labels_say_the_same():
    index = index_from_rows({0: [0, 2, 6, 9], 1: [3, 8]}, len(TOKENS), 2)
    enr = autolabel.enrichment(index, TOKENS, np.ones(12, bool), min_count=1)
    lifts = pd.DataFrame([[1.0, 2.0], [1.2, 1.1]], index=[0, 1], columns=list(THEMES))
    logit_top = np.array([[11, 12, 13], [21, 22, 23]])
    p = autolabel.label_parts(lifts, enr, logit_top, n_tokens=3, n_promoted=2)
    assert p.enriched.tolist() == [[5, -1, -1], [7, -1, -1]]
    assert p.promoted.tolist() == [[11, 12], [21, 22]] and p.theme.tolist() == [1, -1]

    class Tok:
        def decode(self, ids):
            return f"t{ids[0]}"

    lab = autolabel.build_labels(lifts, enr, logit_top, Tok())
    assert lab.loc[0, "label"] == "'t5' | ↑'t11'/'t12' | B"
    assert lab.loc[1, "label"] == "'t7' | ↑'t21'/'t22' | any theme"
    with pytest.raises(ValueError, match="n_promoted"):
        autolabel.label_parts(lifts, enr, logit_top, n_promoted=4)


# --- issue 28: feature_labels.csv checked as a whole; feature ids in fires_matrix --------------------------

GOOD = "feature,label,theme\n0,'sun' | ↑'s' | A,A\n2,'rain' | ↑'s' | B,B\n5,'film' | ↑'s' | A,A\n"


def _labels_file(tmp_path, content, d_sae=8):
    (tmp_path / "cfg.json").write_text(f'{{"d_sae": {d_sae}}}')
    path = tmp_path / "feature_labels.csv"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return path


def test_sound_labels_load_and_a_missing_file_shows_ids_only(tmp_path, capsys):
    assert autolabel.load_labels(_labels_file(tmp_path, GOOD)) == {
        0: "'sun' | ↑'s' | A",
        2: "'rain' | ↑'s' | B",
        5: "'film' | ↑'s' | A",
    }
    assert (
        autolabel.load_labels(tmp_path / "nope.csv") == {}
        and "showing feature ids only" in capsys.readouterr().out
    )


@pytest.mark.parametrize(
    ("content", "why"),
    [
        ("", "is empty"),  # was pandas' EmptyDataError
        (bytes(range(256)) * 8, r"is not a CSV text file \(not UTF-8\)"),  # was a raw UnicodeDecodeError
        ("feature,label\n0,a\x00b\n", "is binary"),
        (
            "feature,label\n0,a\nthree,b\n",
            "row 3: feature = 'three' must be a whole number in 0..7",
        ),  # raw int()
        ("feature,label\n0,a\n2.5,b\n", "row 3: feature = 2.5 must be a whole number"),
        ("feature,label\n0,a\n9,b\n", "row 3: feature = 9 must be a whole number in 0..7"),  # beyond d_sae
        ("feature,label\n0,a\n3,b\n3,c\n", r"repeats feature\(s\) \[3\] \(row 4"),  # the last one won
        (GOOD[: len(GOOD) // 2 + 3], "ends in the middle of a row"),  # was half the labels, silently
        ("feature,label\n", "has a header but no labels"),
        ("feature,name\n0,a\n", r"lacks column\(s\) label"),
    ],
)
def test_a_broken_labels_file_is_one_line_naming_it(tmp_path, content, why):
    with pytest.raises(ValueError, match=why) as err:
        autolabel.load_labels(_labels_file(tmp_path, content))
    msg = str(err.value)
    assert msg.startswith("feature_labels.csv") and "re-run notebooks/04" in msg and "\n" not in msg


def test_saved_labels_carry_their_count_so_a_cut_at_a_row_end_is_caught(tmp_path):
    labels = pd.DataFrame(
        {"label": ["a", "b", "c"], "theme": ["A", "B", "A"]}, index=pd.Index([0, 2, 5], name="feature")
    )
    path = autolabel.save_labels(tmp_path / "feature_labels.csv", labels)
    assert autolabel.load_labels(path) == {0: "a", 2: "b", 5: "c"}
    assert autolabel.load_labels(path, n_features=6) == {0: "a", 2: "b", 5: "c"}
    path.write_text(
        "".join(path.read_text().splitlines(keepends=True)[:3])
    )  # whole rows: only the count can tell
    with pytest.raises(ValueError, match="does not match its marker feature_labels.json"):
        autolabel.load_labels(path)


def test_fires_matrix_refuses_feature_minus_one():
    """Feature id -1 silently meant the last feature."""
    index = index_from_rows({0: [0, 2], 1: [1]}, 4, 2)
    assert autolabel.fires_matrix(index, np.array([1]), np.arange(4)).tolist() == [
        [False, True, False, False]
    ]
    with pytest.raises(ValueError, match=r"feature -1 is out of range: this SAE has features 0\.\.1"):
        autolabel.fires_matrix(index, np.array([0, -1]), np.arange(4))
    with pytest.raises(ValueError, match=r"row 4 is out of range"):
        autolabel.fires_matrix(index, np.array([0]), np.array([0, 4]))


def test_smoothed_enrichment_prefers_a_common_token_to_a_rare_one():
    # feature 0 fires on all 3 sightings of token 1 (rare) and on 30 of the 40 sightings of token 2
    tokens = np.array([1] * 3 + [2] * 40 + [3] * 157)
    index = index_from_rows({0: list(range(33))}, len(tokens), 1)
    mask = np.ones(len(tokens), bool)
    raw = autolabel.enrichment(index, tokens, mask, prior=0)
    assert raw["token"].tolist()[:2] == [1, 2]  # the raw lift puts the rare token first
    enr = autolabel.enrichment(index, tokens, mask)
    assert enr["token"].tolist()[:2] == [2, 1]
    row = enr.set_index("token").loc[1]
    assert row["smoothed"] == pytest.approx(row["ratio"] * 3 / (3 + autolabel.PRIOR))
    assert row["token_count"] == 3
    with pytest.raises(ValueError, match="prior"):
        autolabel.enrichment(index, tokens, mask, prior=-1)


def test_detection_counts_sum_to_the_token_auroc():
    rng = np.random.default_rng(3)
    n = 240
    tokens = rng.integers(0, 6, n)
    prompts = np.repeat(np.arange(8), 30)
    f = (rng.random((n, 4)) < 0.2) | (tokens[:, None] == np.arange(4))
    r, c = np.nonzero(f)
    index = F.FeatureIndex.from_entries(r, c, np.ones(len(r), np.float32), n, 4)
    p = parts(enriched=[[0, -1, -1], [1, 5, -1], [2, -1, -1], [4, -1, -1]], promoted=[[0, 0]] * 4)
    ev = prompts >= 3
    nxt = np.full(n, -1)
    s = autolabel.label_detection_scores(index, tokens, nxt, ev, p, seed=2)
    cnt = autolabel.detection_counts(index, tokens, ev, p, prompts, seed=2)
    assert cnt.own.shape == (4, 5, 2, 2) and cnt.groups.tolist() == [3, 4, 5, 6, 7]
    assert cnt.own.sum((1, 2, 3)).tolist() == [ev.sum()] * 4
    np.testing.assert_allclose(autolabel.auroc_from_counts(cnt.own), s["token_auroc"])
    np.testing.assert_allclose(autolabel.auroc_from_counts(cnt.random), s["token_auroc_random"])
    # weights = how often each prompt is drawn: drawing prompt 3 twice equals duplicating its tokens
    w = np.array([2, 1, 1, 1, 0])
    keep = np.isin(prompts, [3, 4, 5, 6])
    dup = np.concatenate([np.flatnonzero(prompts == 3), np.flatnonzero(keep)])
    want = [autolabel._auroc(f[dup, i], np.isin(tokens[dup], p.enriched[i])) for i in range(4)]
    np.testing.assert_allclose(autolabel.auroc_from_counts(cnt.own, w), want)
    assert autolabel.auroc_from_counts(cnt.own, np.stack([w, w])).shape == (2, 4)
    assert cnt.subset([2, 0]).units.tolist() == [2, 0]
    with pytest.raises(ValueError, match="one entry per store row"):
        autolabel.detection_counts(index, tokens, ev, p, prompts[:-1])


def test_top_token_in_label():
    # feature 0 peaks on token 5 (labelled), feature 1 on token 9 (not labelled), feature 2 fires
    # on held-out rows only
    index = F.FeatureIndex.from_entries(
        np.array([0, 1, 2, 5, 8]), np.array([0, 0, 1, 1, 2]), np.array([3.0, 1.0, 0.5, 2.0, 1.0]), 12, 3
    )
    p = parts(enriched=[[5, 7, -1], [5, -1, -1], [8, -1, -1]], promoted=[[0, 0]] * 3)
    mask = np.arange(12) < 8
    got = autolabel.top_token_in_label(index, TOKENS, mask, p)
    assert got.tolist()[:2] == [1.0, 0.0] and np.isnan(got[2])
