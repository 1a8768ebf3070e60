from collections import Counter

import numpy as np
import pytest

from helpers.exercises import layer_scan as checks
from helpers.exercises.common import CheckFailed


def _sink_ratio(x, positions):
    norms = np.linalg.norm(x, axis=-1)
    return float(norms[positions == 0].mean() / norms[positions > 0].mean())


def _participation_ratio(x):
    xc = x - x.mean(axis=0)
    lam = np.linalg.eigvalsh(xc.T @ xc / (len(x) - 1))
    return float(lam.sum() ** 2 / (lam**2).sum())


def test_reference_answers_pass(capsys):
    checks.check_sink_ratio(_sink_ratio)
    checks.check_participation_ratio(_participation_ratio)
    out = capsys.readouterr().out.splitlines()
    assert out == [
        "PASSED sink_ratio: matches the expected values on 3 synthetic cases",
        "PASSED participation_ratio: matches the expected values on 3 synthetic cases, centred and "
        "scale-free",
    ]


def test_unanswered_exercise():
    def todo(x, pos):
        raise NotImplementedError()

    with pytest.raises(CheckFailed, match="not answered yet"):
        checks.check_sink_ratio(todo)


@pytest.mark.parametrize(
    ("wrong", "hint"),
    [
        (
            lambda x, p: np.linalg.norm(x, axis=1)[p == 0].mean() / np.linalg.norm(x, axis=1).mean(),
            "leave the first tokens out",
        ),
        (
            lambda x, p: np.linalg.norm(x, axis=1)[p > 0].mean() / np.linalg.norm(x, axis=1)[p == 0].mean(),
            "upside down",
        ),
        (
            lambda x, p: np.linalg.norm(x[p == 0], axis=0).mean() / np.linalg.norm(x[p > 0], axis=0).mean(),
            "over tokens",
        ),
        (lambda x, p: 1.0, "expected"),
    ],
)
def test_sink_ratio_mistakes_are_named(wrong, hint):
    with pytest.raises(CheckFailed, match=hint):
        checks.check_sink_ratio(wrong)


def _pr_uncentred(x):
    lam = np.linalg.eigvalsh(x.T @ x / len(x))
    return lam.sum() ** 2 / (lam**2).sum()


@pytest.mark.parametrize(
    ("wrong", "hint"),
    [
        (_pr_uncentred, "centre the data"),
        (lambda x: 1 / _participation_ratio(x), "upside down"),
        (
            lambda x: (s := np.linalg.svd(x - x.mean(0), compute_uv=False)).sum() ** 2 / (s**2).sum(),
            "singular values",
        ),
    ],
)
def test_participation_ratio_mistakes_are_named(wrong, hint):
    with pytest.raises(CheckFailed, match=hint):
        checks.check_participation_ratio(wrong)


def test_check_top_words_names_the_mistake():

    from helpers.data.text_stats import STOP_WORDS, words
    from helpers.exercises.common import CheckFailed
    from helpers.exercises.data_generation import check_top_words

    def top_words(texts, k):
        counts = Counter(w for t in texts for w in words(t) if w not in STOP_WORDS)
        return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:k]

    check_top_words(top_words)

    def keeps_stop_words(texts, k):
        return Counter(w for t in texts for w in words(t)).most_common(k)

    with pytest.raises(CheckFailed, match="stop-words"):
        check_top_words(keeps_stop_words)


def test_check_validate_store():
    from helpers.exercises.common import CheckFailed
    from helpers.exercises.data_generation import check_validate_store

    def lax(arrays, d_model, pad_id):
        if arrays["acts"].shape[1] != d_model:
            raise ValueError("width")

    with pytest.raises(CheckFailed, match="same number of rows|padding|NaN|positions"):
        check_validate_store(lax)


