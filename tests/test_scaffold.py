"""SCAFFOLD against Algorithm 1 of Karimireddy et al. (2020) and the objective it claims."""

import numpy as np
import pytest
from conftest import blobs_federation, drift_federation

from minifed.algorithms.base import minibatches
from minifed.algorithms.fedavg import FedAvg
from minifed.algorithms.scaffold import SCAFFOLD, mixing
from minifed.dataset import FederatedDataset
from minifed.models import LinearRegression, SoftmaxRegression

# A tiny federation of K = 3 clients of sizes 2, 3, 4 for linear regression on one feature.
TINY = [
    (np.array([[1.0], [2.0]]), np.array([1.0, 3.0])),
    (np.array([[0.0], [1.0], [-1.0]]), np.array([2.0, 0.0, 1.0])),
    (np.array([[3.0], [1.0], [2.0], [0.5]]), np.array([-1.0, 0.5, 2.0, 0.0])),
]
N_K = np.array([2, 3, 4])


def grad_by_hand(v, X, y):
    """``grad 0.5 mean (x.W + b - y)^2 = Xt^T (Xt v - y) / n`` with ``Xt = [X, 1]``."""
    Xt = np.c_[X, np.ones(len(X))]
    return Xt.T @ (Xt @ v - y) / len(y)


def client_by_hand(w, X, y, c, c_k, eta, E, option):
    """Algorithm 1's client with B = inf: E steps on ``grad F_k - c_k + c``, then ``c_k^+``."""
    v = w.copy()
    for _ in range(E):
        v = v - eta * (grad_by_hand(v, X, y) - c_k + c)
    c_new = grad_by_hand(w, X, y) if option == "I" else c_k - c + (w - v) / (E * eta)
    return v, c_new


def round_by_hand(w, c, c_ks, S, eta, E, option, eta_g, weighting):
    """One round of Algorithm 1 on TINY, with the coefficients written out."""
    y_S, c_S = zip(
        *(client_by_hand(w, *TINY[k], c, c_ks[k], eta, E, option) for k in S), strict=True
    )
    if weighting == "n_k":
        p, q = N_K[S] / N_K[S].sum(), N_K[S] / N_K.sum()
    else:
        p, q = np.full(len(S), 1 / len(S)), np.full(len(S), 1 / len(N_K))
    w_next = w + eta_g * sum(p_k * (y_k - w) for p_k, y_k in zip(p, y_S, strict=True))
    c_next = c + sum(q_k * (c_new - c_ks[k]) for q_k, c_new, k in zip(q, c_S, S, strict=True))
    c_ks = [dict(zip(S, c_S, strict=True)).get(k, c_ks[k]) for k in range(len(N_K))]
    return w_next, c_next, c_ks


def round_by_algorithm(alg, w, c, c_ks, S, t=0):
    """One round through ``client_update`` / ``server_update`` as the loop calls them."""
    msgs, c_ks = [], list(c_ks)
    for k in S:
        X_k, y_k = TINY[k]
        msg, state = alg.client_update(w, X_k, y_k, np.random.default_rng([t, k]), c=c, c_k=c_ks[k])
        msgs.append(msg)
        c_ks[k] = state["c_k"]
    M = {f: np.stack([msg[f] for msg in msgs]) for f in ("dy", "dc")}
    w_next, state = alg.server_update(w, M, n_S=N_K[S], n_k=N_K, c=c)
    return w_next, state["c"], c_ks


