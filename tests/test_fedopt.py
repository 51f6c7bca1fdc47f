"""Server optimizers against the math they claim: FedAvgM (Hsu et al. 2019) and FedAdagrad,
FedAdam, FedYogi (Reddi et al. 2021, Algorithm 2), all on FedAvg's pseudo-gradient."""

import copy
import json
import math
import pickle

import numpy as np
import pytest
from conftest import blobs_federation

from minifed.algorithms.base import aggregate
from minifed.algorithms.fedavg import FedAvg
from minifed.algorithms.fedopt import FedAdagrad, FedAdam, FedAvgM, FedOpt, FedYogi
from minifed.dataset import FederatedDataset
from minifed.models import SoftmaxRegression
from minifed.simulation import run

STATEFUL = [FedAvgM, FedAdagrad, FedAdam, FedYogi]
N_S = np.array([1, 3])  # two clients of different sizes: weighted and plain means differ
OFFSETS = np.array([[3.0], [-1.0]]) * np.array([0.7, -1.1, 0.4])  # (2, 3), weighted mean 0


@pytest.fixture(scope="module")
def fed64():
    """blobs_federation() in float64, for comparisons to 1e-12."""
    fed = blobs_federation()
    clients = [fed.client(k) for k in range(fed.K)]
    return FederatedDataset.from_clients(clients, fed.X_test, fed.y_test, dtype=np.float64)


@pytest.fixture(scope="module")
def model():
    return SoftmaxRegression(4, 3)


def clients_averaging_to(avg):
    """A stack ``W`` of two client models whose ``n_k / n_S`` average with ``N_S`` is ``avg``
    (and whose plain mean is not)."""
    return np.asarray(avg, dtype=np.float64) + OFFSETS


def step(alg, w, W, state):
    """One ``server_update`` with the state passed by name, as the round loop does."""
    return alg.server_update(w, W, N_S, **state)


# --- reductions to FedAvg ------------------------------------------------------------------


def test_pseudo_gradient_is_weighted_average_minus_w():
    w = np.array([1.0, -2.0, 0.5])
    W = clients_averaging_to([2.2, -2.0, -0.7])
    np.testing.assert_allclose(FedOpt.pseudo_gradient(w, W, N_S), [1.2, 0.0, -1.2], atol=1e-14)
    assert not np.allclose(W.mean(axis=0) - w, [1.2, 0.0, -1.2])  # the weights matter


def test_server_sgd_step_one_is_fedavg_and_step_half_the_midpoint(model):
    rng = np.random.default_rng(0)
    w, W = rng.normal(size=3), rng.normal(size=(2, 3))
    fedavg = FedAvg(model, 0.1).server_update(w, W, N_S)
    np.testing.assert_allclose(
        FedOpt(model, 0.1, server_lr=1.0).server_update(w, W, N_S), fedavg, rtol=1e-12
    )
    half = FedOpt(model, 0.1, server_lr=0.5).server_update(w, W, N_S)
    np.testing.assert_allclose(half, (w + fedavg) / 2, rtol=1e-12)


def test_fedavgm_without_momentum_is_fedavg_whatever_v(model):
    rng = np.random.default_rng(1)
    w, W, v = rng.normal(size=3), rng.normal(size=(2, 3)), rng.normal(size=3)
    w_next, state = FedAvgM(model, 0.1, momentum=0.0).server_update(w, W, N_S, v=v)
    np.testing.assert_allclose(w_next, aggregate(W, N_S), rtol=1e-12)
    np.testing.assert_allclose(state["v"], aggregate(W, N_S) - w, rtol=1e-12)


@pytest.mark.parametrize(
    "algorithm",
    [
        lambda model: FedOpt(model, 0.1, epochs=2, batch_size=16, server_lr=1.0),
        lambda model: FedAvgM(model, 0.1, epochs=2, batch_size=16, server_lr=1.0, momentum=0.0),
    ],
    ids=["FedOpt-sgd", "FedAvgM-0"],
)
@pytest.mark.parametrize("fraction", [1.0, 0.3])
def test_run_of_the_reduction_equals_fedavg(fed64, model, algorithm, fraction):
    kw = {"rounds": 6, "fraction": fraction, "seed": 4}
    w_avg, h_avg = run(FedAvg(model, 0.1, epochs=2, batch_size=16), fed64, **kw)
    w_opt, h_opt = run(algorithm(model), fed64, **kw)
    np.testing.assert_allclose(w_opt, w_avg, rtol=1e-12, atol=1e-13)
    assert [r["clients"] for r in h_opt.rounds] == [r["clients"] for r in h_avg.rounds]


