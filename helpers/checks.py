"""Graded checks for the notebooks' exercises.

Each ``check_*`` runs the student's function on fixed synthetic inputs (the same in every
profile), compares it with the reference, and either raises :class:`CheckFailed` with a hint
naming the likely mistake, or prints one deterministic line.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from helpers import layer_scan


class CheckFailed(AssertionError):
    """A graded check found a wrong answer; the message says what is likely wrong."""


def _passed(name: str, detail: str) -> None:
    print(f"PASSED {name}: {detail}")


def _call(fn: Callable, *args):
    try:
        return fn(*args)
    except NotImplementedError as err:
        raise CheckFailed("not answered yet: replace `raise NotImplementedError()` with your code") from err


def _close(a, b, rtol: float = 1e-4) -> bool:
    try:
        return bool(np.allclose(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64), rtol=rtol, atol=1e-8))
    except (TypeError, ValueError):
        return False


def _sink_case(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Tokens of 3 documents; the first token of each is 8x larger, as in a real model."""
    rng = np.random.default_rng(seed)
    lengths = [4, 6, 5]
    positions = np.concatenate([np.arange(n) for n in lengths])
    x = rng.normal(size=(len(positions), 16))
    x[positions == 0] *= 8.0
    return x, positions


def check_sink_ratio(fn: Callable[[np.ndarray, np.ndarray], float]) -> None:
    """Exercise: mean norm of first tokens / mean norm of the other tokens."""
    for seed in (0, 1, 2):
        x, pos = _sink_case(seed)
        want = layer_scan.sink_ratio(x, pos)
        got = _call(fn, x, pos)
        if _close(got, want):
            continue
        norms = np.linalg.norm(x, axis=1)
        first = pos == 0
        hints = [
            (norms[first].mean() / norms.mean(), "the denominator must leave the first tokens out (positions > 0), not average over all tokens"),
            (norms[~first].mean() / norms[first].mean(), "the ratio is upside down: first-token norm divided by the others"),
            ((x[first] ** 2).sum(1).mean() / (x[~first] ** 2).sum(1).mean(), "that is a ratio of squared norms; take the square root per token (np.linalg.norm(x, axis=-1))"),
            (np.linalg.norm(x[first], axis=0).mean() / np.linalg.norm(x[~first], axis=0).mean(), "the norm was taken over tokens (axis 0); take it over dimensions (axis=-1), one norm per token"),
            (np.abs(x[first]).mean() / np.abs(x[~first]).mean(), "mean |value| is not a norm; take each token's L2 norm first"),
        ]
        for value, hint in hints:
            if _close(got, value):
                raise CheckFailed(hint)
        raise CheckFailed(f"sink_ratio gave {float(np.asarray(got, dtype=float)):.4f}, expected {want:.4f} on a synthetic case; compute each token's L2 norm, then mean over position 0 / mean over the rest")
    _passed("sink_ratio", "matches the reference on 3 synthetic cases")


def check_participation_ratio(fn: Callable[[np.ndarray], float]) -> None:
    """Exercise: (sum of covariance eigenvalues)^2 / sum of squared eigenvalues."""
    rng = np.random.default_rng(0)
    scales = np.array([5.0, 3.0, 2.0, 1.0, 0.5, 0.5, 0.2, 0.1])
    cases = [
        rng.normal(size=(200, 8)) * scales + 4.0,  # offset: catches a forgotten centring
        rng.normal(size=(50, 8)) @ rng.normal(size=(8, 8)) - 2.0,
        np.repeat(rng.normal(size=(40, 1)), 6, axis=1) + 0.01 * rng.normal(size=(40, 6)) + 1.0,
    ]
    for x in cases:
        want = layer_scan.participation_ratio(x)
        got = _call(fn, x)
        if _close(got, want, rtol=1e-3):
            continue
        xc = x - x.mean(0)
        lam = np.linalg.eigvalsh(xc.T @ xc / (len(x) - 1))
        raw = np.linalg.eigvalsh(x.T @ x / len(x))
        sv = np.linalg.svd(xc, compute_uv=False)
        hints = [
            (raw.sum() ** 2 / (raw**2).sum(), "centre the data first (x - x.mean(0)): without it the mean direction dominates the spectrum"),
            (1.0 / want, "the ratio is upside down: (sum λ)² / sum λ², which lies between 1 and d"),
            (sv.sum() ** 2 / (sv**2).sum(), "those are singular values of the data; the covariance eigenvalues are their squares / (n - 1)"),
            (lam.sum() / (lam**2).sum(), "square the sum in the numerator: (sum λ)², not sum λ"),
            (np.sum(lam) ** 2 / np.sum(lam) ** 2, "the denominator is the sum of squared eigenvalues, not the squared sum"),
        ]
        for value, hint in hints:
            if _close(got, value, rtol=1e-3):
                raise CheckFailed(hint)
        raise CheckFailed(f"participation_ratio gave {float(np.asarray(got, dtype=float)):.4f}, expected {want:.4f}; centre x, take the covariance's eigenvalues λ, return (sum λ)² / sum λ²")
    _passed("participation_ratio", "matches the reference on 3 synthetic cases, centred and scale-free")


