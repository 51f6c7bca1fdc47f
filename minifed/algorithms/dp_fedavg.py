"""DP-FedAvg: FedAvg with user-level differential privacy (McMahan, Ramage, Talwar and Zhang 2018,
"Learning Differentially Private Recurrent Language Models", ICLR, Algorithm 1), adaptive clipping
as an option (Andrew, Thakkar, McMahan and Ramaswamy 2021, "Differentially Private Learning with
Adaptive Clipping", NeurIPS, Algorithm 1), and local DP at the client for comparison.

    Server executes round t:
        S_t <- each of the K clients independently with probability q     (sampling="poisson")
        for each client k in S_t in parallel:                             # client_update
            w_k     <- ClientUpdate(k, w_t)              (FedAvg's E epochs of minibatch SGD)
            Delta_k <- (w_k - w_t) min(1, S / ||w_k - w_t||)               (clip_update)
        Delta~  <- (sum_{k in S_t} Delta_k + N(0, z^2 S^2 I)) / (q K)      # server_update
        w_{t+1} <- w_t + eta Delta~
        rdp_total <- rdp_total + rdp(z, q);  epsilon <- epsilon_from_rdp(rdp_total, delta)

**Fixed denominator.** Every client counts the same (the paper's estimator ``f~_f`` with
weights ``w_k = 1``, ``W = K``) and the sum is divided by the *expected* cohort ``q K``, not by
``|S_t|``: ``E[sum_{S_t} Delta_k] / (q K) = (1/K) sum_k Delta_k``, and adding or removing one
client changes the sum by at most ``S`` whatever the others do, so the noise ``N(0, z^2 S^2 I)``
makes the round one *sampled Gaussian mechanism* with noise multiplier ``z`` at rate ``q``,
accounted by :mod:`minifed.privacy.accountant` (adjacency: add or remove all the data of one
client, i.e. user-level DP). Dividing by ``|S_t|`` would make the sensitivity depend on the cohort.

**Empty rounds.** The analysis composes ``T`` releases, one per round, whatever ``|S_t|``. A
round that samples no client therefore still releases ``w_t + eta N(0, z^2 S^2 I) / (q K)`` and
is counted by the accountant (``runs_empty_rounds = True``): skipping it would publish that no
client took part. The round loop refuses any other sampling than ``"poisson"``
(``requires_sampling``) and per-client availability, which would change ``q``.

**Adaptive clipping** (``adaptive=True``; Andrew et al. 2021, Algorithm 1 and Section 3). The
clip norm ``C_t`` (``clip`` at the start) is server state, broadcast with ``w``. Client ``k``
also sends ``b_k = 1[||w_k - w_t|| <= C_t]``, and the server estimates the unclipped fraction
with a noisy count on the counts shifted to ``b_k - 1/2`` (sensitivity ``1/2``):

    b_bar   = (sum_{k in S_t} (b_k - 1/2) + N(0, sigma_b^2)) / (q K) + 1/2
    C_{t+1} = C_t exp(-eta_C (b_bar - gamma))                (geometric update, target gamma)

The update gets noise ``z_Delta C_t`` with ``z_Delta = (z^-2 - (2 sigma_b)^-2)^(-1/2)``: as
``1 / z_Delta^2 + 1 / (2 sigma_b)^2 = 1 / z^2``, the pair (update sum, count) is one Gaussian
query with noise multiplier ``z``, so the accountant charges exactly what fixed clipping costs.
Andrew et al.'s defaults: ``gamma = 0.5`` (the median), ``eta_C = 0.2``, ``sigma_b = m / 20``
(here ``m = q K``).

**Local DP** (:class:`LocalDPFedAvg`): each client adds ``N(0, z^2 S^2 I)`` to its own clipped
update before sending it, so it trusts nobody; the server averages what arrives (see its
docstring for the guarantee).

Differences from the papers: McMahan et al. project ``w_k`` back to the ball after every local
step; minifed clips the final update once, as Andrew et al. do (the sensitivity ``S`` is the
same). Their weights ``w_k = min(n_k / w_hat, 1)`` are here uniform, and the server optimizer is
plain SGD with step ``eta`` (``server_lr``), without Andrew et al.'s server momentum. The
accountant is Renyi DP (Mironov, Talwar and Zhang 2019) rather than the moments accountant.
"""

from __future__ import annotations

import math
import numbers
from functools import lru_cache

import numpy as np

