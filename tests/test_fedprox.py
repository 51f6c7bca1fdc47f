"""FedProx against the math it claims (Li et al. 2020, Eq. (2), Algorithm 2) and its stragglers."""

import json
from itertools import pairwise

import numpy as np
import pytest
from conftest import blobs_federation, drift_federation

from minifed.algorithms.fedavg import FedAvg
from minifed.algorithms.fedprox import FedProx
from minifed.models import MLP, LinearRegression
from minifed.simulation import run


def rng_of(t, k, seed=0):
    """A client generator of the loop's kind: one per (seed, t, k)."""
    return np.random.default_rng([seed, 2, t, k])


@pytest.fixture
def blobs64():
    """Client arrays of the blobs federation in float64, with an MLP and its float64 ``w``."""
    data = blobs_federation(K=4, n=120)
    clients = [tuple(np.asarray(a, dtype=np.float64) for a in data.client(k)) for k in range(4)]
    clients = [(X, y.astype(np.int64)) for X, y in clients]
    model = MLP([4, 8, 3])
    return model, model.init(np.random.default_rng(1), dtype=np.float64), clients


@pytest.fixture
def drift():
    """Heterogeneous least squares (conftest): ``(model, data, w_star)``."""
    data, w_star = drift_federation()
    return LinearRegression(2), data, w_star


# ---------------------------------------------------------------- mu = 0 is FedAvg


@pytest.mark.parametrize(("E", "B"), [(1, None), (3, None), (3, 7), (2, 1)])
def test_mu_zero_client_update_is_fedavg_bit_for_bit(blobs64, E, B):
    model, w, clients = blobs64
    prox, avg = FedProx(model, 0.1, E, B, mu=0.0), FedAvg(model, 0.1, E, B)
    for k, (X_k, y_k) in enumerate(clients):
        w_prox = prox.client_update(w, X_k, y_k, rng_of(5, k))
        np.testing.assert_array_equal(w_prox, avg.client_update(w, X_k, y_k, rng_of(5, k)))
    assert prox.up(w) == avg.up(w)
    if E > 1:  # the comparison can fail: with mu > 0 the numbers differ
        w_mu = FedProx(model, 0.1, E, B, mu=0.5).client_update(w, X_k, y_k, rng_of(5, k))
        assert not np.allclose(w_mu, w_prox)


def test_mu_zero_run_is_fedavg_bit_for_bit(blobs64):
    model, w0, _ = blobs64
    data = blobs_federation(K=6, n=120)
    w0 = w0.astype(np.float32)
    kw = dict(rounds=3, fraction=0.5, seed=4, w0=w0)
    w_prox, h_prox = run(FedProx(model, 0.1, 2, 8, mu=0.0), data, **kw)
    w_avg, h_avg = run(FedAvg(model, 0.1, 2, 8), data, **kw)
    np.testing.assert_array_equal(w_prox, w_avg)
    timeless = [
        [{k: v for k, v in r.items() if "seconds" not in k} for r in h.rounds]
        for h in (h_prox, h_avg)
    ]
    assert timeless[0] == timeless[1]  # same clients, bytes each way, losses, accuracies


# ---------------------------------------------------------------- the proximal term


def test_first_full_batch_step_has_a_zero_proximal_term(drift):
    """One step from ``w_k = w``: ``w - eta (grad F_k(w) + mu (w - w)) = w - eta grad F_k(w)``."""
    model, data, _ = drift
    X_k, y_k = data.client(2)
    w, eta = np.array([0.5, -1.0, 2.0]), 0.01
    w_k = FedProx(model, eta, 1, None, mu=5.0).client_update(w, X_k, y_k, rng_of(0, 2))
    np.testing.assert_allclose(w_k, w - eta * model.grad(w, X_k, y_k), rtol=1e-14)


def test_two_full_batch_steps_by_hand(drift):
    """Second step: ``w_2 = w_1 - eta (grad F_k(w_1) + mu (w_1 - w))`` with ``w_1 != w``."""
    model, data, _ = drift
    X_k, y_k = data.client(1)
    w, eta, mu = np.array([0.5, -1.0, 2.0]), 0.01, 5.0
    w_1 = w - eta * model.grad(w, X_k, y_k)
    w_2 = w_1 - eta * (model.grad(w_1, X_k, y_k) + mu * (w_1 - w))
    w_k = FedProx(model, eta, 2, None, mu=mu).client_update(w, X_k, y_k, rng_of(0, 1))
    np.testing.assert_allclose(w_k, w_2, rtol=1e-13, atol=1e-15)
    without_prox = w_1 - eta * model.grad(w_1, X_k, y_k)  # what FedAvg would give
    assert np.abs(w_2 - without_prox).max() > 1e-6 > np.abs(w_k - w_2).max()