def check_top_words(fn: Callable[[list[str], int], list[tuple[str, int]]]) -> None:
    """Exercise: the k most frequent words, lower-cased, stop-words removed."""
    from helpers.text_stats import STOP_WORDS, top_words

    texts = [
        "The Solar panels on the roof make power; solar power is cheap.",
        "Power to the people: the people vote, and the vote counts.",
        "Cheap solar, cheap wind. Wind and solar are the future of power!",
    ]
    want = top_words(texts, 4)
    got = _call(fn, texts, 4)
    try:
        got_list = [(str(w), int(c)) for w, c in got]
    except (TypeError, ValueError) as err:
        raise CheckFailed("return a list of (word, count) pairs, most frequent first, e.g. [('solar', 4), ...]") from err
    if got_list == want:
        _passed("top_words", f"top 4 = {want}")
        return
    words_got = [w for w, _ in got_list]
    if any(w in STOP_WORDS for w in words_got):
        raise CheckFailed(f"{[w for w in words_got if w in STOP_WORDS]} are stop-words; drop every word in STOP_WORDS")
    if any(w != w.lower() for w in words_got) or any(not w.isalpha() for w in words_got):
        raise CheckFailed("lower-case the text and keep letters only, so 'Solar' and 'solar;' both count as 'solar' (use helpers.text_stats.words)")
    if sorted(got_list, key=lambda kv: -kv[1]) != got_list:
        raise CheckFailed("sort by count, most frequent first")
    if len(got_list) != 4:
        raise CheckFailed(f"asked for k=4 words, got {len(got_list)}")
    raise CheckFailed(f"expected {want}, got {got_list}; ties are broken alphabetically")


def _store_case(kind: str) -> dict:
    rng = np.random.default_rng(0)
    lengths = [5, 7, 4]
    doc = np.repeat(np.arange(3), lengths).astype(np.int32)
    pos = np.concatenate([np.arange(1, n + 1) for n in lengths]).astype(np.int32)
    tok = rng.integers(3, 100, size=len(doc)).astype(np.int32)
    acts = rng.normal(size=(len(doc), 8)).astype(np.float32)
    if kind == "pad":
        tok[6] = 2
    elif kind == "shape":
        acts = acts[:-1]
    elif kind == "width":
        acts = rng.normal(size=(len(doc), 6)).astype(np.float32)
    elif kind == "nan":
        acts[3, 2] = np.nan
    elif kind == "gap":
        pos[8] += 3
    return {"acts": acts, "token_ids": tok, "doc_ids": doc, "positions": pos}


