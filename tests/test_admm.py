"""Federated consensus ADMM: one round by hand, its fixed point, its exact partial participation."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import drift_federation

from minifed.algorithms.admm import FedADMM
from minifed.algorithms.fedavg import FedAvg
from minifed.algorithms.fedsgd import FedSGD
from minifed.dataset import FederatedDataset
from minifed.models import LinearRegression
from minifed.simulation import run

ETA, E, RHO = 0.01, 5, 3.0  # drift_federation: curvature up to ~33, eta (L + rho) ~ 0.36 < 2


def rounds_by_hand(algorithm, data, T, m=None, seed=0, w0=None, check=None):
    """``T`` rounds driven by direct calls, as the round loop makes them: ``m`` clients drawn
    uniformly, client state created lazily with the current ``w``, messages stacked per field.
    ``check(w, state, client_states)`` runs after every round. Returns the same triple."""
    K, rng = data.K, np.random.default_rng(seed)
    w = np.zeros(algorithm.model.num_params) if w0 is None else w0.copy()
    state, rows = algorithm.init_state(w), {}
    for t in range(1, T + 1):
        S = np.sort(rng.choice(K, size=m or K, replace=False))
        messages = []
        for k in map(int, S):
            row = rows[k] if k in rows else algorithm.init_client_state(w)
            X_k, y_k = data.client(k)
            message, rows[k] = algorithm.client_update(
                w, X_k, y_k, np.random.default_rng([seed, t, k]), **row
            )
            messages.append(message)
        M = {f: np.stack([msg[f] for msg in messages]) for f in messages[0]}
        w, state = algorithm.server_update(w, M, data.n_k[S], **state)
        if check is not None:
            check(w, state, rows)
    return w, state, rows


def fedavg_round(w, data):
    """One round of FedAvg (E = 5, B = None) with every client, by direct calls."""
    algorithm = FedAvg(LinearRegression(2), ETA, E)
    rng = np.random.default_rng(0)  # unused with B = None
    W = np.stack([algorithm.client_update(w, *data.client(k), rng) for k in range(data.K)])
    return algorithm.server_update(w, W, data.n_k)


def fedavg_fixed_point(data):
    """On least squares with B = None a FedAvg round is affine, w -> A w + c: its fixed point
    solves (I - A) w = c, with c = round(0) and A e_i = round(e_i) - c."""
    c = fedavg_round(np.zeros(3), data)
    A = np.stack([fedavg_round(e, data) - c for e in np.eye(3)], axis=1)  # (3, 3)
    return np.linalg.solve(np.eye(3) - A, c)


def uneven_federation():
    """drift_federation with client k keeping only its first (6, 12, 24, 30)[k] rows; returns
    ``(data, w_star of sum_k (n_k/n) F_k, minimiser of the uniform mean (1/K) sum_k F_k)``."""
    full, _ = drift_federation()
    sizes = (6, 12, 24, 30)
    parts = [full.offsets[k] + np.arange(n_k) for k, n_k in enumerate(sizes)]
    rows = np.concatenate(parts)
    data = FederatedDataset(
        full.X[rows], full.y[rows], np.split(np.arange(len(rows)), np.cumsum(sizes)[:-1]),
        full.X_test, full.y_test, dtype=np.float64, name="uneven drift",
    )  # fmt: skip
    A = np.c_[data.X, np.ones(data.n)]
    w_star = np.linalg.lstsq(A, data.y, rcond=None)[0]
    H, b = np.zeros((3, 3)), np.zeros(3)
    for k in range(data.K):
        X_k, y_k = data.client(k)
        A_k = np.c_[X_k, np.ones(len(y_k))]
        H, b = H + A_k.T @ A_k / len(y_k), b + A_k.T @ y_k / len(y_k)
    return data, w_star, np.linalg.solve(H, b)


# ----- one round by hand -----


def test_one_round_by_hand():
    """Two clients, LinearRegression(1) (w = [W, b]), eta = 0.1, E = 2 full-batch steps, rho = 2.

    Client A returns (lambda_A = [0.5, -1], u_A = [1, 0], counted 2), data x = (1, 2),
    y = (1, 3). At z = w = 0: residuals (-1, -3), grad = [mean(r x), mean(r)] = [-3.5, -2];
    step 1: w_A = -0.1 ([-3.5, -2] + lambda_A) = [0.3, 0.3] (the penalty is 0 at w_A = z).
    Step 2: residuals (-0.4, -2.1), grad = [-2.3, -1.25], + lambda_A + 2 (w_A - 0) = [-1.2, -1.65];
    w_A = [0.42, 0.465]. lambda_A = [0.5, -1] + 2 [0.42, 0.465] = [1.34, -0.07];
    u_A = w_A + lambda_A / 2 = [1.09, 0.43]; du_A = [0.09, 0.43], dn_A = 0.

    Client B is new (lambda_B = 0, u_B = w = 0), 4 copies of x = 1, y = 1: step 1 grad [-1, -1],
    w_B = [0.1, 0.1]; step 2 grad [-0.8, -0.8] + 2 [0.1, 0.1] = [-0.6, -0.6], w_B = [0.16, 0.16].
    lambda_B = [0.32, 0.32], u_B = [0.32, 0.32] = du_B, dn_B = 4.

    Server with N = 6 (A's 2 and 4 of clients not in this round): N = 6 + 0 + 4 = 10,
    w = 0 + (2 du_A + 4 du_B) / 10 = ([0.18, 0.86] + [1.28, 1.28]) / 10 = [0.146, 0.214].
    """
    algorithm = FedADMM(LinearRegression(1), lr=0.1, epochs=2, rho=2.0)
    w, rng = np.zeros(2), np.random.default_rng(0)
    row_A = {"lambda_k": np.array([0.5, -1.0]), "u_k": np.array([1.0, 0.0]), "n_counted_k": 2}
    msg_A, new_A = algorithm.client_update(
        w, np.array([[1.0], [2.0]]), np.array([1.0, 3.0]), rng, **row_A
    )
    np.testing.assert_allclose(new_A["lambda_k"], [1.34, -0.07], atol=1e-12)
    np.testing.assert_allclose(new_A["u_k"], [1.09, 0.43], atol=1e-12)
    np.testing.assert_allclose(msg_A["du_k"], [0.09, 0.43], atol=1e-12)
    assert msg_A["dn_k"] == 0 and new_A["n_counted_k"] == 2

    row_B = algorithm.init_client_state(w)
    np.testing.assert_array_equal(row_B["lambda_k"], [0, 0])
    np.testing.assert_array_equal(row_B["u_k"], w)
    msg_B, new_B = algorithm.client_update(w, np.ones((4, 1)), np.ones(4), rng, **row_B)
    np.testing.assert_allclose(new_B["lambda_k"], [0.32, 0.32], atol=1e-12)
    np.testing.assert_allclose(new_B["u_k"], [0.32, 0.32], atol=1e-12)
    np.testing.assert_allclose(msg_B["du_k"], [0.32, 0.32], atol=1e-12)
    assert msg_B["dn_k"] == 4 and new_B["n_counted_k"] == 4

    M = {f: np.stack([msg_A[f], msg_B[f]]) for f in msg_A}
    w_next, state = algorithm.server_update(w, M, np.array([2, 4]), n_seen=np.int64(6))
    np.testing.assert_allclose(w_next, [0.146, 0.214], atol=1e-12)
    assert state["n_seen"] == 10


@pytest.mark.parametrize("rho", [0.5, 50.0])
def test_first_round_full_batch_one_epoch_is_fedsgd_with_twice_the_step(rho):
    """Every client new (lambda_k = 0, u_k = w), E = 1, B = None: w_k = w - eta g_k, lambda_k =
    -rho eta g_k, u_k = w - 2 eta g_k, so w_1 = w - 2 eta sum_k (n_k/n) g_k for ANY rho: FedSGD
    with step 2 eta."""
    data, _, _ = uneven_federation()  # unequal n_k: a uniform average would differ
    w0 = np.array([0.3, -0.2, 0.5])
    w1, state, _ = rounds_by_hand(FedADMM(LinearRegression(2), ETA, rho=rho), data, 1, w0=w0)
    fedsgd = FedSGD(LinearRegression(2), 2 * ETA)
    G = np.stack([fedsgd.client_update(w0, *data.client(k)) for k in range(data.K)])
    np.testing.assert_allclose(w1, fedsgd.server_update(w0, G, data.n_k), rtol=1e-12)
    assert state["n_seen"] == data.n


# ----- the fixed point -----


def test_converges_to_w_star_where_fedavg_does_not():
    """Full participation, E = 5, B = None: ADMM's fixed point is the minimiser of F; FedAvg's
    (E > 1 on heterogeneous clients) is not."""
    data, w_star = drift_federation()
    w_admm, _, _ = rounds_by_hand(FedADMM(LinearRegression(2), ETA, E, rho=RHO), data, 300)
    w_avg = np.zeros(3)
    for _ in range(300):
        w_avg = fedavg_round(w_avg, data)
    d_admm, d_avg = np.linalg.norm(w_admm - w_star), np.linalg.norm(w_avg - w_star)
    print(f"||w - w_star|| after 300 rounds: FedADMM {d_admm:.2e}, FedAvg {d_avg:.2e}")
    assert d_admm < 1e-8
    w_fedavg = fedavg_fixed_point(data)  # where FedAvg settles: not w_star
    assert np.linalg.norm(w_fedavg - w_star) > 5e-2 and np.linalg.norm(w_avg - w_fedavg) < 1e-3


def test_partial_participation_approaches_w_star():
    data, w_star = drift_federation()
    algorithm = FedADMM(LinearRegression(2), ETA, E, rho=RHO)
    w, _, _ = rounds_by_hand(algorithm, data, 400, m=2, seed=1)
    distance = np.linalg.norm(w - w_star)
    print(f"fraction 0.5: ||w - w_star|| after 400 rounds {distance:.2e}")
    assert distance < 1e-6


def test_fixed_point_minimises_the_n_weighted_objective():
    """With unequal n_k the target is sum_k (n_k/n) F_k (the pooled least squares), not the
    uniform mean of the F_k; the two minimisers are far apart here."""
    data, w_star, w_uniform = uneven_federation()
    assert np.linalg.norm(w_star - w_uniform) > 0.1
    w, _, _ = rounds_by_hand(FedADMM(LinearRegression(2), ETA, E, rho=RHO), data, 400)
    np.testing.assert_allclose(w, w_star, atol=1e-8)


def test_duals_satisfy_stationarity_at_convergence():
    """At the fixed point lambda_k = -grad F_k(w_star) and sum_k p_k lambda_k = 0; the duals are
    kept per client (they differ)."""
    data, w_star = drift_federation()
    model = LinearRegression(2)
    _, _, rows = rounds_by_hand(FedADMM(model, ETA, E, rho=RHO), data, 300)
    Lambda = np.stack([rows[k]["lambda_k"] for k in range(data.K)])  # (K, d)
    grads = np.stack([model.grad(w_star, *data.client(k)) for k in range(data.K)])  # (K, d)
    np.testing.assert_allclose(Lambda, -grads, atol=1e-8 * np.abs(grads).max())
    np.testing.assert_allclose(data.p @ Lambda, 0.0, atol=1e-9)
    assert np.abs(grads).min(axis=1).max() > 0.1  # non-trivial duals ...
    assert np.linalg.norm(Lambda[0] - Lambda[1]) > 1.0  # ... and each client its own


# ----- exact partial participation -----


def test_server_model_is_the_weighted_average_of_every_seen_clients_u():
    """After every round, w = sum_{k seen} n_k u_k / sum_{k seen} n_k and n_seen counts those
    samples, with unequal n_k, 1 of 4 clients per round and a minibatch (exactness does not
    depend on the local solver)."""
    data, _, _ = uneven_federation()
    seen_counts = []

    def check(w, state, rows):
        n_seen = sum(int(data.n_k[k]) for k in rows)
        z = sum(data.n_k[k] * rows[k]["u_k"] for k in rows) / n_seen
        np.testing.assert_allclose(w, z, rtol=1e-12, atol=1e-12)
        assert state["n_seen"] == n_seen
        assert all(rows[k]["n_counted_k"] == data.n_k[k] for k in rows)
        seen_counts.append(len(rows))

    algorithm = FedADMM(LinearRegression(2), ETA, 2, batch_size=5, rho=RHO)
    rounds_by_hand(algorithm, data, 12, m=1, seed=3, check=check)
    assert seen_counts[0] == 1 and seen_counts[-1] == data.K  # newcomers joined along the way


# ----- protocol details -----


def test_inputs_are_not_modified_and_state_is_new_arrays():
    data, _ = drift_federation()
    algorithm = FedADMM(LinearRegression(2), ETA, E, batch_size=7, rho=RHO)
    w = np.array([0.1, -0.2, 0.3])
    X_k, y_k = data.client(1)
    row = {"lambda_k": np.array([1.0, 2.0, -1.0]), "u_k": np.array([0.5, 0.5, 0.5]),
           "n_counted_k": np.int64(30)}  # fmt: skip
    before = {"w": w.copy(), "X": X_k.copy(), "y": y_k.copy()} | {
        f: np.copy(v) for f, v in row.items()
    }
    message, new = algorithm.client_update(w, X_k, y_k, np.random.default_rng(0), **row)
    M = {f: np.stack([message[f], message[f]]) for f in message}
    M_before = {f: v.copy() for f, v in M.items()}
    n_seen = np.asarray(60)
    w_next, state = algorithm.server_update(w, M, np.array([30, 30]), n_seen)
    for name, value in {"w": w, "X": X_k, "y": y_k, **row}.items():
        np.testing.assert_array_equal(value, before[name], err_msg=name)
    for f in M:
        np.testing.assert_array_equal(M[f], M_before[f])
    assert n_seen == 60 and state["n_seen"] == 60
    for f in ("lambda_k", "u_k"):
        assert not np.shares_memory(new[f], row[f]) and not np.shares_memory(new[f], w)
    assert not np.shares_memory(w_next, w)


def test_wire_format_state_and_float32():
    """Messages match up(w); float32 training stays float32 end to end."""
    data, _ = drift_federation()
    algorithm = FedADMM(LinearRegression(2), ETA, E, rho=RHO)
    w = np.zeros(3, dtype=np.float32)
    X_k, y_k = (a.astype(np.float32) for a in data.client(0))
    message, new = algorithm.client_update(
        w, X_k, y_k, np.random.default_rng(0), **algorithm.init_client_state(w)
    )
    for field, (shape, dtype) in algorithm.up(w).items():
        assert np.shape(message[field]) == shape and np.asarray(message[field]).dtype == dtype
    assert set(new) == set(algorithm.init_client_state(w))
    assert new["lambda_k"].dtype == new["u_k"].dtype == np.float32
    M = {f: np.stack([message[f]]) for f in message}
    w_next, state = algorithm.server_update(w, M, np.array([len(y_k)]), **algorithm.init_state(w))
    assert w_next.dtype == np.float32 and set(state) == set(algorithm.init_state(w))
    assert algorithm.config()["rho"] == RHO and not any(
        isinstance(v, np.ndarray) for v in vars(algorithm).values()
    )


@pytest.mark.parametrize(
    ("name", "value", "error"),
    [
        ("rho", 0.0, ValueError),
        ("rho", -1.0, ValueError),
        ("rho", float("nan"), ValueError),
        ("rho", "1", TypeError),
        ("epochs", 0, ValueError),
        ("batch_size", 0, ValueError),
        ("lr", 0.0, ValueError),
    ],
)
def test_bad_settings_name_the_argument(name, value, error):
    settings = {"lr": ETA, "rho": RHO, name: value}
    with pytest.raises(error, match=name):
        FedADMM(LinearRegression(2), **settings)


def test_rho_is_required():
    with pytest.raises(TypeError, match="rho"):
        FedADMM(LinearRegression(2), ETA)


# ----- through the round loop -----


def test_run_matches_direct_calls_and_converges():
    """``run`` with every client carries the state as the direct calls do (B = None: no
    randomness), reaches w_star, records n_seen and counts the int64 of each message."""
    data, w_star = drift_federation()
    algorithm = FedADMM(LinearRegression(2), ETA, E, rho=RHO)
    w, history = run(algorithm, data, 300, fraction=1.0, w0=np.zeros(3), eval_every=100)
    w_direct, _, _ = rounds_by_hand(algorithm, data, 300)
    np.testing.assert_allclose(w, w_direct, rtol=1e-12, atol=1e-12)
    assert np.linalg.norm(w - w_star) < 1e-8
    last = history.rounds[-1]
    assert last["n_seen"] == data.n
    assert last["bytes_up"] == data.K * (w.nbytes + 8)


def test_run_partial_participation_approaches_w_star():
    data, w_star = drift_federation()
    algorithm = FedADMM(LinearRegression(2), ETA, E, rho=RHO)
    w, history = run(algorithm, data, 400, fraction=0.5, seed=2, w0=np.zeros(3), eval_every=400)
    distance = np.linalg.norm(w - w_star)
    print(f"run, fraction 0.5: ||w - w_star|| after 400 rounds {distance:.2e}")
    assert distance < 1e-6
    assert history.rounds[-1]["n_seen"] == data.n
