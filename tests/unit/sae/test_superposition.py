import numpy as np
import pytest
import torch

from helpers.sae.superposition import (
    Recovery,
    importance,
    match_features,
    recover_features,
    sample_hidden,
    toy_gradients,
    toy_loss,
    train_toy,
)


def test_gradients_match_autograd():
    rng = np.random.default_rng(0)
    W = rng.normal(size=(3, 2, 5)).astype(np.float64)
    b = rng.normal(size=(3, 1, 5)) * 0.1
    x = rng.random((3, 64, 5)) * (rng.random((3, 64, 5)) > 0.5)
    imp = importance(5, 0.8).astype(np.float64)
    gW, gb = toy_gradients(W, b, x, imp)
    Wt, bt = torch.tensor(W, requires_grad=True), torch.tensor(b, requires_grad=True)
    xt = torch.tensor(x)
    x_hat = torch.relu(xt @ Wt.transpose(1, 2) @ Wt + bt)
    sum(toy_loss(xt[i], x_hat[i], torch.tensor(imp)) for i in range(3)).backward()
    np.testing.assert_allclose(gW, Wt.grad.numpy(), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(gb, bt.grad.numpy(), rtol=1e-6, atol=1e-9)


def test_toy_loss_on_numpy_and_torch():
    x, x_hat, imp = np.ones((4, 3)), np.zeros((4, 3)), np.array([1.0, 0.5, 0.25])
    assert float(toy_loss(x, x_hat, imp)) == pytest.approx(1.75)
    assert float(toy_loss(torch.tensor(x), torch.tensor(x_hat), torch.tensor(imp))) == pytest.approx(1.75)


def test_dense_features_keep_the_two_most_important_orthogonal():
    toy = train_toy(sparsity=0.0, seed=0)
    assert toy.represented().tolist() == [True, True, False, False, False]
    w0, w1 = toy.W[:, 0], toy.W[:, 1]
    assert abs(w0 @ w1) / (np.linalg.norm(w0) * np.linalg.norm(w1)) < 0.05
    assert np.allclose(toy.norms[:2], 1.0, atol=0.05)
    np.testing.assert_allclose(sorted(toy.neighbour_angles()), [90, 270], atol=3)


def test_sparse_features_make_a_pentagon():
    toy = train_toy(sparsity=0.95, seed=0)
    assert toy.represented().all()
    np.testing.assert_allclose(toy.neighbour_angles(), 72, atol=6)
    assert toy.loss < train_toy(sparsity=0.95, seed=0, restarts=1, steps=50).loss
    assert "5 of 5 features represented" in toy.summary()


def test_training_is_deterministic_and_read_only():
    a, b = train_toy(sparsity=0.5, steps=30, seed=3), train_toy(sparsity=0.5, steps=30, seed=3)
    assert np.array_equal(a.W, b.W) and a.loss == b.loss
    assert a.W.shape == (2, 5) and a.b.shape == (5,)
    with pytest.raises(ValueError):
        a.W[0, 0] = 1.0


def test_sample_hidden_is_w_times_x():
    toy = train_toy(n=6, m=3, sparsity=0.8, steps=20)
    h, x = sample_hidden(toy, 500, seed=1)
    assert h.shape == (500, 3) and x.shape == (500, 6) and h.dtype == np.float32
    np.testing.assert_allclose(h, x @ toy.W.T, rtol=1e-5, atol=1e-6)
    assert 0.7 < (x == 0).mean() < 0.9


def test_match_features_finds_permuted_rows_and_ignores_opposite_ones():
    W = np.array([[1.0, 0.0, 1.0], [0.0, 2.0, 1.0]])
    W_dec = np.array([[0.0, -1.0], [0.0, 3.0], [5.0, 0.0], [1.0, 1.0]])
    cos, idx = match_features(W, W_dec)
    np.testing.assert_allclose(cos, 1.0)
    assert idx.tolist() == [2, 1, 3]


def test_sae_recovers_the_pentagon():
    toy = train_toy(sparsity=0.9, seed=0)
    sae, rec = recover_features(toy, n_samples=8192, steps=100, seed=0)
    assert isinstance(rec, Recovery) and rec.directions.shape == (16, 2)
    assert rec.cosines.min() > 0.9 and rec.worst() > 0.9
    assert len(set(rec.latents.tolist())) == 5  # one latent per feature
    assert rec.fvu < 0.2
    assert rec.firing.shape == (16,) and rec.firing[rec.latents].min() > 0.01  # matched latents fire
    assert rec.firing.sum() <= 1.0 + 1e-6 and rec.dead() == int((rec.firing == 0).sum())  # k = 1


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"sparsity": 1.0}, "sparsity"),
        ({"sparsity": -0.1}, "sparsity"),
        ({"decay": 0.0}, "decay"),
        ({"decay": float("nan")}, "decay"),
        ({"n": 0}, "n "),
        ({"m": 1.5}, "m "),
        ({"steps": True}, "steps"),
        ({"lr": -1.0}, "lr"),
        ({"restarts": 0}, "restarts"),
    ],
)
def test_bad_arguments_are_refused_in_one_line(kwargs, match):
    with pytest.raises(ValueError, match=match):
        train_toy(**{"steps": 5, **kwargs})


def test_other_input_errors():
    toy = train_toy(n=4, m=3, steps=5)
    with pytest.raises(ValueError, match="2-D"):
        toy.neighbour_angles()
    with pytest.raises(ValueError, match="n_samples"):
        sample_hidden(toy, 0)
    with pytest.raises(ValueError, match="dimensions"):
        match_features(toy.W, np.ones((8, 2)))


def test_recovering_features_of_a_toy_whose_vectors_are_all_zero_is_one_line():
    """At sparsity 0.99999 every sampled hidden vector was 0: the SAE came out NaN, without a word."""
    toy = train_toy(n=5, m=2, sparsity=0.99999, steps=20)
    with pytest.raises(ValueError, match=r"only 0 of the 16,384 hidden vectors .* lower the sparsity"):
        recover_features(toy, steps=10)


def test_whole_floats_count_as_whole_numbers():
    """The shared guard (helpers.validate.as_count) replaced a local one that refused m = 2.0."""
    a, b = train_toy(n=5, m=2.0, steps=20.0, seed=1), train_toy(n=5, m=2, steps=20, seed=1)
    np.testing.assert_array_equal(a.W, b.W)
    assert a.m == 2 and isinstance(a.seed, int)