from minifed._checks import check_nonnegative, check_positive
from minifed.algorithms.fedavg import FedAvg
from minifed.models.base import Model
from minifed.privacy.accountant import DEFAULT_ORDERS, epsilon_from_rdp, rdp

ORDERS = DEFAULT_ORDERS  # the Renyi orders of the server state's rdp_total


def clip_update(Delta: np.ndarray, S: float) -> tuple[np.ndarray, float]:
    """``(Delta min(1, S / ||Delta||), ||Delta||)``: the update scaled down to L2 norm ``S``.

    >>> clip_update(np.array([3.0, 4.0]), 1.0)  # norm 5 -> 1
    (array([0.6, 0.8]), 5.0)
    >>> clip_update(np.array([0.3, 0.4]), 1.0)[0]  # norm 0.5 <= S: unchanged
    array([0.3, 0.4])
    """
    norm = float(np.linalg.norm(Delta))
    if norm <= S:  # also S = inf and Delta = 0
        return Delta, norm
    return Delta * Delta.dtype.type(S / norm), norm


def update_noise_multiplier(z: float, sigma_b: float) -> float:
    """``z_Delta = (z^-2 - (2 sigma_b)^-2)^(-1/2)``: the update's share of a total noise
    multiplier ``z`` when the clipped count gets noise ``sigma_b`` (Andrew et al. 2021, Sec. 3).

    >>> round(update_noise_multiplier(1.0, sigma_b=5.0), 4)  # the count costs 0.5 % more noise
    1.005
    """
    if z == 0:
        return 0.0
    if 2 * sigma_b <= z:
        raise ValueError(
            f"count_noise sigma_b = {sigma_b:.4g} must exceed noise_multiplier / 2 = {z / 2:.4g}: "
            "the count's noise multiplier 2 sigma_b cannot be below the total z; give a larger "
            "count_noise (Andrew et al. use q K / 20, the default, for cohorts of hundreds)."
        )
    return (z**-2 - (2 * sigma_b) ** -2) ** -0.5


def next_clip_norm(C: float, b_bar: float, gamma: float, eta_C: float) -> float:
    """``C exp(-eta_C (b_bar - gamma))``: shrink when more than ``gamma`` of the updates were
    unclipped, grow when fewer (Andrew et al. 2021, geometric update).

    >>> round(next_clip_norm(1.0, b_bar=1.0, gamma=0.5, eta_C=0.2), 4)  # all unclipped: shrink
    0.9048
    """
    return C * math.exp(-eta_C * (b_bar - gamma))


@lru_cache(maxsize=64)
def rdp_per_round(z: float, q: float) -> np.ndarray:
    """``rdp(z, q)`` at :data:`ORDERS`, computed once per ``(z, q)`` (read-only)."""
    one = rdp(z, q, ORDERS)
    one.flags.writeable = False
    return one


def check_dp_settings(noise_multiplier, clip, delta) -> tuple[float, float | None, float]:
    """``z >= 0``; ``S > 0`` finite, or ``None`` (no clipping, only without noise); ``delta`` in
    (0, 1)."""
    z = check_nonnegative("noise_multiplier", noise_multiplier)
    if clip is None and z > 0:
        raise ValueError("clip=None (no clipping) needs noise_multiplier=0: the noise is z * clip.")
    if clip is not None:
        if isinstance(clip, bool) or not isinstance(clip, numbers.Real):
            raise TypeError(f"clip must be a number (the L2 norm S) or None, got {clip!r}.")
        if not (math.isfinite(clip) and clip > 0):
            raise ValueError(f"clip must be a finite number > 0 or None (no clipping), got {clip}.")
        clip = float(clip)
    delta = check_positive("delta", delta)
    if delta >= 1:
        raise ValueError(f"delta must be in (0, 1), e.g. 1e-5, got {delta}.")
    return z, clip, delta


def clip_norm_of(clip: float | None) -> float:
    """The norm ``S`` to clip to: ``inf`` for ``clip=None``."""
    return math.inf if clip is None else clip


