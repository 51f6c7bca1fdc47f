"""FedSGD and FedAvg against the math they claim (McMahan et al. 2017, Algorithm 1)."""

from itertools import pairwise

import numpy as np
import pytest

from minifed.algorithms import FedAvg, FedSGD, aggregate, minibatches
from minifed.dataset import FederatedDataset
from minifed.models import MLP, LinearRegression, SoftmaxRegression
from minifed.simulation import client_rng, evaluate, run


def uneven_federation(rng, sizes=(3, 17, 40, 8), d=5, C=3, dtype=np.float64):
    """Clients of very different sizes, so that an unweighted average gives other numbers."""
    n = sum(sizes)
    X = rng.normal(size=(n, d))
    y = rng.integers(0, C, size=n)
    bounds = np.cumsum([0, *sizes])
    indices = [np.arange(a, b) for a, b in pairwise(bounds)]
    X_test, y_test = rng.normal(size=(20, d)), rng.integers(0, C, size=20)
    return FederatedDataset(X, y, indices, X_test, y_test, dtype=dtype)


@pytest.fixture
def fed():
    return uneven_federation(np.random.default_rng(0))


@pytest.fixture
def model():
    return SoftmaxRegression(5, 3, l2=0.01)


def test_aggregate_weights_by_sample_count():
    M = np.array([[1.0, 0.0], [4.0, 2.0], [10.0, -1.0]])
    n_S = np.array([1, 2, 7])
    expected = (1 * M[0] + 2 * M[1] + 7 * M[2]) / 10
    np.testing.assert_allclose(aggregate(M, n_S), expected)
    assert not np.allclose(aggregate(M, n_S), M.mean(axis=0))


def test_aggregate_keeps_float32():
    M = np.ones((3, 4), dtype=np.float32)
    assert aggregate(M, [1, 2, 3]).dtype == np.float32


@pytest.mark.parametrize("n_S", [[1, 2], [0, 1, 2], [-1, 1, 1]])
def test_aggregate_rejects_bad_counts(n_S):
    with pytest.raises(ValueError, match="n_S"):
        aggregate(np.ones((3, 2)), n_S)


def test_minibatches_cover_every_sample_once_per_epoch():
    batches = list(minibatches(23, 5, np.random.default_rng(1)))
    assert [len(b) for b in batches] == [5, 5, 5, 5, 3]
    np.testing.assert_array_equal(np.sort(np.concatenate(batches)), np.arange(23))
    assert list(minibatches(23, None, np.random.default_rng(1))) == [slice(None)]


def test_fedsgd_full_participation_is_centralized_gradient_descent(fed, model):
    """(a) With C = 1, one FedSGD round is one full-batch GD step on the union of the data."""
    w0 = model.init(np.random.default_rng(1), dtype=np.float64)
    w1, _ = run(FedSGD(model, lr=0.3), fed, rounds=1, fraction=1.0, w0=w0)
    expected = w0 - 0.3 * model.grad(w0, fed.X, fed.y)
    np.testing.assert_allclose(w1, expected, rtol=1e-12, atol=1e-14)