def check_validate_store(fn: Callable[[dict, int, int], None]) -> None:
    """Exercise: ``validate_store(arrays, d_model, pad_id)`` raises ``ValueError`` on a broken
    store and returns quietly on a good one."""
    mistakes = {
        "shape": "acts and token_ids must have the same number of rows",
        "width": "acts must be [n_tokens, d_model]; check acts.shape[1] == d_model",
        "pad": "a padding token (pad_id) leaked into token_ids; check (token_ids == pad_id).any()",
        "nan": "acts holds a NaN; check np.isfinite(acts).all()",
        "gap": "positions must count up by 1 inside each document; a gap means tokens went missing",
    }
    try:
        fn(_store_case("good"), 8, 2)
    except NotImplementedError as err:
        raise CheckFailed("not answered yet: replace `raise NotImplementedError()` with your code") from err
    except ValueError as err:
        raise CheckFailed(f"a valid store was rejected ({err}); positions start at 1 because the first token is dropped") from err
    for kind, hint in mistakes.items():
        try:
            fn(_store_case(kind), 8, 2)
        except ValueError:
            continue
        except Exception as err:  # noqa: BLE001 - the hint is the point
            raise CheckFailed(f"raise ValueError (not {type(err).__name__}) when {hint.split(';')[0]}") from err
        raise CheckFailed(f"a broken store passed: {hint}")
    _passed("validate_store", f"accepts a valid store and rejects {len(mistakes)} broken ones")


def _l1_case(seed: int):
    import torch

    g = torch.Generator().manual_seed(seed)
    x = torch.randn(6, 5, generator=g)
    x_hat = x + 0.3 * torch.randn(6, 5, generator=g)
    f = torch.relu(torch.randn(6, 8, generator=g))
    W_dec = torch.randn(8, 5, generator=g) * torch.linspace(0.2, 3.0, 8).unsqueeze(1)
    return x, x_hat, f, W_dec


def check_l1_loss(fn: Callable) -> None:
    """Exercise: mean_b ||x - x̂||² + λ · mean_b Σ_i f_i ||W_dec,i||."""
    lam = 0.7
    for seed in (0, 1):
        x, x_hat, f, W_dec = _l1_case(seed)
        norms = W_dec.norm(dim=1)
        mse = (x - x_hat).pow(2).sum(-1).mean()
        want = float(mse + lam * (f * norms).sum(-1).mean())
        got = _call(fn, x, x_hat, f, W_dec, lam)
        got = float(got)
        if _close(got, want):
            continue
        hints = [
            (float(mse + lam * f.sum(-1).mean()), "forgot the decoder norm: weight each f_i by ||W_dec,i|| (W_dec.norm(dim=1)), or the SAE can shrink f and grow W_dec to dodge the penalty"),
            (float((x - x_hat).pow(2).mean() + lam * (f * norms).sum(-1).mean()), "sum vs mean: sum the squared error over dimensions, then average over tokens (.sum(-1).mean())"),
            (float((x - x_hat).pow(2).sum() + lam * (f * norms).sum()), "sum vs mean: average over the tokens of the batch, do not sum them"),
            (float(mse + lam * (f * norms.pow(2)).sum(-1).mean()), "use the norm ||W_dec,i||, not its square"),
            (float((x - x_hat).norm(dim=-1).mean() + lam * (f * norms).sum(-1).mean()), "the reconstruction term is the squared norm ||x - x̂||², not the norm"),
        ]
        for value, hint in hints:
            if _close(got, value):
                raise CheckFailed(hint)
        raise CheckFailed(f"loss gave {got:.4f}, expected {want:.4f}; mean over tokens of ||x - x̂||² plus λ times the mean over tokens of Σ_i f_i ||W_dec,i||")
    _passed("l1_loss", "matches the reference on 2 cases")


DIAGNOSES = ("lambda too low", "learning rate too high", "width 1x")


def check_diagnosis(answer: dict[str, str], truth: dict[str, str]) -> None:
    """Exercise: name the mistake behind each mis-set run (labels -> one of ``DIAGNOSES``)."""
    if not isinstance(answer, dict) or set(answer) != set(truth):
        raise CheckFailed(f"answer with a dict over the runs {sorted(truth)}, e.g. {{'A': 'width 1x', ...}}")
    bad = [v for v in answer.values() if v not in DIAGNOSES]
    if bad:
        raise CheckFailed(f"{bad} are not diagnoses; use one of {list(DIAGNOSES)}")
    wrong = sorted(k for k in truth if answer[k] != truth[k])
    if wrong:
        tips = {
            "lambda too low": "λ too low shows as a huge L0 and many dense latents: nothing pushes activations to zero",
            "learning rate too high": "a learning rate too high kills latents (many dead) and leaves the reconstruction poor",
            "width 1x": "width 1x has few latents (d_sae = d_in): almost none dead, but each token needs many of them",
        }
        raise CheckFailed(f"run(s) {', '.join(wrong)} misread; " + tips[truth[wrong[0]]])
    _passed("diagnosis", f"all {len(truth)} runs diagnosed")