class DPFedAvg(FedAvg):
    """FedAvg with clipped client updates and Gaussian noise on their sum (central DP).

    Parameters
    ----------
    model, lr, epochs, batch_size
        The clients' settings, as :class:`~minifed.algorithms.FedAvg`.
    noise_multiplier : float
        ``z >= 0``: the noise on the sum has standard deviation ``z S``.
    clip : float or None
        ``S > 0``: each update is clipped to this L2 norm (the initial ``C_0`` if adaptive);
        ``None``: no clipping (only with ``noise_multiplier=0``).
    delta : float
        The ``delta`` at which each round's ``epsilon`` is reported.
    server_lr : float
        Server step ``eta``; ``w_{t+1} = w_t + eta Delta~``. The paper's update is ``eta = 1``.
    adaptive : bool
        Adaptive clipping (Andrew et al. 2021) to the ``target_quantile`` of the update norms.
    target_quantile : float
        ``gamma`` in (0, 1], the unclipped fraction aimed at (0.5: the median).
    clip_lr : float
        ``eta_C > 0`` of the geometric update.
    count_noise : float, optional
        ``sigma_b``, the noise on the count of unclipped updates; default ``q K / 20``.
    """

    name = "dp_fedavg"
    down = ("clip_norm",)  # C_t, broadcast with w
    requires_sampling = "poisson"  # the run loop refuses other schemes
    runs_empty_rounds = True  # the noisy release happens even when S_t is empty

    def __init__(
        self,
        model: Model,
        lr: float,
        epochs: int = 1,
        batch_size: int | None = None,
        *,
        noise_multiplier: float = 1.0,
        clip: float | None = 1.0,
        delta: float = 1e-5,
        server_lr: float = 1.0,
        adaptive: bool = False,
        target_quantile: float = 0.5,
        clip_lr: float = 0.2,
        count_noise: float | None = None,
    ):
        super().__init__(model, lr, epochs, batch_size)
        self.noise_multiplier, self.clip, self.delta = check_dp_settings(
            noise_multiplier, clip, delta
        )
        self.server_lr = check_positive("server_lr", server_lr)
        if not isinstance(adaptive, bool):
            raise TypeError(f"adaptive must be True or False, got {adaptive!r}.")
        self.adaptive = adaptive
        self.target_quantile = check_positive("target_quantile", target_quantile)
        if self.target_quantile > 1:
            raise ValueError(f"target_quantile must be in (0, 1], got {target_quantile}.")
        self.clip_lr = check_positive("clip_lr", clip_lr)
        self.count_noise = (
            None if count_noise is None else check_positive("count_noise", count_noise)
        )
        if adaptive and self.clip is None:
            raise ValueError("adaptive clipping needs an initial clip C_0, got clip=None.")
        if adaptive and count_noise is not None:
            update_noise_multiplier(self.noise_multiplier, self.count_noise)  # raises early

    def init_state(self, w: np.ndarray) -> dict:
        """``C_0 = clip``, zero RDP, ``epsilon = 0``; ``clip_norm`` and ``epsilon`` are copied
        into every round's history record (``None`` there when infinite: no clipping, or no
        noise)."""
        C_0 = clip_norm_of(self.clip)
        return {"clip_norm": C_0, "rdp_total": np.zeros(len(ORDERS)), "epsilon": 0.0}

    def up(self, w: np.ndarray) -> dict:
        """The clipped update ``Delta_k``; with adaptive clipping also ``b_k`` (one byte)."""
        fields = {"Delta": (w.shape, w.dtype)}
        return {**fields, "b": ((), np.uint8)} if self.adaptive else fields

    def client_update(self, w, X_k, y_k, rng: np.random.Generator, clip_norm):
        """``Delta_k = clip(w_k - w_t, C_t)`` after FedAvg's local SGD (and ``b_k``)."""
        Delta = self.local_sgd(w, X_k, y_k, rng)
        Delta -= w  # (d,) w_k - w_t, in place
        Delta, norm = clip_update(Delta, float(clip_norm))
        if not self.adaptive:
            return Delta
        return {"Delta": Delta, "b": np.uint8(norm <= clip_norm)}

    def server_update(self, w, M, C, K, rng: np.random.Generator, clip_norm, rdp_total):
        """``w_{t+1} = w_t + eta (sum_k Delta_k + N(0, (z_Delta C_t)^2 I)) / (q K)``; the
        accountant's step; with adaptive clipping the next ``C_t``. ``q = C``, the fraction."""
        q, m, C_t = C, C * K, float(clip_norm)  # m = q K, the expected cohort
        Delta, b = (M["Delta"], M["b"]) if self.adaptive else (M, None)  # (|S_t|, d), (|S_t|,)
        sigma_b = m / 20 if self.count_noise is None else self.count_noise
        z_Delta = self.noise_multiplier
        if self.adaptive:
            z_Delta = update_noise_multiplier(self.noise_multiplier, sigma_b)
        noise = rng.normal(0.0, z_Delta * C_t if z_Delta else 0.0, size=w.shape)  # (d,)
        Delta_tilde = (Delta.sum(axis=0, dtype=np.float64) + noise) / m  # (d,)
        w_next = (w + self.server_lr * Delta_tilde).astype(w.dtype)
        if self.adaptive:
            b_bar = (np.sum(b - 0.5) + rng.normal(0.0, sigma_b)) / m + 0.5
            C_t = next_clip_norm(C_t, float(b_bar), self.target_quantile, self.clip_lr)
        rdp_total = rdp_total + rdp_per_round(self.noise_multiplier, q)
        eps = epsilon_from_rdp(rdp_total, ORDERS, self.delta)
        return w_next, {"clip_norm": C_t, "rdp_total": rdp_total, "epsilon": eps}