# --- hand computations on two rounds, m = 2 clients, d = 3 ---------------------------------


def test_fedavgm_two_rounds_by_hand(model):
    alg = FedAvgM(model, 0.1, server_lr=2.0, momentum=0.5)
    w0 = np.array([1.0, -2.0, 0.5])
    state = alg.init_state(w0)
    w1, state = step(alg, w0, clients_averaging_to(w0 + np.array([1.2, 0.0, -1.2])), state)
    np.testing.assert_allclose(state["v"], [1.2, 0.0, -1.2], atol=1e-14)  # v_0 = Delta_0
    np.testing.assert_allclose(w1, [3.4, -2.0, -1.9], rtol=1e-14)  # w0 + 2 v_0
    w2, state = step(alg, w1, clients_averaging_to(w1 + np.array([-1.0, 0.5, 0.25])), state)
    np.testing.assert_allclose(state["v"], [-0.4, 0.5, -0.35], rtol=1e-13)  # 0.5 v_0 + Delta_1
    np.testing.assert_allclose(w2, [2.6, -1.0, -2.6], rtol=1e-13)  # w1 + 2 v_1


def test_fedadagrad_two_rounds_by_hand(model):
    """tau = 0.5, so v_{-1} = 0.25 and Delta's are picked to make every sqrt(v) exact."""
    alg = FedAdagrad(model, 0.1, server_lr=0.3, beta1=0.5, tau=0.5)
    w0 = np.array([1.0, -2.0, 0.5])
    state = alg.init_state(w0)
    np.testing.assert_array_equal(state["v"], [0.25, 0.25, 0.25])
    np.testing.assert_array_equal(state["m"], [0.0, 0.0, 0.0])
    w1, state = step(alg, w0, clients_averaging_to(w0 + np.array([1.2, 0.0, -1.2])), state)
    np.testing.assert_allclose(state["m"], [0.6, 0.0, -0.6], atol=1e-14)
    np.testing.assert_allclose(state["v"], [1.69, 0.25, 1.69], rtol=1e-14)  # sqrt: 1.3, .5, 1.3
    np.testing.assert_allclose(w1, w0 + 0.3 * np.array([0.6, 0.0, -0.6]) / 1.8, rtol=1e-14)
    w2, state = step(alg, w1, clients_averaging_to(w1 + np.array([0.0, 1.2, 1.44])), state)
    np.testing.assert_allclose(state["m"], [0.3, 0.6, 0.42], rtol=1e-13)
    np.testing.assert_allclose(state["v"], [1.69, 1.69, 1.94**2], rtol=1e-13)
    expected = w1 + 0.3 * np.array([0.3 / 1.8, 0.6 / 1.8, 0.42 / 2.44])
    np.testing.assert_allclose(w2, expected, rtol=1e-13)


def reference(kind, w, rounds, eta, beta1, beta2, tau):
    """Algorithm 2 one coordinate at a time, in plain Python floats; returns (w, m, v)."""
    w, d = [float(x) for x in w], len(w)
    m, v = [0.0] * d, [tau**2] * d
    for W, n_S in rounds:
        for i in range(d):
            D = sum(n * float(W_k[i]) for n, W_k in zip(n_S, W, strict=True)) / sum(n_S) - w[i]
            m[i] = beta1 * m[i] + (1 - beta1) * D
            if kind == "adagrad":
                v[i] = v[i] + D * D
            elif kind == "adam":
                v[i] = beta2 * v[i] + (1 - beta2) * D * D
            else:  # yogi
                v[i] = v[i] - (1 - beta2) * D * D * math.copysign(1, v[i] - D * D)
            w[i] = w[i] + eta * m[i] / (math.sqrt(v[i]) + tau)
    return w, m, v