def _top_case():
    rng = np.random.default_rng(0)
    doc_ids = np.repeat(np.arange(4), 12)
    values = rng.uniform(0.1, 1.0, size=24)
    rows = np.sort(rng.choice(len(doc_ids), 24, replace=False))
    # two strong activations next to each other in one document: only one may be picked
    values[[5, 6]] = [5.0, 4.9]
    return values, rows, doc_ids


def check_select_top(fn: Callable) -> None:
    """Exercise: the n largest activations, no two within 2 x radius rows of one document."""
    from helpers.features import select_top

    values, rows, doc_ids = _top_case()
    for n, radius in ((5, 2), (8, 1)):
        want = select_top(values, rows, doc_ids, n, radius)
        got = _call(fn, values, rows, doc_ids, n, radius)
        try:
            got = [int(g) for g in got]
        except TypeError as err:
            raise CheckFailed("return a list of indices into `rows` (ints), best first") from err
        if got == want:
            continue
        if len(got) != len(want):
            raise CheckFailed(f"asked for n={n} examples, got {len(got)}")
        for a in range(len(got)):
            for b in range(a):
                ra, rb = rows[got[a]], rows[got[b]]
                if doc_ids[ra] == doc_ids[rb] and abs(int(ra) - int(rb)) <= 2 * radius:
                    raise CheckFailed(f"examples {got[b]} and {got[a]} overlap (rows {rb} and {ra} of one document): skip a candidate within 2 x radius of a chosen one in the same document")
        if sorted(got, key=lambda j: -values[j]) != got:
            raise CheckFailed("order the examples by activation, largest first")
        raise CheckFailed(f"expected indices {want}, got {got}: walk the activations from the largest down, greedily")
    _passed("select_top", "greedy, non-overlapping, best first on 2 cases")


def check_logit_weights(fn: Callable) -> None:
    """Exercise: a feature's logit weights = its decoder row times the unembedding, W_dec,i · W_Uᵀ."""
    import torch

    g = torch.Generator().manual_seed(0)
    W_enc, W_dec, W_U = torch.randn(6, 10, generator=g), torch.randn(10, 6, generator=g), torch.randn(15, 6, generator=g)
    for i in (0, 7):
        want = (W_dec[i] @ W_U.T).numpy()
        got = np.asarray(_call(fn, W_enc, W_dec, W_U, i), dtype=np.float64)
        if got.shape == want.shape and _close(got, want):
            continue
        if got.shape == (6,):
            raise CheckFailed("forgot the unembedding: that is the decoder direction itself; multiply it by W_U.T to get one weight per token")
        if got.shape == want.shape and _close(got, (W_enc[:, i] @ W_U.T).numpy()):
            raise CheckFailed("used the encoder instead of the decoder: the direction a feature writes into the residual stream is its decoder row W_dec[i]")
        raise CheckFailed(f"expected a vector of {want.shape[0]} token weights equal to W_dec[i] @ W_U.T")
    _passed("logit_weights", "decoder row through the unembedding, 2 features")