class LocalDPFedAvg(FedAvg):
    """FedAvg where each client clips its update and adds its own noise ``N(0, z^2 S^2 I)``
    before sending (local DP: no trusted server); the server averages what arrives uniformly,
    ``w_{t+1} = w_t + eta (1 / |S_t|) sum_k Delta_k``.

    Guarantee, per client and per round: a Gaussian mechanism on the client's own update. Two
    local datasets give clipped updates at most ``2 S`` apart (local DP compares any two inputs
    of one client; the server sees who sent, so there is no "absent" client and no
    amplification by sampling is claimed), so one round is ``(alpha, 2 alpha / z^2)``-RDP, the
    accountant's ``rdp(z / 2, q = 1)``, i.e. ``epsilon(z / 2, 1, 1, delta)``
    (:meth:`epsilon_per_round`); a client that took part in ``r`` rounds has
    ``epsilon(z / 2, 1, r, delta)``. The history's ``epsilon`` is that of a client present in
    every round that had clients (the worst case). For the same ``z`` the sum of the ``|S_t|``
    noisy updates carries ``sqrt(|S_t|)`` times the central noise, for a much larger epsilon.

    Parameters
    ----------
    model, lr, epochs, batch_size, noise_multiplier, clip, delta, server_lr
        As :class:`DPFedAvg`.
    """

    name = "ldp_fedavg"

    def __init__(
        self,
        model: Model,
        lr: float,
        epochs: int = 1,
        batch_size: int | None = None,
        *,
        noise_multiplier: float = 1.0,
        clip: float | None = 1.0,
        delta: float = 1e-5,
        server_lr: float = 1.0,
    ):
        super().__init__(model, lr, epochs, batch_size)
        self.noise_multiplier, self.clip, self.delta = check_dp_settings(
            noise_multiplier, clip, delta
        )
        self.server_lr = check_positive("server_lr", server_lr)

    def epsilon_per_round(self) -> float:
        """One round's ``epsilon`` for one client at ``delta``: ``epsilon(z / 2, 1, 1, delta)``."""
        return epsilon_from_rdp(rdp_per_round(self.noise_multiplier / 2, 1.0), ORDERS, self.delta)

    def init_state(self, w: np.ndarray) -> dict:
        return {"rdp_total": np.zeros(len(ORDERS)), "epsilon": 0.0}

    def client_update(self, w, X_k, y_k, rng: np.random.Generator) -> np.ndarray:
        """``clip(w_k - w_t, S) + N(0, z^2 S^2 I)``, the noise from the client's generator."""
        Delta = self.local_sgd(w, X_k, y_k, rng)
        Delta -= w  # (d,)
        Delta, _ = clip_update(Delta, clip_norm_of(self.clip))
        sigma = self.noise_multiplier * self.clip if self.noise_multiplier else 0.0
        return (Delta + rng.normal(0.0, sigma, size=w.shape)).astype(w.dtype)

    def server_update(self, w, M, rdp_total):
        """``w_t + eta mean_k Delta_k``; one more round of the per-client Gaussian mechanism."""
        w_next = (w + self.server_lr * M.mean(axis=0, dtype=np.float64)).astype(w.dtype)
        rdp_total = rdp_total + rdp_per_round(self.noise_multiplier / 2, 1.0)
        eps = epsilon_from_rdp(rdp_total, ORDERS, self.delta)
        return w_next, {"rdp_total": rdp_total, "epsilon": eps}