@pytest.mark.parametrize("weighting", ["n_k", "uniform"])
@pytest.mark.parametrize("option", ["I", "II"])
def test_two_rounds_match_a_hand_computation(option, weighting):
    """w, c and every c_k after rounds with S = {0, 2} then S = {1, 2}, from c = c_k = 0."""
    alg = SCAFFOLD(
        LinearRegression(1), lr=0.1, epochs=3, server_lr=0.7, option=option, weighting=weighting
    )
    w, c, c_ks = np.array([0.5, -0.2]), np.zeros(2), [np.zeros(2)] * 3
    hand, mine = (w, c, c_ks), (w, c, c_ks)
    for t, S in enumerate([np.array([0, 2]), np.array([1, 2])]):
        hand = round_by_hand(*hand, S, eta=0.1, E=3, option=option, eta_g=0.7, weighting=weighting)
        mine = round_by_algorithm(alg, *mine, S, t)
        for a, b in zip(mine, hand, strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15)
    assert not np.allclose(mine[2][1], 0.0)  # the second round's drift is not zero
    assert not np.allclose(mine[1], 0.0)


def test_option_one_is_the_gradient_at_the_server_model():
    model = LinearRegression(1)
    w, (X_k, y_k) = np.array([0.3, 1.0]), TINY[2]
    c, c_k = np.array([0.2, -0.1]), np.array([1.0, 0.5])
    _, state = SCAFFOLD(model, 0.1, epochs=4, option="I").client_update(
        w, X_k, y_k, np.random.default_rng(0), c=c, c_k=c_k
    )
    np.testing.assert_allclose(state["c_k"], model.grad(w, X_k, y_k), rtol=1e-13)


def test_option_two_counts_u_k_minibatch_steps():
    """B = 3 on n_k = 4 rows (batches of 3 and 1), E = 3: u_k = 6 steps, replayed by hand."""
    X_k, y_k = TINY[2]
    w, c, c_k, eta = np.array([0.3, 1.0]), np.array([0.2, -0.1]), np.array([1.0, 0.5]), 0.05
    alg = SCAFFOLD(LinearRegression(1), eta, epochs=3, batch_size=3)
    msg, state = alg.client_update(w, X_k, y_k, np.random.default_rng(5), c=c, c_k=c_k)
    v, rng, steps = w.copy(), np.random.default_rng(5), 0
    for _ in range(3):
        for b in minibatches(4, 3, rng):
            v, steps = v - eta * (grad_by_hand(v, X_k[b], y_k[b]) - c_k + c), steps + 1
    assert steps == alg.local_steps(4) == 6
    np.testing.assert_allclose(msg["dy"], v - w, rtol=1e-12)
    np.testing.assert_allclose(state["c_k"], c_k - c + (w - v) / (6 * eta), rtol=1e-12)
    np.testing.assert_allclose(msg["dc"], state["c_k"] - c_k, rtol=1e-12)


def test_server_update_by_hand_with_one_client_left_out():
    """K = 3, S = {0, 2}, n_k = (1, 2, 5): p = (1/6, 5/6), q = (1/8, 5/8); uniform 1/2, 1/3."""
    w, c = np.array([1.0, 2.0]), np.array([0.5, 0.0])
    M = {"dy": np.array([[1.0, 0.0], [0.0, 3.0]]), "dc": np.array([[2.0, 1.0], [-1.0, 4.0]])}
    n_S, n_k = np.array([1, 5]), np.array([1, 2, 5])
    w1, s = SCAFFOLD(LinearRegression(1), 0.1, server_lr=2.0).server_update(w, M, n_S, n_k, c)
    np.testing.assert_allclose(w1, w + 2.0 * np.array([1 / 6, 15 / 6]), rtol=1e-14)
    np.testing.assert_allclose(s["c"], c + np.array([2 / 8 - 5 / 8, 1 / 8 + 20 / 8]), rtol=1e-14)
    alg = SCAFFOLD(LinearRegression(1), 0.1, server_lr=2.0, weighting="uniform")
    w1, s = alg.server_update(w, M, n_S, n_k, c)
    np.testing.assert_allclose(w1, w + 2.0 * np.array([0.5, 1.5]), rtol=1e-14)
    np.testing.assert_allclose(s["c"], c + np.array([1 / 3, 5 / 3]), rtol=1e-14)