@pytest.mark.parametrize(
    ("cls", "kind"), [(FedAdagrad, "adagrad"), (FedAdam, "adam"), (FedYogi, "yogi")]
)
def test_adaptive_two_rounds_match_scalar_reference(model, cls, kind):
    eta, beta1, beta2, tau = 0.05, 0.8, 0.9, 0.01
    settings = {"server_lr": eta, "beta1": beta1, "tau": tau}
    alg = cls(model, 0.1, **settings, **({} if kind == "adagrad" else {"beta2": beta2}))
    rng = np.random.default_rng(2)
    w0 = rng.normal(size=3)
    rounds = [(rng.normal(size=(2, 3)), N_S), (rng.normal(size=(2, 3)), N_S)]
    w, state = w0, alg.init_state(w0)
    for W, n_S in rounds:
        w, state = alg.server_update(w, W, n_S, **state)
    w_ref, m_ref, v_ref = reference(kind, w0, rounds, eta, beta1, beta2, tau)
    np.testing.assert_allclose(w, w_ref, rtol=1e-12)
    np.testing.assert_allclose(state["m"], m_ref, rtol=1e-12)
    np.testing.assert_allclose(state["v"], v_ref, rtol=1e-12)


def test_yogi_and_adam_second_moments_differ_where_v_is_below_delta_squared(model):
    """v = 4 everywhere, Delta^2 = 1, 4, 9: sign(v - Delta^2) = +1, 0, -1. With beta2 = 0.75
    Yogi moves v by 0.25 Delta^2 towards Delta^2; Adam by 0.25 (Delta^2 - v)."""
    w = np.zeros(3)
    W = clients_averaging_to([1.0, -2.0, 3.0])  # Delta = 1, -2, 3
    state = {"m": np.zeros(3), "v": np.full(3, 4.0)}
    settings = {"server_lr": 0.1, "beta1": 0.0, "beta2": 0.75, "tau": 1e-3}
    _, yogi = step(FedYogi(model, 0.1, **settings), w, W, state)
    _, adam = step(FedAdam(model, 0.1, **settings), w, W, state)
    np.testing.assert_allclose(yogi["v"], [4 - 0.25, 4.0, 4 + 0.25 * 9], rtol=1e-14)
    np.testing.assert_allclose(adam["v"], [0.75 * 4 + 0.25, 4.0, 0.75 * 4 + 0.25 * 9], rtol=1e-14)
    assert yogi["v"][2] > adam["v"][2]  # negative sign: Yogi grows v by more than Adam
    assert yogi["v"][1] == adam["v"][1] == 4.0  # v = Delta^2: neither moves


def test_fedadam_without_moments_is_normalized_server_step(model):
    """beta1 = beta2 = 0: m_t = Delta_t, v_t = Delta_t^2, so w + eta Delta / (|Delta| + tau)."""
    rng = np.random.default_rng(3)
    w, W = rng.normal(size=3), rng.normal(size=(2, 3))
    alg = FedAdam(model, 0.1, server_lr=0.2, beta1=0.0, beta2=0.0, tau=1e-3)
    w_next, _ = step(alg, w, W, alg.init_state(w))
    Delta = aggregate(W, N_S) - w
    np.testing.assert_allclose(w_next, w + 0.2 * Delta / (np.abs(Delta) + 1e-3), rtol=1e-12)


def test_fedadam_first_step_moves_each_coordinate_by_about_eta(model):
    """No bias correction, yet with the defaults (1 - beta1) / sqrt(1 - beta2) = 1: the first
    step is about eta in every coordinate where |Delta_0| >> tau (module docstring)."""
    alg = FedAdam(model, 0.1)
    w = np.zeros(3)
    w1, _ = step(alg, w, clients_averaging_to([1.0, -0.5, 2.0]), alg.init_state(w))
    np.testing.assert_allclose(w1, alg.server_lr * np.array([1.0, -1.0, 1.0]), rtol=0.03)


# --- the protocol: state like w, inputs untouched, settings only ----------------------------


def make(cls, model):
    return cls(model, 0.1)


@pytest.mark.parametrize("cls", STATEFUL)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_state_has_the_shape_and_dtype_of_w(model, cls, dtype):
    alg = make(cls, model)
    rng = np.random.default_rng(5)
    w = rng.normal(size=model.num_params).astype(dtype)
    W = rng.normal(size=(2, model.num_params)).astype(dtype)
    state = alg.init_state(w)
    assert set(state) == ({"v"} if cls is FedAvgM else {"m", "v"})
    for _ in range(2):
        w, state = step(alg, w, W, state)
        for x in (w, *state.values()):
            assert x.shape == (model.num_params,) and x.dtype == dtype