def check_lift_ranking(fn: Callable) -> None:
    """Exercise: features ranked by (in-cluster mean - out-of-cluster mean) / overall std."""
    from helpers.clustering import lift_ranking, mean_ranking

    rng = np.random.default_rng(0)
    X = rng.exponential(0.2, size=(60, 8))
    X[:, 0] += 5.0  # a dense feature, large everywhere
    labels = np.repeat([0, 1, 2], 20)
    X[labels == 1, 3] += 1.0
    X[labels == 1, 6] += 0.2 + rng.exponential(0.01, 20)  # small but perfectly distinctive
    for c in (1, 2):
        want = lift_ranking(X, labels, c, 3).tolist()
        got = [int(g) for g in _call(fn, X, labels, c, 3)]
        if got == want:
            continue
        if got == mean_ranking(X, labels, c, 3).tolist():
            raise CheckFailed("that is the raw in-cluster mean, which puts the dense feature 0 on top of every cluster; subtract the out-of-cluster mean")
        inside = labels == c
        unscaled = np.argsort(-(X[inside].mean(0) - X[~inside].mean(0)), kind="stable")[:3].tolist()
        if got == unscaled:
            raise CheckFailed("divide the difference by each feature's standard deviation, so small but consistent features count")
        raise CheckFailed(f"expected features {want} for cluster {c}, got {got}; largest (in - out) / std first")
    _passed("lift_ranking", "distinctive features, not dense ones, on 2 clusters")


def check_purity(fn: Callable) -> None:
    """Exercise: purity = share of documents whose cluster's majority theme is their own."""
    from helpers.clustering import purity

    labels = np.array([0, 0, 0, 1, 1, 1, 1, 2, 2, 2])
    themes = np.array(list("aabbbcbaac"))
    want = purity(labels, themes)
    got = _call(fn, labels, themes)
    if _close(got, want):
        _passed("purity", f"{want:.2f} on the hand case")
        return
    if _close(got, 1.0):
        raise CheckFailed("count documents, not clusters: sum each cluster's majority count and divide by the number of documents")
    if _close(got, _purity_by_theme(labels, themes)):
        raise CheckFailed("that is the purity of themes over clusters (rows and columns swapped): take each *cluster's* majority theme")
    raise CheckFailed(f"purity gave {float(got):.3f}, expected {want:.3f} = (2 + 3 + 2) / 10 on the hand case")


def _purity_by_theme(labels, themes) -> float:
    import pandas as pd

    t = pd.crosstab(np.asarray(themes), np.asarray(labels))
    return float(t.max(axis=1).sum() / t.to_numpy().sum())


def check_clamp_edit(fn: Callable) -> None:
    """Exercise: h + (c - f_i(h)) · W_dec,i in raw space, for an SAE that still scales its inputs."""
    import torch

    from helpers.sae import SAEConfig, make_sae
    from helpers.steering import clamp_edit

    sae = make_sae(SAEConfig(architecture="l1", d_in=6, expansion=2, seed=3))
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        sae.W_enc.copy_(torch.randn(6, 12, generator=g)); sae.b_enc.fill_(0.5); sae.b_dec.copy_(torch.randn(6, generator=g))
        sae.scale.fill_(0.5)
    h = torch.randn(4, 6, generator=g)
    i, c = 2, 3.0
    want = clamp_edit(h, sae, [i], [c])
    with torch.no_grad():
        got = torch.as_tensor(_call(fn, h, sae, i, c), dtype=torch.float32)
        if got.shape == want.shape and torch.allclose(got, want, atol=1e-5):
            _passed("clamp_edit", "feature set to c, reconstruction error kept")
            return
        f = sae.encode(h)
        f2 = f.clone(); f2[:, i] = c
        wrong = {
            "forgot to keep the error term: returning the SAE's reconstruction throws away everything the SAE misses; add (c - f_i) · W_dec,i to h instead": sae.decode(f2),
            "clamped in the scaled space but added in the raw space: the SAE multiplies inputs by sae.scale, so its decoder row in raw space is W_dec[i] / sae.scale": h + (c - f[:, i:i + 1]) * sae.W_dec[i],
            "forgot to subtract the feature's current value: add (c - f_i) · W_dec,i, not c · W_dec,i": h + c * sae.W_dec[i] / sae.scale,
        }
    for hint, value in wrong.items():
        if got.shape == value.shape and torch.allclose(got, value, atol=1e-5):
            raise CheckFailed(hint)
    raise CheckFailed("expected h + (c - f_i(h)) * W_dec[i] / sae.scale, with f = sae.encode(h)")