@pytest.mark.parametrize("weighting", ["n_k", "uniform"])
def test_first_round_is_fedavg_with_the_same_weighting(weighting):
    """With c = c_k = 0 and eta_g = 1 the correction is zero: SCAFFOLD's first round gives
    FedAvg's n_k/n_S average ("n_k") or the plain mean of the same client models ("uniform")."""
    kw = dict(lr=0.1, epochs=3, batch_size=2)
    alg, fedavg = (
        SCAFFOLD(LinearRegression(1), weighting=weighting, **kw),
        FedAvg(LinearRegression(1), **kw),
    )
    w, S = np.array([0.5, -0.2]), np.array([0, 2])
    w1, _, _ = round_by_algorithm(alg, w, np.zeros(2), [np.zeros(2)] * 3, S)
    W = np.stack([fedavg.client_update(w, *TINY[k], np.random.default_rng([0, k])) for k in S])
    weighted = fedavg.server_update(w, W, N_K[S])
    expected = weighted if weighting == "n_k" else W.mean(axis=0)
    np.testing.assert_allclose(w1, expected, rtol=1e-13)
    assert not np.allclose(weighted, W.mean(axis=0))  # the two weightings give other numbers


def test_mixing_sums():
    p, q = mixing([3, 1], [3, 1, 4])
    np.testing.assert_allclose([p.sum(), q.sum()], [1.0, 0.5])
    p, q = mixing([3, 1], [3, 1, 4], "uniform")
    np.testing.assert_allclose([p.sum(), q.sum()], [1.0, 2 / 3])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_messages_and_state_match_the_declarations(dtype):
    alg = SCAFFOLD(LinearRegression(1), lr=0.1, epochs=2)
    w = np.array([0.5, -0.2], dtype=dtype)
    X_k, y_k = (a.astype(dtype) for a in TINY[1])
    c, c_k = alg.init_state(w)["c"] + 0.1, alg.init_client_state(w)["c_k"] - 0.3
    msg, state = alg.client_update(w, X_k, y_k, np.random.default_rng(0), c=c, c_k=c_k)
    assert {f: (a.shape, a.dtype) for f, a in msg.items()} == alg.up(w)
    assert state.keys() == alg.init_client_state(w).keys() and state["c_k"].dtype == dtype
    M = {f: np.stack([a, 2 * a]) for f, a in msg.items()}
    w1, server = alg.server_update(w, M, np.array([3, 2]), np.array([3, 2, 5]), c)
    assert w1.dtype == dtype and server.keys() == alg.init_state(w).keys()
    assert server["c"].dtype == dtype and alg.down == ("c",)


@pytest.mark.parametrize("option", ["I", "II"])
def test_updates_do_not_modify_their_inputs(option):
    alg = SCAFFOLD(LinearRegression(1), lr=0.1, epochs=2, batch_size=2, option=option)
    X_k, y_k = TINY[2]
    w, c, c_k = np.array([0.5, -0.2]), np.array([0.2, -0.1]), np.array([1.0, 0.5])
    args = (w, X_k, y_k, c, c_k)
    before = [a.copy() for a in args]
    msg, _ = alg.client_update(w, X_k, y_k, np.random.default_rng(0), c=c, c_k=c_k)
    M = {f: np.stack([a, -a]) for f, a in msg.items()}
    M_before = {f: a.copy() for f, a in M.items()}
    alg.server_update(w, M, np.array([4, 2]), np.array([4, 2, 3]), c)
    for a, b in zip(args, before, strict=True):
        np.testing.assert_array_equal(a, b)
    for f in M:
        np.testing.assert_array_equal(M[f], M_before[f])


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"option": "III"}, "option"),
        ({"option": "ii"}, "option"),
        ({"option": 2}, "option"),
        ({"server_lr": 0.0}, "server_lr"),
        ({"server_lr": -1.0}, "server_lr"),
        ({"server_lr": float("nan")}, "server_lr"),
        ({"server_lr": "1"}, "server_lr"),
        ({"weighting": "n"}, "weighting"),
        ({"lr": 0.0}, "lr"),
        ({"epochs": 0}, "epochs"),
        ({"batch_size": 0}, "batch_size"),
    ],
)
def test_bad_settings_name_the_argument(kwargs, name):
    settings = {"lr": 0.1, **kwargs}
    with pytest.raises((ValueError, TypeError), match=name):
        SCAFFOLD(LinearRegression(1), **settings)