def test_fedsgd_several_rounds_match_gradient_descent(fed, model):
    w = model.init(np.random.default_rng(2), dtype=np.float64)
    w_T, _ = run(FedSGD(model, lr=0.5), fed, rounds=5, fraction=1.0, w0=w)
    for _ in range(5):
        w = w - 0.5 * model.grad(w, fed.X, fed.y)
    np.testing.assert_allclose(w_T, w, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("fraction", [1.0, 0.5])
def test_fedavg_one_epoch_full_batch_is_fedsgd(fed, model, fraction):
    """(b) FedAvg with E = 1, B = None averages w - eta g_k, which is FedSGD's step."""
    w_sgd, h_sgd = run(FedSGD(model, lr=0.2), fed, rounds=6, fraction=fraction, seed=3)
    w_avg, h_avg = run(
        FedAvg(model, lr=0.2, epochs=1, batch_size=None), fed, 6, fraction=fraction, seed=3
    )
    np.testing.assert_allclose(w_avg, w_sgd, rtol=1e-10, atol=1e-13)
    assert [r["clients"] for r in h_avg.rounds] == [r["clients"] for r in h_sgd.rounds]


def test_objective_is_weighted_sum_of_client_objectives(fed, model):
    """(c) F(w) = sum_k (n_k/n) F_k(w) equals the loss on the union of the clients' data."""
    w = np.random.default_rng(4).normal(size=model.num_params)
    F = sum(fed.p[k] * model.loss(w, *fed.client(k)) for k in range(fed.K))
    assert evaluate(model, w, fed)["train_loss"] == pytest.approx(F, rel=1e-12)
    assert model.loss(w, fed.X, fed.y) == pytest.approx(F, rel=1e-12)
    unweighted = np.mean([model.loss(w, *fed.client(k)) for k in range(fed.K)])
    assert abs(unweighted - F) > 1e-6  # the sizes differ, so the weights matter


def test_fedavg_single_client_is_minibatch_sgd():
    """(d) One client: FedAvg is plain minibatch SGD with the client's batch order."""
    rng = np.random.default_rng(5)
    X, y = rng.normal(size=(23, 4)), rng.integers(0, 3, size=23)
    data = FederatedDataset(X, y, [np.arange(23)], dtype=np.float64)
    model = MLP([4, 6, 3], activation="tanh")
    w0 = model.init(np.random.default_rng(6), dtype=np.float64)
    E, B, eta, seed = 3, 5, 0.1, 7
    w_T, _ = run(FedAvg(model, eta, E, B), data, rounds=1, fraction=1.0, w0=w0, seed=seed)

    w, order_rng = w0.copy(), client_rng(seed, 1, 0)  # round 1, client 0
    for _ in range(E):
        order = order_rng.permutation(23)
        for start in range(0, 23, B):
            b = order[start : start + B]
            w = w - eta * model.grad(w, X[b], y[b])
    np.testing.assert_allclose(w_T, w, rtol=1e-12, atol=1e-14)


def test_fedavg_client_update_does_not_touch_global_model(fed, model):
    w = model.init(np.random.default_rng(0), dtype=np.float64)
    before = w.copy()
    FedAvg(model, 0.1, 2, 4).client_update(w, *fed.client(1), np.random.default_rng(0))
    np.testing.assert_array_equal(w, before)


def test_linear_regression_converges_to_least_squares():
    rng = np.random.default_rng(8)
    X = rng.normal(size=(200, 3))
    y = X @ np.array([1.0, -2.0, 0.5]) + 0.3 + 0.01 * rng.normal(size=200)
    data = FederatedDataset(X, y, np.array_split(rng.permutation(200), 5), dtype=np.float64)
    model = LinearRegression(3)
    w, _ = run(FedSGD(model, lr=0.5), data, rounds=300, fraction=1.0)
    A = np.c_[X, np.ones(200)]
    w_ls = np.linalg.lstsq(A, y, rcond=None)[0]
    np.testing.assert_allclose(model.predict(w, X), A @ w_ls, atol=1e-6)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"lr": 0.0}, "lr"),
        ({"lr": -1.0}, "lr"),
        ({"lr": float("nan")}, "lr"),
        ({"lr": 0.1, "epochs": 0}, "epochs"),
        ({"lr": 0.1, "epochs": 1.5}, "epochs"),
        ({"lr": 0.1, "batch_size": 0}, "batch_size"),
        ({"lr": 0.1, "batch_size": "10"}, "batch_size"),
    ],
)
def test_fedavg_rejects_bad_settings(model, kwargs, name):
    with pytest.raises((ValueError, TypeError), match=name):
        FedAvg(model, **kwargs)


def test_algorithm_rejects_non_model():
    with pytest.raises(TypeError, match="model"):
        FedSGD("softmax", lr=0.1)


def test_config_describes_the_algorithm(model):
    config = FedAvg(model, 0.05, 5, 10).config()
    assert config["algorithm"] == "fedavg"
    assert (config["lr"], config["epochs"], config["batch_size"]) == (0.05, 5, 10)
    assert "SoftmaxRegression" in config["model"]