def test_many_local_steps_reach_the_proximal_point(drift):
    """Run long enough, the client solves Eq. (2): ``argmin F_k(v) + (mu/2) ||v - w||^2``.

    For least squares ``grad F_k(v) = H v + grad F_k(0)``, so the minimiser solves
    ``(H + mu I) v = mu w - grad F_k(0)``; ``H`` is read off the gradient column by column.
    """
    model, data, _ = drift
    X_k, y_k = data.client(3)
    w, mu = np.array([0.5, -1.0, 2.0]), 2.0
    g_0 = model.grad(np.zeros(3), X_k, y_k)
    H = np.stack([model.grad(e, X_k, y_k) - g_0 for e in np.eye(3)], axis=1)  # (3, 3)
    v = np.linalg.solve(H + mu * np.eye(3), mu * w - g_0)
    w_k = FedProx(model, 0.01, 3000, None, mu=mu).client_update(w, X_k, y_k, rng_of(0, 3))
    np.testing.assert_allclose(w_k, v, rtol=1e-10)
    w_avg = FedAvg(model, 0.01, 3000, None).client_update(w, X_k, y_k, rng_of(0, 3))
    assert np.linalg.norm(w_avg - v) > 0.1  # FedAvg's client goes elsewhere (to F_k's minimum)


def test_larger_mu_keeps_w_k_closer_to_w(blobs64):
    model, w, clients = blobs64
    X_k, y_k = clients[0]
    mus = [0.0, 0.1, 0.3, 1.0, 3.0, 10.0]  # eta * mu <= 0.5: every run is a stable descent
    dist = [
        np.linalg.norm(
            FedProx(model, 0.05, 3, 10, mu=mu).client_update(w, X_k, y_k, rng_of(1, 0)) - w
        )
        for mu in mus
    ]
    assert all(a > b for a, b in pairwise(dist)), f"||w_k - w|| for mu={mus}: {dist}"
    assert dist[-1] < 0.5 * dist[0], f"||w_k - w|| for mu={mus}: {dist}"


def test_client_update_leaves_w_untouched(blobs64):
    model, w, clients = blobs64
    w_before = w.copy()
    FedProx(model, 0.1, 2, 5, mu=1.0, stragglers=0.5).client_update(w, *clients[0], rng_of(0, 0))
    np.testing.assert_array_equal(w, w_before)


# ---------------------------------------------------------------- stragglers


