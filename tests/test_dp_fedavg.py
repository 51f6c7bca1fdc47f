"""DP-FedAvg (McMahan et al. 2018), adaptive clipping (Andrew et al. 2021) and local DP.

Identities rather than golden numbers: clipping bounds the norm and leaves short updates alone;
without noise and clipping, with every client, DP-FedAvg is FedAvg with uniform weights; the
server's noise has standard deviation ``z S / (q K)``; the history's epsilon is the accountant's
at every round; the adaptive clip norm finds the target quantile. Determinism, resume and workers
are checked for every registered algorithm by tests/test_contract.py.
"""

import numpy as np
import pytest
from conftest import blobs_federation, load_script, require_dataset

from minifed.algorithms import DPFedAvg, FedAvg, LocalDPFedAvg
from minifed.algorithms.dp_fedavg import ORDERS, clip_update, update_noise_multiplier
from minifed.dataset import FederatedDataset
from minifed.models import SoftmaxRegression
from minifed.privacy import epsilon
from minifed.simulation import run

LOCAL = {"lr": 0.1, "epochs": 2, "batch_size": 8}


@pytest.fixture(scope="module")
def fed():
    return blobs_federation()


def model():
    return SoftmaxRegression(4, 3)


def blobs64(K=8, n_k=30, seed=0) -> FederatedDataset:
    """Equal-sized clients (uniform weights = FedAvg's n_k / n_S) in float64."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, size=K * n_k)
    X = rng.normal(size=(K * n_k, 4)) + 2.0 * np.eye(3, 4)[y]
    parts = np.split(np.arange(K * n_k), K)
    return FederatedDataset(X, y, parts, X[:50], y[:50], dtype=np.float64, name="blobs64")


def test_clipping_bounds_the_norm_and_keeps_short_updates():
    rng = np.random.default_rng(0)
    for scale in (0.01, 0.1, 1.0, 10.0, 100.0):
        Delta = rng.normal(size=50) * scale
        clipped, norm = clip_update(Delta.copy(), 1.0)
        assert norm == pytest.approx(np.linalg.norm(Delta))
        assert np.linalg.norm(clipped) <= 1.0 + 1e-12
        if norm <= 1.0:
            np.testing.assert_array_equal(clipped, Delta)
        else:
            np.testing.assert_allclose(clipped, Delta / norm, rtol=1e-12)  # same direction
    zero = np.zeros(3, dtype=np.float32)
    assert clip_update(zero, 1.0)[0] is zero and clip_update(zero, np.inf)[1] == 0.0
    assert clip_update(np.ones(4, dtype=np.float32), 0.5)[0].dtype == np.float32


def test_clients_send_clipped_updates(fed):
    algorithm = DPFedAvg(model(), **LOCAL, clip=0.05, adaptive=True, count_noise=1.0)
    w = np.zeros(model().num_params, dtype=np.float32)
    X_k, y_k = fed.client(0)
    message = algorithm.client_update(w, X_k, y_k, np.random.default_rng(0), clip_norm=0.05)
    assert np.linalg.norm(message["Delta"]) == pytest.approx(0.05, rel=1e-5)
    assert message["b"] == 0  # the update was longer than the clip norm
    big = algorithm.client_update(w, X_k, y_k, np.random.default_rng(0), clip_norm=1e6)
    assert big["b"] == 1 and np.linalg.norm(big["Delta"]) > 0.05


def test_without_noise_and_clipping_with_every_client_it_is_fedavg():
    data = blobs64()
    settings = {"fraction": 1.0, "seed": 2}
    w_fedavg, h_fedavg = run(FedAvg(model(), **LOCAL), data, 4, **settings)
    dp = DPFedAvg(model(), **LOCAL, noise_multiplier=0.0, clip=None)
    w_dp, h_dp = run(dp, data, 4, **settings)  # Poisson with q = 1: every client, denominator K
    np.testing.assert_allclose(w_dp, w_fedavg, rtol=1e-12, atol=1e-12)
    assert [r["clients"] for r in h_dp.rounds] == [r["clients"] for r in h_fedavg.rounds]
    assert [r["test_accuracy"] for r in h_dp.rounds] == [
        r["test_accuracy"] for r in h_fedavg.rounds
    ]
    assert all(r["epsilon"] is None for r in h_dp.rounds[1:])  # inf: no noise, no privacy
    assert all(r["clip_norm"] is None for r in h_dp.rounds)  # inf: no clipping
    ldp = LocalDPFedAvg(model(), **LOCAL, noise_multiplier=0.0, clip=None)
    np.testing.assert_allclose(run(ldp, data, 4, **settings)[0], w_fedavg, rtol=1e-12, atol=1e-12)


def server(algorithm, d, m, K, q, seed, M=None, clip_norm=None):
    """One call of ``DPFedAvg.server_update`` at ``w = 0`` with ``m`` zero updates."""
    M = np.zeros((m, d)) if M is None else M
    return algorithm.server_update(
        np.zeros(d),
        M,
        C=q,
        K=K,
        rng=np.random.default_rng(seed),
        clip_norm=algorithm.clip if clip_norm is None else clip_norm,
        rdp_total=np.zeros(len(ORDERS)),
    )


def test_the_server_divides_the_sum_by_the_expected_cohort():
    algorithm = DPFedAvg(model(), lr=0.1, noise_multiplier=0.0, clip=1.0)
    w_next, _ = server(algorithm, 5, 3, K=40, q=0.1, seed=0, M=np.ones((3, 5)))
    np.testing.assert_allclose(w_next, 3 / 4)  # |S_t| = 3 updates over q K = 4, not their mean


@pytest.mark.parametrize("server_lr", [1.0, 0.5])
def test_the_noise_has_standard_deviation_z_S_over_q_K(server_lr):
    z, S, K, q, d = 2.0, 0.5, 40, 0.1, 200_000
    algorithm = DPFedAvg(model(), lr=0.1, noise_multiplier=z, clip=S, server_lr=server_lr)
    noise, _ = server(algorithm, d, 3, K, q, seed=1)
    assert noise.std() == pytest.approx(server_lr * z * S / (q * K), rel=0.01)
    assert abs(noise.mean()) < 5 * noise.std() / np.sqrt(d)
    np.testing.assert_array_equal(noise, server(algorithm, d, 3, K, q, seed=1)[0])
    assert not np.array_equal(noise, server(algorithm, d, 3, K, q, seed=2)[0])


def test_adaptive_clipping_moves_noise_from_the_update_to_the_count():
    z, sigma_b = 1.0, 2.0
    z_Delta = update_noise_multiplier(z, sigma_b)
    assert z_Delta**-2 + (2 * sigma_b) ** -2 == pytest.approx(z**-2)  # one Gaussian query of z
    algorithm = DPFedAvg(model(), lr=0.1, noise_multiplier=z, adaptive=True, count_noise=sigma_b)
    M = {"Delta": np.zeros((3, 100_000)), "b": np.ones(3, dtype=np.uint8)}
    noise, state = server(algorithm, 100_000, 3, 40, 0.1, seed=0, M=M)
    assert noise.std() == pytest.approx(z_Delta * 1.0 / 4, rel=0.01)
    assert state["clip_norm"] != 1.0


def test_epsilon_in_the_history_is_the_accountants_at_every_round(fed):
    z, q, delta = 1.1, 0.3, 1e-5
    for adaptive in (False, True):
        algorithm = DPFedAvg(
            model(),
            **LOCAL,
            noise_multiplier=z,
            clip=0.5,
            delta=delta,
            adaptive=adaptive,
            count_noise=2.0,
        )
        _, history = run(algorithm, fed, 12, fraction=q, seed=0, eval_every=6)
        for r in history.rounds:
            assert r["epsilon"] == pytest.approx(epsilon(z, q, r["round"], delta), rel=1e-9)
        clip_norms = [r["clip_norm"] for r in history.rounds]
        assert (len(set(clip_norms)) > 1) == adaptive


def test_an_empty_round_still_adds_noise_and_counts(fed):
    ws = []
    algorithm = DPFedAvg(model(), **LOCAL, noise_multiplier=1.0, clip=0.5)
    _, history = run(
        algorithm, fed, 12, fraction=0.05, seed=0, callbacks=[lambda record, w: ws.append(w.copy())]
    )
    empty = [r["round"] for r in history.rounds[1:] if r["clients"] == []]
    assert empty, "q K = 0.5: most rounds sample nobody"
    for t in empty:
        assert not np.array_equal(ws[t], ws[t - 1])  # w_t = w_{t-1} + noise / (q K)
        assert history.rounds[t]["bytes_up"] == 0
        assert history.rounds[t]["epsilon"] > history.rounds[t - 1]["epsilon"]


def adaptive_run(gamma, rounds=400, K=1000, q=0.1, seed=0):
    """Adaptive clipping on synthetic update norms ``~ lognormal(0, 0.5)`` (median 1): the clip
    norms of the last 200 rounds and the true ``gamma``-quantile of the norms."""
    algorithm = DPFedAvg(model(), lr=0.1, clip=0.1, adaptive=True, target_quantile=gamma)
    rng = np.random.default_rng(seed)
    C, rdp_total, trace = 0.1, np.zeros(len(ORDERS)), []
    for _ in range(rounds):
        norms = rng.lognormal(0.0, 0.5, size=rng.binomial(K, q))  # Poisson cohort
        M = {"Delta": np.zeros((len(norms), 2)), "b": (norms <= C).astype(np.uint8)}
        _, state = algorithm.server_update(
            np.zeros(2), M, C=q, K=K, rng=rng, clip_norm=C, rdp_total=rdp_total
        )
        C, rdp_total = state["clip_norm"], state["rdp_total"]
        trace.append(C)
    norms = rng.lognormal(0.0, 0.5, size=1_000_000)
    return np.array(trace[-200:]), np.quantile(norms, gamma)


@pytest.mark.parametrize("gamma", [0.5, 0.8])
def test_adaptive_clipping_converges_to_the_target_quantile(gamma):
    trace, quantile = adaptive_run(gamma)
    assert np.median(trace) == pytest.approx(quantile, rel=0.05)
    assert np.all(np.abs(trace / quantile - 1) < 0.3)  # tracks it, from C_0 = 0.1


def test_local_dp_noise_and_epsilon(fed):
    z, S, delta = 2.0, 0.5, 1e-5
    big = SoftmaxRegression(200, 10)
    X_k = np.random.default_rng(0).normal(size=(20, 200)).astype(np.float32)
    y_k = np.arange(20) % 10
    w = np.zeros(big.num_params, dtype=np.float32)
    quiet = LocalDPFedAvg(big, lr=0.1, noise_multiplier=0.0, clip=S)
    noisy = LocalDPFedAvg(big, lr=0.1, noise_multiplier=z, clip=S)  # B = None: rng only for noise
    diff = noisy.client_update(w, X_k, y_k, np.random.default_rng(3)) - quiet.client_update(
        w, X_k, y_k, np.random.default_rng(3)
    )
    assert diff.std() == pytest.approx(z * S, rel=0.05)
    algorithm = LocalDPFedAvg(model(), **LOCAL, noise_multiplier=z, clip=S, delta=delta)
    assert algorithm.epsilon_per_round() == pytest.approx(epsilon(z / 2, 1.0, 1, delta))
    _, history = run(algorithm, fed, 5, fraction=0.3, seed=0)
    for r in history.rounds:
        assert r["epsilon"] == pytest.approx(epsilon(z / 2, 1.0, r["round"], delta), rel=1e-9)


@pytest.mark.parametrize(
    ("settings", "name"),
    [
        ({"noise_multiplier": -1.0}, "noise_multiplier"),
        ({"clip": 0.0}, "clip"),
        ({"clip": np.inf}, "clip"),  # None is "no clipping"
        ({"clip": None}, "clip"),  # no clipping needs z = 0
        ({"delta": 1.0}, "delta"),
        ({"server_lr": 0.0}, "server_lr"),
        ({"adaptive": "yes"}, "adaptive"),
        ({"adaptive": True, "target_quantile": 1.5}, "target_quantile"),
        ({"adaptive": True, "clip_lr": -0.2}, "clip_lr"),
        ({"adaptive": True, "count_noise": 0.4}, "count_noise"),  # 2 sigma_b <= z = 1
    ],
)
def test_bad_settings_name_the_argument(settings, name):
    with pytest.raises((ValueError, TypeError), match=name):
        DPFedAvg(model(), lr=0.1, **settings)


def test_the_run_refuses_other_sampling_and_small_default_count_noise(fed):
    algorithm = DPFedAvg(model(), **LOCAL)
    for sampling in ("uniform", "size"):
        with pytest.raises(ValueError, match="sampling='poisson'"):
            run(algorithm, fed, 1, sampling=sampling)
    with pytest.raises(ValueError, match="availability"):
        run(algorithm, fed, 1, availability=np.ones(fed.K))
    adaptive = DPFedAvg(model(), **LOCAL, adaptive=True)  # sigma_b = q K / 20 = 0.15 < z / 2
    with pytest.raises(ValueError, match="count_noise"):
        run(adaptive, fed, 1, fraction=0.3)


def test_privacy_utility_benchmark_quick(tmp_path):
    require_dataset("fashion-mnist")
    script = load_script("privacy_utility")
    rows = script.main(["--quick", "--out", str(tmp_path)])
    assert (tmp_path / "privacy_utility.png").stat().st_size > 0
    text = (tmp_path / "privacy_utility_table.md").read_text()
    assert "epsilon" in text
    central = [r for r in rows if r["mechanism"] == "central"]
    assert all(np.isfinite(r["epsilon"]) and 0 <= r["accuracy"] <= 1 for r in central)
    by_K = {r["K"]: r["epsilon"] for r in central if r["z"] == central[0]["z"]}
    assert by_K[min(by_K)] > by_K[max(by_K)]  # more clients, smaller q: smaller epsilon