def test_check_l1_loss_hints():
    from helpers.exercises.common import CheckFailed
    from helpers.exercises.sae_training import check_l1_loss

    def right(x, x_hat, f, W_dec, lam):
        return (x - x_hat).pow(2).sum(-1).mean() + lam * (f * W_dec.norm(dim=1)).sum(-1).mean()

    def no_norm(x, x_hat, f, W_dec, lam):
        return (x - x_hat).pow(2).sum(-1).mean() + lam * f.sum(-1).mean()

    def dim_mean(x, x_hat, f, W_dec, lam):
        return (x - x_hat).pow(2).mean() + lam * (f * W_dec.norm(dim=1)).sum(-1).mean()

    check_l1_loss(right)
    with pytest.raises(CheckFailed, match="forgot the decoder norm"):
        check_l1_loss(no_norm)
    with pytest.raises(CheckFailed, match="sum vs mean"):
        check_l1_loss(dim_mean)


def test_check_diagnosis_against_hashes_only():
    import pandas as pd

    from helpers.exercises.common import CheckFailed
    from helpers.exercises.sae_training import check_diagnosis
    from helpers.sae.bad_runs import BadRuns, answer_hash

    truth = {"A": "width 1x", "B": "lambda too low", "C": "learning rate too high"}
    runs = BadRuns(
        table=pd.DataFrame(),
        latents={},
        salt="s4lt",
        key={k: answer_hash("s4lt", k, v) for k, v in truth.items()},
    )
    assert not any(v in str(runs.key) for v in truth.values())  # the answer is not readable from the runs
    check_diagnosis(dict(truth), runs)
    with pytest.raises(CheckFailed, match="run A is not 'lambda too low'"):
        check_diagnosis({"A": "lambda too low", "B": "width 1x", "C": "learning rate too high"}, runs)
    with pytest.raises(CheckFailed, match="not diagnoses"):
        check_diagnosis({"A": "bad", "B": "lambda too low", "C": "width 1x"}, runs)
    with pytest.raises(CheckFailed, match="not diagnoses"):
        check_diagnosis(runs.key, runs)  # passing the key back is not an answer


def test_check_select_top_and_logit_weights():
    from helpers.exercises.common import CheckFailed
    from helpers.exercises.manual_features import check_logit_weights, check_select_top

    def select_top(values, rows, doc_ids, n, radius):
        chosen = []
        for j in np.argsort(-values, kind="stable"):
            if not any(
                doc_ids[rows[c]] == doc_ids[rows[j]] and abs(int(rows[c]) - int(rows[j])) <= 2 * radius
                for c in chosen
            ):
                chosen.append(int(j))
            if len(chosen) == n:
                break
        return chosen

    check_select_top(select_top)

    def overlapping(values, rows, doc_ids, n, radius):
        return [int(j) for j in np.argsort(-values)[:n]]

    with pytest.raises(CheckFailed, match="overlap"):
        check_select_top(overlapping)
    check_logit_weights(lambda W_enc, W_dec, W_U, i: W_dec[i] @ W_U.T)
    with pytest.raises(CheckFailed, match="used the encoder"):
        check_logit_weights(lambda W_enc, W_dec, W_U, i: W_enc[:, i] @ W_U.T)
    with pytest.raises(CheckFailed, match="forgot the unembedding"):
        check_logit_weights(lambda W_enc, W_dec, W_U, i: W_dec[i])


def test_check_lift_and_purity():
    import pandas as pd

    from helpers.exercises.clustering import check_lift_ranking, check_purity
    from helpers.exercises.common import CheckFailed

    def lift_ranking(X, labels, c, n):
        inside, sd = labels == c, X.std(0)
        lift = np.where(sd > 0, (X[inside].mean(0) - X[~inside].mean(0)) / np.where(sd > 0, sd, 1), 0.0)
        return np.argsort(-lift, kind="stable")[:n]

    def purity(labels, themes):
        return float(pd.crosstab(labels, themes).max(axis=1).sum() / len(labels))

    check_lift_ranking(lift_ranking)
    check_purity(purity)
    with pytest.raises(CheckFailed, match="raw in-cluster mean"):
        check_lift_ranking(lambda X, labels, c, n: np.argsort(-X[labels == c].mean(0), kind="stable")[:n])
    with pytest.raises(CheckFailed, match="rows and columns swapped"):
        check_purity(lambda labels, themes: purity(themes, labels))