def test_initial_state_follows_the_papers(model):
    w = np.ones(5, dtype=np.float32)
    np.testing.assert_array_equal(make(FedAvgM, model).init_state(w)["v"], np.zeros(5))
    for cls in (FedAdagrad, FedAdam, FedYogi):
        state = cls(model, 0.1, tau=0.5).init_state(w)
        np.testing.assert_array_equal(state["m"], np.zeros(5))  # m_{-1} = 0
        np.testing.assert_array_equal(state["v"], np.full(5, 0.25))  # v_{-1} = tau^2


@pytest.mark.parametrize("cls", [FedOpt, *STATEFUL])
def test_server_update_leaves_its_inputs_alone(model, cls):
    alg = make(cls, model)
    rng = np.random.default_rng(6)
    w, W, n_S = rng.normal(size=3), rng.normal(size=(2, 3)), N_S.copy()
    state = {k: rng.random(3) + 0.5 for k in alg.init_state(w)}
    before = copy.deepcopy((w, W, n_S, state))
    out = alg.server_update(w, W, n_S, **state)
    w_next, new_state = out if isinstance(out, tuple) else (out, {})
    for x, y in zip((w, W, n_S, *state.values()), (*before[:3], *before[3].values()), strict=True):
        np.testing.assert_array_equal(x, y)
    for new in (w_next, *new_state.values()):
        assert not any(np.shares_memory(new, old) for old in (w, W, *state.values()))


@pytest.mark.parametrize("cls", [FedOpt, *STATEFUL])
def test_settings_only_json_ready_and_picklable(model, cls):
    alg = make(cls, model)
    w = np.zeros(model.num_params)
    alg.server_update(w, np.ones((2, len(w))), N_S, **alg.init_state(w))
    assert not any(isinstance(x, np.ndarray) for x in vars(alg).values())
    assert json.loads(json.dumps(alg.config()))["algorithm"] == cls.name
    assert vars(pickle.loads(pickle.dumps(alg))).keys() == vars(alg).keys()


@pytest.mark.parametrize(
    ("cls", "kwargs", "name"),
    [
        (FedOpt, {"server_lr": 0.0}, "server_lr"),
        (FedAvgM, {"server_lr": -1.0}, "server_lr"),
        (FedAvgM, {"momentum": 1.0}, "momentum"),
        (FedAvgM, {"momentum": -0.1}, "momentum"),
        (FedAdagrad, {"beta1": 1.0}, "beta1"),
        (FedAdagrad, {"tau": 0.0}, "tau"),
        (FedAdam, {"beta1": -0.5}, "beta1"),
        (FedAdam, {"beta2": 1.0}, "beta2"),
        (FedAdam, {"tau": -1e-3}, "tau"),
        (FedAdam, {"server_lr": 0.0}, "server_lr"),
        (FedYogi, {"beta2": 1.5}, "beta2"),
        (FedYogi, {"beta1": "0.9"}, "beta1"),
        (FedYogi, {"tau": float("nan")}, "tau"),
    ],
)
def test_bad_settings_name_the_argument(model, cls, kwargs, name):
    with pytest.raises((ValueError, TypeError), match=name):
        cls(model, 0.1, **kwargs)


def test_fedadagrad_has_no_beta2(model):
    """Adagrad's v_t does not decay: a beta2 would be a setting that does nothing."""
    with pytest.raises(TypeError, match="beta2"):
        FedAdagrad(model, 0.1, beta2=0.99)


# --- the round loop carries the state ----------------------------------------------------


@pytest.mark.parametrize("cls", STATEFUL)
def test_run_carries_the_server_state_like_a_hand_written_loop(fed64, model, cls):
    """Full participation and B = None: the clients use no randomness, so a plain loop over
    client_update and server_update must give run's w to float tolerance."""
    alg = cls(model, 0.1, server_lr=0.3)
    w0 = model.init(np.random.default_rng(7), dtype=np.float64)
    w_T, _ = run(alg, fed64, rounds=4, fraction=1.0, w0=w0)
    w, state, rng = w0, alg.init_state(w0), np.random.default_rng(0)
    for _ in range(4):
        W = np.stack([alg.client_update(w, *fed64.client(k), rng) for k in range(fed64.K)])
        w, state = alg.server_update(w, W, fed64.n_k, **state)
    np.testing.assert_allclose(w_T, w, rtol=1e-12, atol=1e-14)
    assert not np.allclose(w_T, run(FedAvg(model, 0.1), fed64, 4, fraction=1.0, w0=w0)[0])