def test_settings_are_json_ready():
    config = SCAFFOLD(LinearRegression(1), 0.1, server_lr=0.5, option="I").config()
    assert config["algorithm"] == "scaffold" and config["option"] == "I"
    assert config["server_lr"] == 0.5 and config["weighting"] == "n_k"


# ----- convergence on heterogeneous least squares (closed-form optimum) -----


def simulate(alg, data, rounds, fraction=1.0, seed=0):
    """A plain round loop (independent of minifed.simulation); returns ``(w, c, c_k per k)``."""
    w, rng = np.zeros(3), np.random.default_rng(seed)
    c, c_ks = alg.init_state(w)["c"], {}
    m = max(round(fraction * data.K), 1)
    for t in range(1, rounds + 1):
        S = np.sort(rng.choice(data.K, size=m, replace=False))
        msgs = []
        for k in S:
            c_k = c_ks.setdefault(k, alg.init_client_state(w))["c_k"]
            msg, c_ks[k] = alg.client_update(
                w, *data.client(k), np.random.default_rng([seed, t, k]), c=c, c_k=c_k
            )
            msgs.append(msg)
        M = {f: np.stack([msg[f] for msg in msgs]) for f in ("dy", "dc")}
        w, state = alg.server_update(w, M, data.n_k[S], data.n_k, c)
        c = state["c"]
    return w, c, {k: s["c_k"] for k, s in c_ks.items()}


def distance(w, w_star):
    return np.linalg.norm(w - w_star) / np.linalg.norm(w_star)


def fedavg_distance(data, w_star, rounds):
    w = np.zeros(3)
    fedavg = FedAvg(LinearRegression(2), lr=0.02, epochs=5)
    for t in range(rounds):
        W = [
            fedavg.client_update(w, *data.client(k), np.random.default_rng([t, k]))
            for k in range(data.K)
        ]
        w = fedavg.server_update(w, np.stack(W), data.n_k)
    return distance(w, w_star)


@pytest.mark.parametrize("option", ["I", "II"])
def test_full_participation_reaches_w_star_where_fedavg_does_not(option):
    """E = 5, B = inf, eta = 0.02: FedAvg stops at a biased fixed point, SCAFFOLD does not."""
    data, w_star = drift_federation()
    w, _, _ = simulate(SCAFFOLD(LinearRegression(2), lr=0.02, epochs=5, option=option), data, 300)
    d_scaffold, d_fedavg = distance(w, w_star), fedavg_distance(data, w_star, 300)
    assert d_scaffold < 1e-6, f"SCAFFOLD is {d_scaffold:.2e} from w_star (FedAvg {d_fedavg:.2e})"
    assert d_fedavg > 1e-3, f"FedAvg is only {d_fedavg:.2e} from w_star: no client drift to fix"


@pytest.mark.parametrize("weighting", ["n_k", "uniform"])
def test_partial_participation_keeps_c_the_mean_of_c_k_and_reaches_w_star(weighting):
    """fraction 0.5: c = sum_k pi_k c_k after every round (checked at the end), w -> w_star."""
    data, w_star = drift_federation()
    alg = SCAFFOLD(LinearRegression(2), lr=0.02, epochs=5, weighting=weighting)
    w, c, c_ks = simulate(alg, data, 300, fraction=0.5, seed=1)
    pi = data.n_k / data.n if weighting == "n_k" else np.full(data.K, 1 / data.K)
    np.testing.assert_allclose(c, sum(pi[k] * c_k for k, c_k in c_ks.items()), atol=1e-12)
    assert distance(w, w_star) < 1e-6, f"SCAFFOLD is {distance(w, w_star):.2e} from w_star"