def straggler_runs(algorithm, w, X_k, y_k, draws=1200):
    """The messages of ``draws`` clients (one generator per ``(t, k)``), as arrays."""
    messages = [
        algorithm.client_update(w, X_k, y_k, rng_of(t, k))
        for t in range(draws // 40)
        for k in range(40)
    ]
    return np.array([m["epochs"] for m in messages]), np.stack([m["w_k"] for m in messages])


def test_straggler_fraction_and_epochs(drift):
    """About a fraction ``x`` straggles; a straggler's ``E_k`` is uniform on ``{1, ..., E-1}``."""
    model, data, _ = drift
    x, E, draws = 0.3, 5, 1200
    w = np.zeros(3)
    epochs, _ = straggler_runs(FedProx(model, 0.01, E, None, 1.0, x), w, *data.client(0), draws)
    straggled = epochs < E
    assert set(np.unique(epochs)) <= {1, 2, 3, 4, 5}
    sd = np.sqrt(x * (1 - x) / draws)  # Binomial(draws, x) / draws
    assert abs(straggled.mean() - x) < 4 * sd, f"fraction {straggled.mean()} vs {x}"
    counts = np.bincount(epochs[straggled], minlength=E)[1:]  # E_k = 1, ..., E-1
    expected = straggled.sum() / (E - 1)
    assert np.all(np.abs(counts - expected) < 4 * np.sqrt(expected)), counts


def test_same_devices_straggle_with_and_without_dropping(drift):
    model, data, _ = drift
    X_k, y_k = data.client(1)
    w, E = np.array([0.5, -1.0, 2.0]), 4
    keep = FedProx(model, 0.01, E, 8, mu=0.0, stragglers=0.5)
    drop = FedProx(model, 0.01, E, 8, mu=0.0, stragglers=0.5, drop_stragglers=True)
    E_keep, W_keep = straggler_runs(keep, w, X_k, y_k, draws=200)
    E_drop, W_drop = straggler_runs(drop, w, X_k, y_k, draws=200)
    np.testing.assert_array_equal(E_keep < E, E_drop == 0)
    assert set(np.unique(E_drop)) == {0, E} and 0.3 < (E_drop == 0).mean() < 0.7
    # non-stragglers draw the same minibatches in both modes; dropped ones send w, untrained
    np.testing.assert_array_equal(W_keep[E_keep == E], W_drop[E_drop == E])
    np.testing.assert_array_equal(
        W_drop[E_drop == 0], np.broadcast_to(w, W_drop[E_drop == 0].shape)
    )


def test_a_straggler_runs_exactly_its_epochs(drift):
    """With ``B = None`` a straggler reporting ``E_k`` equals a client told to run ``E_k``."""
    model, data, _ = drift
    X_k, y_k = data.client(2)
    w = np.array([0.5, -1.0, 2.0])
    algorithm = FedProx(model, 0.01, 6, None, mu=3.0, stragglers=0.6)
    E_k, W = straggler_runs(algorithm, w, X_k, y_k, draws=40)
    assert len(np.unique(E_k)) > 2
    for e in np.unique(E_k):
        plain = FedProx(model, 0.01, int(e), None, mu=3.0).client_update(w, X_k, y_k, None)
        np.testing.assert_array_equal(W[E_k == e], np.broadcast_to(plain, W[E_k == e].shape))


def test_message_matches_up(drift):
    model, data, _ = drift
    w = np.zeros(3, dtype=np.float32)
    X_k, y_k = (a.astype(np.float32) for a in data.client(0))
    plain = FedProx(model, 0.01, 2)
    assert list(plain.up(w)) == ["M"]
    assert isinstance(plain.client_update(w, X_k, y_k, rng_of(0, 0)), np.ndarray)
    for drop in (False, True):
        algorithm = FedProx(model, 0.01, 2, stragglers=0.5, drop_stragglers=drop)
        up = algorithm.up(w)
        assert up == {"w_k": ((3,), np.float32), "epochs": ((), np.int32)}
        for t in range(6):
            message = algorithm.client_update(w, X_k, y_k, rng_of(t, 0))
            assert set(message) == set(up)
            for field, (shape, dtype) in up.items():
                assert np.shape(message[field]) == shape and message[field].dtype == dtype


def test_server_drops_stragglers_by_hand():
    algorithm = FedProx(LinearRegression(1), 0.01, 5, stragglers=0.5, drop_stragglers=True)
    w = np.array([9.0, 9.0])
    W = np.array([[1.0, 0.0], [4.0, 2.0], [10.0, -1.0]])
    M = {"w_k": W, "epochs": np.array([5, 0, 5], dtype=np.int32)}
    n_S = np.array([1, 2, 3])
    w_next = algorithm.server_update(w, M, n_S)
    np.testing.assert_allclose(w_next, (1 * W[0] + 3 * W[2]) / 4)
    assert not np.allclose(w_next, (1 * W[0] + 2 * W[1] + 3 * W[2]) / 6)  # not all of them
    np.testing.assert_array_equal(W, [[1.0, 0.0], [4.0, 2.0], [10.0, -1.0]])  # inputs kept

    nobody = {"w_k": W, "epochs": np.zeros(3, dtype=np.int32)}
    w_same = algorithm.server_update(w, nobody, n_S)
    np.testing.assert_array_equal(w_same, w)
    assert w_same is not w

    kept = {"w_k": W, "epochs": np.array([5, 2, 1], dtype=np.int32)}  # partial work counts
    np.testing.assert_allclose(algorithm.server_update(w, kept, n_S), (W * n_S[:, None]).sum(0) / 6)


def test_server_without_stragglers_is_fedavgs():
    W, n_S, w = np.array([[1.0, 0.0], [4.0, 2.0]]), np.array([1, 3]), np.zeros(2)
    model = LinearRegression(1)
    np.testing.assert_array_equal(
        FedProx(model, 0.01).server_update(w, W, n_S), FedAvg(model, 0.01).server_update(w, W, n_S)
    )


# ---------------------------------------------------------------- settings


@pytest.mark.parametrize(
    ("kwargs", "error", "name"),
    [
        ({"mu": -0.1}, ValueError, "mu"),
        ({"mu": float("nan")}, ValueError, "mu"),
        ({"mu": "0.1"}, TypeError, "mu"),
        ({"stragglers": 1.0}, ValueError, "stragglers"),
        ({"stragglers": -0.1}, ValueError, "stragglers"),
        ({"stragglers": True}, TypeError, "stragglers"),
        ({"stragglers": 0.5, "drop_stragglers": "yes"}, TypeError, "drop_stragglers"),
        ({"drop_stragglers": 1}, TypeError, "drop_stragglers"),
        ({"epochs": 1, "stragglers": 0.5}, ValueError, "epochs"),
        ({"epochs": 0}, ValueError, "epochs"),
        ({"lr": 0.0}, ValueError, "lr"),
    ],
)
def test_bad_settings_name_the_argument(kwargs, error, name):
    settings = {"lr": 0.1, "epochs": 2, **kwargs}
    with pytest.raises(error, match=name):
        FedProx(LinearRegression(2), **settings)


def test_one_epoch_with_dropped_stragglers_is_allowed_and_config_is_json():
    algorithm = FedProx(LinearRegression(2), 0.1, 1, None, 0.1, 0.5, drop_stragglers=True)
    config = json.loads(json.dumps(algorithm.config()))
    assert config["algorithm"] == "fedprox"
    assert (config["mu"], config["stragglers"], config["drop_stragglers"]) == (0.1, 0.5, True)
    assert FedProx(LinearRegression(2), 0.1).mu == 0.01


# ---------------------------------------------------------------- client drift


def fixed_point(algorithm, data, d=3):
    """The exact fixed point of one full-participation round, an affine map on least squares."""

    def round_map(w):
        W = np.stack([algorithm.client_update(w, *data.client(k), None) for k in range(data.K)])
        return algorithm.server_update(w, W, data.n_k)

    b = round_map(np.zeros(d))
    A = np.stack([round_map(e) - b for e in np.eye(d)], axis=1)  # (d, d)
    return np.linalg.solve(np.eye(d) - A, b)


def test_proximal_term_shrinks_but_does_not_remove_client_drift(drift):
    """E = 5 local steps bias FedAvg's fixed point; mu pulls it towards w_star, but only as far
    as mu grows: FedProx still solves sum_k p_k (H_k + mu I)^-1 grad F_k(w) = 0, not
    sum_k p_k grad F_k(w) = 0."""
    model, data, w_star = drift
    d_avg = np.linalg.norm(fixed_point(FedAvg(model, 0.01, 5, None), data) - w_star)
    mus = [1.0, 10.0, 50.0, 100.0]
    d_prox = [
        np.linalg.norm(fixed_point(FedProx(model, 0.01, 5, None, mu), data) - w_star) for mu in mus
    ]
    report = f"||w - w_star||: FedAvg {d_avg:.6f}, FedProx mu={mus}: {np.round(d_prox, 6)}"
    assert d_avg > 0.01 * np.linalg.norm(w_star), report
    assert all(a > b for a, b in pairwise([d_avg, *d_prox])), report
    assert d_prox[-1] > 1e-3, report


def test_run_on_drift_federation_fedprox_ends_closer_to_w_star(drift):
    model, data, w_star = drift
    kw = dict(rounds=1000, fraction=1.0, w0=np.zeros(3), eval_every=1000, eval_train=False)
    w_avg, _ = run(FedAvg(model, 0.01, 5, None), data, **kw)
    w_prox, _ = run(FedProx(model, 0.01, 5, None, mu=10.0), data, **kw)
    d_avg, d_prox = np.linalg.norm(w_avg - w_star), np.linalg.norm(w_prox - w_star)
    report = f"||w_T - w_star||: FedAvg {d_avg:.6f}, FedProx(mu=10) {d_prox:.6f}"
    assert d_prox < d_avg, report
    assert d_prox > 0.5 * d_avg, report  # a moderate mu removes only a little of the bias here
    fp = fixed_point(FedProx(model, 0.01, 5, None, mu=10.0), data)
    np.testing.assert_allclose(w_prox, fp, atol=1e-8, err_msg=report)  # converged to it


def test_run_with_dropped_stragglers_counts_the_epochs_field(drift):
    model, data, _ = drift
    algorithm = FedProx(model, 0.01, 3, None, mu=0.1, stragglers=0.5, drop_stragglers=True)
    w0 = np.zeros(3)
    w_T, history = run(algorithm, data, rounds=4, fraction=1.0, w0=w0, seed=2)
    assert [r["bytes_up"] for r in history.rounds[1:]] == [data.K * (w0.nbytes + 4)] * 4
    assert np.all(np.isfinite(w_T)) and not np.array_equal(w_T, w0)