def uneven_drift_federation(sizes=(6, 12, 30, 24)):
    """drift_federation's clients cut to unequal sizes; returns ``(data, w_n, w_uniform)``: the
    minimisers of ``sum_k (n_k/n) F_k`` (pooled least squares) and of ``(1/K) sum_k F_k``."""
    full, _ = drift_federation()
    clients = [tuple(a[:s] for a in full.client(k)) for k, s in enumerate(sizes)]
    data = FederatedDataset.from_clients(clients, dtype=np.float64)
    Xt = [np.c_[X_k, np.ones(len(X_k))] for X_k, _ in clients]
    A = sum(X.T @ X / len(X) for X in Xt)  # (3, 3) sum_k of client k's Hessian
    b = sum(X.T @ y_k / len(y_k) for X, (_, y_k) in zip(Xt, clients, strict=True))
    w_n = np.linalg.lstsq(np.c_[data.X, np.ones(data.n)], data.y, rcond=None)[0]
    return data, w_n, np.linalg.solve(A, b)


@pytest.mark.parametrize("weighting", ["n_k", "uniform"])
def test_weighting_chooses_the_objective(weighting):
    """Unequal n_k: "n_k" converges to argmin sum (n_k/n) F_k, "uniform" to argmin mean F_k."""
    data, w_n, w_uniform = uneven_drift_federation()
    assert distance(w_n, w_uniform) > 1e-2  # the two objectives differ
    alg = SCAFFOLD(LinearRegression(2), lr=0.02, epochs=5, weighting=weighting)
    w, _, _ = simulate(alg, data, 400)
    target, other = (w_n, w_uniform) if weighting == "n_k" else (w_uniform, w_n)
    assert distance(w, target) < 1e-6, f"{distance(w, target):.2e} from its target"
    assert distance(w, other) > 1e-3


# ----- through minifed.simulation.run (protocol v2) -----


@pytest.mark.parametrize("fraction", [1.0, 0.5])
def test_run_reaches_w_star(fraction):
    from minifed.simulation import run  # imported here: the unit tests above do not need the loop

    data, w_star = drift_federation()
    alg = SCAFFOLD(LinearRegression(2), lr=0.02, epochs=5)
    w, history = run(alg, data, rounds=300, fraction=fraction, w0=np.zeros(3), eval_every=300)
    assert distance(w, w_star) < 1e-6, f"SCAFFOLD is {distance(w, w_star):.2e} from w_star"
    w_fedavg, _ = run(
        FedAvg(LinearRegression(2), lr=0.02, epochs=5),
        data,
        rounds=300,
        fraction=fraction,
        w0=np.zeros(3),
        eval_every=300,
    )
    assert distance(w_fedavg, w_star) > 1e-3, f"FedAvg {distance(w_fedavg, w_star):.2e}"
    m, record = round(fraction * data.K), history.rounds[1]
    assert record["bytes_up"] == record["bytes_down"] == m * 2 * w.nbytes  # (dy, dc) and (w, c)


def test_run_trains_in_float32_with_minibatches():
    from minifed.simulation import run

    alg = SCAFFOLD(SoftmaxRegression(4, 3), lr=0.1, epochs=2, batch_size=10, option="I")
    w, history = run(alg, blobs_federation(), rounds=10, fraction=0.5, seed=0)
    first, last = history.rounds[0]["train_loss"], history.rounds[-1]["train_loss"]
    assert w.dtype == np.float32 and last < 0.9 * first, f"train loss {first:.3f} -> {last:.3f}"
